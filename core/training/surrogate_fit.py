"""Training the VIC surrogate as a resumable job with its state on disk (``hydrolens surrogate``).

A surrogate directory (default ``<runs root>/surrogates/<name>/``) holds, every file written
atomically::

    config.json      the settings (pydantic ``SurrogateConfig``) and the cells
    status.json      state (training | gating | done | failed), iteration, loss, the last gate
    train_log.csv    iteration, loss, lr, seconds (every ``log_every`` iterations)
    gate_log.csv     iteration, median NSE / RMSE / gradient cosine on a sample of held-out
                     (cell, θ set) series over the held-out year (every ``gate_every``)
    checkpoints/     last.pt and the newest epoch_<iteration>.pt: model, optimiser, scheduler,
                     RNG and iteration (every ``checkpoint_every``), as a run's checkpoints
    surrogate.pt     the frozen surrogate (state dict + hidden size) once training ends
    gate.json        the full gate of ``../shared/docs/paraformer_vic.md`` section 4

status.json, the CSV logs and the checkpoints use the run store's formats (core.runs.io,
core.runs.checkpoint): status fields merged with an ``updated`` stamp, logs cut back to the
checkpoint on resume, checkpoints loaded with ``weights_only`` and a damaged ``last.pt`` replaced by
the newest intact iteration file. A killed job continues from its newest intact checkpoint when
started again with the same directory. The
LHS runs of the VIC are deterministic (seeded) and re-simulated on start (seconds, fused kernel)
rather than stored (hundreds of MB).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from .._runtime import flush_denormals
from ..datasets.smap import load_smap
from ..models.surrogate import (SurrogateData, VICSurrogate, _surrogate_step, _tensors, default_split,
                                simulate_lhs, surrogate_gate)
from ..runs.checkpoint import (CheckpointError, load_checkpoint, resume_candidates, sampler_state_from_text,
                               sampler_state_to_text, save_checkpoint)
from ..runs.io import append_csv_row, truncate_csv, update_json, write_json_atomic

GATE_THRESHOLDS = {"median_nse": 0.95, "median_rmse": 0.01, "median_cosine": 0.9}


class SurrogateConfig(BaseModel):
    """Settings of a surrogate job (the doc's section 4 and the ``[default]``s noted there)."""

    # strict numbers (as core.training.config): no bool -> int or 2.0 -> 2; rates finite
    model_config = ConfigDict(extra="forbid")
    root: str | None = Field(None, description="data root (None: $HYDROLENS_DATA_ROOT or ../shared/data)")
    n_sets: int = Field(64, ge=4, strict=True, description="Latin-hypercube θ sets per cell (doc: ≥ 64)")
    held_fraction: float = Field(0.25, gt=0, lt=1, strict=True, allow_inf_nan=False,
                                 description="θ sets held out for the gate")
    hidden: int = Field(256, ge=4, strict=True)
    iters: int = Field(4000, ge=1, strict=True)
    batch: int = Field(128, ge=1, strict=True, description="(cell, θ set, window) samples per step")
    burn: int = Field(120, ge=0, strict=True, description="burn-in days per window (doc: 120)")
    rho: int = Field(240, ge=1, strict=True, description="days with loss per window")
    lr: float = Field(2e-3, gt=0, strict=True, allow_inf_nan=False,
                      description="Adam learning rate (finite, > 0), cosine-decayed to lr_min")
    lr_min: float = Field(5e-5, ge=0, strict=True, allow_inf_nan=False)
    seed: int = Field(0, ge=0, le=2**32 - 1, strict=True)
    threads: int | None = Field(None, ge=1, strict=True)
    log_every: int = Field(25, ge=1, strict=True)
    checkpoint_every: int = Field(100, ge=1, strict=True)
    gate_every: int = Field(500, ge=1, strict=True)
    gate_sample: int = Field(256, ge=8, strict=True, description="held-out series scored by the periodic gate")


#: Keys of a resumable surrogate checkpoint.
RESUME_KEYS = ("model", "optimizer", "scheduler", "rng", "torch_rng", "iteration")
#: Iteration checkpoints kept besides ``checkpoints/last.pt`` (the fallback when it is damaged).
KEEP_CHECKPOINTS = 2


def _status(out: Path, **fields) -> None:
    """Merge ``fields`` into the job's status.json (the run store's status format)."""
    path = out / "status.json"
    try:
        current = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, ValueError):
        current = {}
    update_json(path, current if isinstance(current, dict) else {}, **fields)


