"""One SMAP training step as `hydrolens train --preset smap` runs it, per learner and precision.

Times ``Trainer.step`` itself (the trainer's settings: flush_denormals, the thread count, the
smap preset's mini-batch of 100 cells x (366 spin-up + 30) days, the learner, the VIC with the
fused no-gradient spin-up and the compiled differentiable window, the masked RMSE + range-boundary
loss, Adadelta) on the real SPARSE cells, for each learner in fp32 and in bf16 (the learner under
bf16 autocast; ``train.precision``). Then ParaFormer_Z's learner alone, forward + backward on 100
cells x 240 days, with and without dropout on its attention weights (the default is without:
docs/models.md).

Prints the CPU model and its bf16 flags, medians of ``--reps`` steps after one untimed step,
and ratios within this process. A fresh run directory is made in a temporary folder.

Run:  .venv/bin/python benchmarks/bench_smap_step.py [--reps 5] [--threads 2] [--data-root PATH]
      [--variants ffn_a,lstm_z,paraformer_a,paraformer_z] [--coupling direct]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import core  # noqa: E402,F401  (memory settings before torch)
import torch  # noqa: E402

from core._runtime import cpu_description, flush_denormals, learner_autocast  # noqa: E402
from core.nets.learners import ParaFormer_Z  # noqa: E402
from core.runs import RunStore  # noqa: E402
from core.training.config import compose_config  # noqa: E402
from core.training.trainer import Trainer  # noqa: E402


def median_time(fn, reps: int) -> float:
    fn()  # untimed: first-call set-up (compilation, allocator)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def trainer_step(variant: str, precision: str, coupling: str, threads: int, data_root: str | None,
                 reps: int) -> tuple[float, int]:
    cfg = compose_config("smap", overrides={
        "model.variant": variant, "model.coupling": coupling, "train.precision": precision,
        "train.threads": threads, "data.root": data_root})
    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(cfg, RunStore(tmp).create(f"bench-{variant}-{precision}"), progress=False)
        tr.model.train()
        return median_time(tr.step, reps), tr.iters


def learner_alone(attn_dropout: float, precision: str, reps: int) -> float:
    torch.manual_seed(0)
    m = ParaFormer_Z(5, 6, 5, dropout=0.1, attn_dropout=attn_dropout).train()
    x, xs = torch.randn(240, 100, 5), torch.randn(100, 6)

    def step():
        with learner_autocast(precision, "cpu"):
            y = m(x, xs).static.float()
        m.zero_grad(set_to_none=True)
        y.square().mean().backward()
    return median_time(step, reps)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--variants", default="ffn_a,lstm_z,paraformer_a,paraformer_z")
    ap.add_argument("--coupling", default="direct", choices=["direct", "surrogate"])
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    flush_denormals()
    cpu = cpu_description()
    print(f"CPU: {cpu['cpu']}; bf16 flags: {', '.join(cpu['bf16_flags']) or 'none'}; "
          f"{args.threads} threads; torch {torch.__version__}")
    print(f"\n1. Trainer.step, smap preset, {args.coupling} coupling, SPARSE cells (median of {args.reps})")
    print(f"{'variant':14s} {'fp32 s':>8s} {'bf16 s':>8s} {'bf16 speed-up':>14s} {'iters/epoch':>12s}")
    for v in args.variants.split(","):
        fp32, iters = trainer_step(v, "fp32", args.coupling, args.threads, args.data_root, args.reps)
        bf16, _ = trainer_step(v, "bf16", args.coupling, args.threads, args.data_root, args.reps)
        print(f"{v:14s} {fp32:8.3f} {bf16:8.3f} {fp32 / bf16:13.2f}x {iters:12d}")
    print(f"\n2. ParaFormer_Z learner alone, forward + backward, 100 cells x 240 days (median of {args.reps})")
    ref = learner_alone(0.1, "fp32", args.reps)
    for drop, prec in ((0.1, "fp32"), (0.0, "fp32"), (0.1, "bf16"), (0.0, "bf16")):
        t = ref if (drop, prec) == (0.1, "fp32") else learner_alone(drop, prec, args.reps)
        print(f"attention dropout {drop:.1f}, {prec}: {t:.3f} s  ({ref / t:.2f}x vs dropout 0.1 fp32)")


if __name__ == "__main__":
    main()
