#!/bin/bash
# The long benchmarks (docs/benchmark_smap.md and docs/benchmark.md) as one background queue.
#
#   [PAPER432=h64] PYTHON=/path/to/.venv/bin/python scripts/long_benchmarks.sh STORE [DATA_ROOT]
#   (default PYTHON: python; default data root: ../shared/data)
#
# Run it from a checkout that stays fixed while the queue runs (e.g. `git worktree add
# ../bench-src HEAD`): every queued job runs the code of the checkout it was submitted from. Every
# training is a job of the run store STORE (`hydrolens jobs --out STORE` lists them), one at a time
# (two trainings on 2 cores slow each other 10-25x; each command's learning-curve evaluations are
# jobs of the same queue too, behind its trainings); a finished job starts the next queued one
# itself, so the queue goes on after this script or the session that started it stops, and
# rerunning the script resumes interrupted runs and reuses finished ones. Each benchmark command
# writes its report (and CSV) into STORE/docs when its runs are done; copy them into docs/.
# Order: the SMAP benchmark's seed 0 (with its surrogate: `hydrolens surrogate --out
# STORE/surrogates/default` first), the paper protocol's δn(γᵗ,βᵗ) and LSTM, the SMAP seeds 1-2,
# then δn, δ1 and δn(NN_r), then δn(γᵗ,βᵗ) with Feng's release conventions.
# On a CPU without bf16 units (no amx_bf16 / avx512_bf16 in /proc/cpuinfo) the paper's hidden-256
# learner costs ~1.4 s a step in fp32 (~4 h a variant); PAPER432=h64 queues the paper protocol with
# the learner at hidden 64 instead (docs/configs/paper432_h64*.yaml: ~0.25 s a step, ~45 min a variant).
set -eu
case "${PAPER432:-paper}" in
  paper) p432cfg=paper432; fengcfg=docs/configs/paper432_feng2022.yaml ;;
  h64) p432cfg=docs/configs/paper432_h64.yaml; fengcfg=docs/configs/paper432_h64_feng2022.yaml ;;
  *) echo "PAPER432 must be 'paper' (hidden 256, the default) or 'h64'" >&2; exit 2 ;;
esac
STORE=$(realpath -m "$1"); ROOT=$(realpath "${2:-../shared/data}")
# `python -m core.cli` from this checkout's root, so its code (not an installed copy's) runs
cd "$(dirname "$0")/.."
HL="${PYTHON:-python} -m core.cli"
mkdir -p "$STORE/docs"
common="--out $STORE --jobs 1 --threads 2 --data-root $ROOT"
smap="benchmark --preset smap --surrogate $STORE/surrogates/default $common"
p432="benchmark --preset $p432cfg $common"
# each command queues its runs at once; the pauses keep the submissions in this order
$HL $smap --seeds 1 --doc "$STORE/docs/benchmark_smap.md" > "$STORE/smap_seed0.log" 2>&1 &
sleep 120
$HL $p432 --variants delta_n_gamma_beta,lstm --doc "$STORE/docs/benchmark.md" > "$STORE/paper432_a.log" 2>&1 &
sleep 60
$HL $smap --seeds 3 --doc "$STORE/docs/benchmark_smap.md" > "$STORE/smap_seeds3.log" 2>&1 &
sleep 60
$HL $p432 --variants delta_n_gamma_beta,lstm,delta_n,delta1,delta_n_nnr --doc "$STORE/docs/benchmark.md" \
  > "$STORE/paper432_b.log" 2>&1 &
sleep 60
# δn(γᵗ,βᵗ) with Feng's release conventions beside paper432's own (docs/models.md, Conventions)
$HL benchmark --preset $fengcfg --variants delta_n_gamma_beta $common \
  --doc "$STORE/docs/benchmark_feng2022.md" > "$STORE/paper432_feng2022.log" 2>&1 &
wait