def _resume(out: Path, model, opt, sched, rng, log) -> int:
    """Load the newest intact checkpoint of the job (``checkpoints/last.pt``, then the
    iteration files newest first, then a ``checkpoint.pt`` of a job started before this layout);
    returns its iteration, 0 when there is none.

    Raises:
        CheckpointError: checkpoints exist but none is intact (names each and why).
    """
    candidates = resume_candidates(out / "checkpoints")
    if (out / "checkpoint.pt").exists():
        candidates.append(out / "checkpoint.pt")
    notes = []
    for path in candidates:
        try:
            state = load_checkpoint(path, require=RESUME_KEYS)
            try:
                model.load_state_dict(state["model"])
                opt.load_state_dict(state["optimizer"])
                sched.load_state_dict(state["scheduler"])
                torch.set_rng_state(state["torch_rng"])
            except (RuntimeError, TypeError, KeyError, ValueError) as e:
                raise CheckpointError(f"{path}: does not fit this job ({' '.join(str(e).split())[:200]})") from None
            rng.bit_generator.state = sampler_state_from_text(state["rng"])
        except CheckpointError as e:
            notes.append(str(e))
            continue
        log(f"resumed at iteration {int(state['iteration'])} from {path.name}"
            + "".join(f"\n  skipped {n}" for n in notes))
        return int(state["iteration"])
    if notes:
        raise CheckpointError("no intact surrogate checkpoint to resume from:\n  " + "\n  ".join(notes)
                              + f"\nremove {out / 'checkpoints'} to train the surrogate from the start")
    return 0


def _checkpoint(out: Path, state: dict) -> None:
    """Save ``state`` as ``checkpoints/epoch_<iteration>.pt`` and ``checkpoints/last.pt`` (the
    run store's checkpoint layout) and drop all but the newest ``KEEP_CHECKPOINTS`` iteration files."""
    ckdir = out / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(state, ckdir / f"epoch_{state['iteration']:06d}.pt", ckdir / "last.pt")
    for old in resume_candidates(ckdir)[1 + KEEP_CHECKPOINTS:]:
        old.unlink(missing_ok=True)


