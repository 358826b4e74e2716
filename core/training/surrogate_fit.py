"""Training the VIC surrogate as a resumable job with its state on disk (``hydrolens surrogate``).

A surrogate directory (default ``<runs root>/surrogates/<name>/``) holds, every file written
atomically::

    config.json      the settings (pydantic ``SurrogateConfig``) and the cells
    status.json      state (training | gating | done | failed), iteration, loss, the last gate
    train_log.csv    iteration, loss, lr, seconds (every ``log_every`` iterations)
    gate_log.csv     iteration, median NSE / RMSE / gradient cosine on a sample of held-out
                     (cell, θ set) series over the held-out year (every ``gate_every``)
    checkpoint.pt    model, optimiser, scheduler, RNG and iteration (every ``checkpoint_every``)
    surrogate.pt     the frozen surrogate (state dict + hidden size) once training ends
    gate.json        the full gate of ``../shared/docs/paraformer_vic.md`` section 4

A killed job continues from ``checkpoint.pt`` when started again with the same directory. The
LHS runs of the VIC are deterministic (seeded) and re-simulated on start (seconds, fused kernel)
rather than stored (hundreds of MB).
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from .._runtime import flush_denormals
from ..models.surrogate import (SurrogateData, VICSurrogate, _surrogate_step, _tensors, default_split,
                                simulate_lhs, surrogate_gate)
from ..runs.io import atomic_write, write_json_atomic
from .checkpoint import (CheckpointError, load_checkpoint, sampler_state_from_text, sampler_state_to_text,
                         save_checkpoint)

GATE_THRESHOLDS = {"median_nse": 0.95, "median_rmse": 0.01, "median_cosine": 0.9}


class SurrogateConfig(BaseModel):
    """Settings of a surrogate job (the doc's section 4 and the ``[default]``s noted there)."""

    model_config = ConfigDict(extra="forbid")
    root: str | None = Field(None, description="data root (None: $HYDROLENS_DATA_ROOT or ../shared/data)")
    n_sets: int = Field(64, ge=4, description="Latin-hypercube θ sets per cell (doc: ≥ 64)")
    held_fraction: float = Field(0.25, gt=0, lt=1, description="θ sets held out for the gate")
    hidden: int = Field(256, ge=4)
    iters: int = Field(4000, ge=1)
    batch: int = Field(128, ge=1, description="(cell, θ set, window) samples per step")
    burn: int = Field(120, ge=0, description="burn-in days per window (doc: 120)")
    rho: int = Field(240, ge=1, description="days with loss per window")
    lr: float = Field(2e-3, gt=0, description="Adam learning rate, cosine-decayed to lr_min")
    lr_min: float = Field(5e-5, ge=0)
    seed: int = 0
    threads: int | None = Field(None, ge=1)
    log_every: int = Field(25, ge=1)
    checkpoint_every: int = Field(100, ge=1)
    gate_every: int = Field(500, ge=1)
    gate_sample: int = Field(256, ge=8, description="held-out series scored by the periodic gate")


def _append_csv(path: Path, row: dict) -> None:
    """Append a row (header on a new file), rewriting the file atomically."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(row))
    if not old:
        w.writeheader()
    w.writerow(row)
    atomic_write(path, lambda p: p.write_text(old + buf.getvalue(), encoding="utf-8"))


def _truncate_csv(path: Path, upto: int) -> None:
    """Drop rows with iteration > ``upto`` (rows logged after the checkpoint a job resumes from)."""
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    keep = lines[:1] + [ln for ln in lines[1:] if int(ln.split(",", 1)[0]) <= upto]
    atomic_write(path, lambda p: p.write_text("".join(keep), encoding="utf-8"))


def load_surrogate(path: str | Path) -> tuple[VICSurrogate, dict]:
    """The frozen surrogate of a job directory (or its ``surrogate.pt``) and its gate.

    Raises:
        FileNotFoundError: no ``surrogate.pt`` (the job has not finished).
        CheckpointError: the file is damaged or does not fit.
    """
    path = Path(path)
    f = path / "surrogate.pt" if path.is_dir() else path
    if not f.exists():
        raise FileNotFoundError(f"{f} does not exist: the surrogate job has not finished "
                                "(`hydrolens surrogate --out DIR` trains it)")
    state = load_checkpoint(f, require=("model", "hidden"))
    model = VICSurrogate(hidden=int(state["hidden"]))
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(f"{f}: does not fit the surrogate ({' '.join(str(e).split())[:200]})") from None
    gate_path = f.parent / "gate.json"
    gate = json.loads(gate_path.read_text()) if gate_path.exists() else {}
    return model.eval(), gate


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
    from ..datasets.smap import load_smap

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
    status = {"state": "simulating", "message": "VIC runs for the Latin-hypercube θ sets"}
    write_json_atomic(out / "status.json", status)
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
    it0 = 0
    ck = out / "checkpoint.pt"
    if ck.exists():
        state = load_checkpoint(ck, require=("model", "optimizer", "scheduler", "rng", "iteration"))
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        rng.bit_generator.state = sampler_state_from_text(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        it0 = int(state["iteration"])
        log(f"resumed at iteration {it0}")
    for name in ("train_log.csv", "gate_log.csv"):
        _truncate_csv(out / name, it0)
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
            _append_csv(out / "train_log.csv", row)
            status = {"state": "training", "iteration": n, "iters": cfg.iters, "loss": row["loss"],
                      "seconds_per_iteration": round(secs / len(losses), 3),
                      "message": f"iteration {n}/{cfg.iters} loss {row['loss']:.4f}"}
            write_json_atomic(out / "status.json", status)
            t_last, losses = time.perf_counter(), []
        if n % cfg.gate_every == 0 and n < cfg.iters:
            g = surrogate_gate(model, data, split, n_grad=8, seed=cfg.seed, max_series=cfg.gate_sample)
            model.train()
            _append_csv(out / "gate_log.csv", {"iteration": n, **{k: round(g[k], 4) for k in GATE_THRESHOLDS}})
            log(f"iteration {n}: held-out sample NSE {g['median_nse']:.3f}, RMSE {g['median_rmse']:.4f}, "
                f"cos {g['median_cosine']:.3f}")
        if n % cfg.checkpoint_every == 0 or n == cfg.iters:
            save_checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict(),
                             "scheduler": sched.state_dict(), "torch_rng": torch.get_rng_state(),
                             "rng": sampler_state_to_text(rng.bit_generator.state), "iteration": n,
                             "epoch": n}, ck)
    model.eval()
    write_json_atomic(out / "status.json", {"state": "gating", "iteration": cfg.iters, "iters": cfg.iters,
                                            "message": "scoring the gate on the held-out θ sets and year"})
    t0 = time.perf_counter()
    gate = surrogate_gate(model, data, split, n_grad=32, seed=cfg.seed)
    gate["seconds"] = round(time.perf_counter() - t0, 1)
    gate["thresholds"] = GATE_THRESHOLDS
    save_checkpoint({"model": model.state_dict(), "hidden": cfg.hidden, "epoch": cfg.iters}, out / "surrogate.pt")
    write_json_atomic(out / "gate.json", gate)
    _append_csv(out / "gate_log.csv", {"iteration": cfg.iters, **{k: round(gate[k], 4) for k in GATE_THRESHOLDS}})
    verdict = "passed" if gate["passed"] else "NOT passed"
    write_json_atomic(out / "status.json", {
        "state": "done", "iteration": cfg.iters, "iters": cfg.iters, "gate": gate,
        "message": f"gate {verdict}: median NSE {gate['median_nse']:.3f}, RMSE {gate['median_rmse']:.4f}, "
                   f"cosine {gate['median_cosine']:.3f}"})
    log(f"gate {verdict}: {json.dumps(gate)}")
    return gate