def fit_surrogate(out: str | Path, cfg: SurrogateConfig, log=print,
                  data: SurrogateData | None = None) -> dict:
    """Train (or continue) the surrogate job in ``out``; returns the final gate.

    Args:
        out: the job directory (created).
        cfg: settings; a resumed job must keep the settings it started with.
        log: a print-like callable for progress lines.
        data: LHS runs to use instead of simulating them (tests).

    Raises:
        ValueError: ``out`` holds a job with other settings (names the fields).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        diff = [k for k, v in cfg.model_dump().items()
                if k not in ("iters", "threads", "root") and old.get(k) != v]
        if diff:
            raise ValueError(f"{out} holds a surrogate job with other settings ({', '.join(diff)}); "
                             "use another --out or the same settings")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    flush_denormals()
    _status(out, state="simulating", message="VIC runs for the Latin-hypercube θ sets")
    if data is None:
        t0 = time.perf_counter()
        data = simulate_lhs(load_smap(cfg.root), n_sets=cfg.n_sets, seed=cfg.seed)
        log(f"{len(data.sites)} cells × {cfg.n_sets} θ sets simulated in {time.perf_counter() - t0:.0f} s")
    split = default_split(data, held_fraction=cfg.held_fraction)
    write_json_atomic(cfg_path, {**cfg.model_dump(), "cells": data.sites,
                                 "train_sets": split.train_sets, "held_sets": split.held_sets,
                                 "split_day": split.split_day,
                                 "held_period": f"{str(data.time[split.split_day])[:10]}.."
                                                f"{str(data.time[-1])[:10]}"})
    torch.manual_seed(cfg.seed)
    model = VICSurrogate(hidden=cfg.hidden)
    model.fit_scaling(data, split)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.iters, eta_min=cfg.lr_min)
    rng = np.random.default_rng(cfg.seed)
    it0 = _resume(out, model, opt, sched, rng, log)
    for name in ("train_log.csv", "gate_log.csv"):
        truncate_csv(out / name, "iteration", it0)
    tensors = _tensors(data)
    t_last, losses = time.perf_counter(), []
    model.train()
    for it in range(it0, cfg.iters):
        losses.append(_surrogate_step(model, opt, tensors, split, rng, cfg.batch, cfg.burn, cfg.rho))
        sched.step()
        n = it + 1
        if n % cfg.log_every == 0 or n == cfg.iters:
            secs = time.perf_counter() - t_last
            row = {"iteration": n, "loss": round(float(np.mean(losses)), 6),
                   "lr": f"{sched.get_last_lr()[0]:.3g}", "seconds": round(secs, 2)}
            append_csv_row(out / "train_log.csv", row)
            _status(out, state="training", iteration=n, iters=cfg.iters, loss=row["loss"],
                    seconds_per_iteration=round(secs / len(losses), 3),
                    message=f"iteration {n}/{cfg.iters} loss {row['loss']:.4f}")
            t_last, losses = time.perf_counter(), []
        if n % cfg.gate_every == 0 and n < cfg.iters:
            g = surrogate_gate(model, data, split, n_grad=8, seed=cfg.seed, max_series=cfg.gate_sample)
            model.train()
            append_csv_row(out / "gate_log.csv", {"iteration": n, **{k: round(g[k], 4) for k in GATE_THRESHOLDS}})
            log(f"iteration {n}: held-out sample NSE {g['median_nse']:.3f}, RMSE {g['median_rmse']:.4f}, "
                f"cos {g['median_cosine']:.3f}")
        if n % cfg.checkpoint_every == 0 or n == cfg.iters:
            _checkpoint(out, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                              "scheduler": sched.state_dict(), "torch_rng": torch.get_rng_state(),
                              "rng": sampler_state_to_text(rng.bit_generator.state), "iteration": n,
                              "epoch": n})
    model.eval()
    _status(out, state="gating", iteration=cfg.iters, iters=cfg.iters,
            message="scoring the gate on the held-out θ sets and year")
    t0 = time.perf_counter()
    gate = surrogate_gate(model, data, split, n_grad=32, seed=cfg.seed)
    gate["seconds"] = round(time.perf_counter() - t0, 1)
    gate["thresholds"] = GATE_THRESHOLDS
    save_checkpoint({"model": model.state_dict(), "hidden": cfg.hidden, "epoch": cfg.iters}, out / "surrogate.pt")
    write_json_atomic(out / "gate.json", gate)
    append_csv_row(out / "gate_log.csv", {"iteration": cfg.iters, **{k: round(gate[k], 4) for k in GATE_THRESHOLDS}})
    verdict = "passed" if gate["passed"] else "NOT passed"
    _status(out, state="done", iteration=cfg.iters, iters=cfg.iters, gate=gate,
            message=f"gate {verdict}: median NSE {gate['median_nse']:.3f}, RMSE {gate['median_rmse']:.4f}, "
                    f"cosine {gate['median_cosine']:.3f}")
    log(f"gate {verdict}: {json.dumps(gate)}")
    return gate
