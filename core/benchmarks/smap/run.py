"""Training the SMAP benchmark's plan: the surrogate its surrogate-coupled runs need, and every
planned run through the job runner (:func:`core.benchmarks.runs.ensure_named_runs`:
``hydrolens train`` subprocesses that resume after a kill)."""

from __future__ import annotations

from pathlib import Path

from ...runs import Run, RunStore
from ..runs import ensure_named_runs, preset_label
from .plan import PlannedRun, run_config


def surrogate_dir(store: RunStore, surrogate: str | Path | None = None) -> Path:
    """The surrogate job folder the surrogate coupling uses: ``surrogate``, else
    ``<store>/surrogates/default``."""
    return Path(surrogate) if surrogate else store.root / "surrogates" / "default"


def without_missing_surrogate(planned: list[PlannedRun], couplings, sur_dir: Path, log=print) -> list[PlannedRun]:
    """``planned`` less its surrogate-coupled runs when the surrogate coupling is asked for but
    ``sur_dir`` holds no finished surrogate (surrogate.pt); says so through ``log``."""
    if "surrogate" in couplings and not (sur_dir / "surrogate.pt").exists():
        log(f"no finished surrogate in {sur_dir} (surrogate.pt): the surrogate-coupled runs are skipped; "
            f"run `hydrolens surrogate --out {sur_dir}` first")
        return [r for r in planned if r.coupling != "surrogate"]
    return planned


def train_plan(store: RunStore, preset: str, planned: list[PlannedRun], epochs: int | None = None, jobs: int = 1,
               threads: int | None = None, data_root: str | None = None, surrogate: str | None = None,
               sceua_evaluations: int | None = None, log=print, curve_every: int | None = None) -> dict[str, Run]:
    """Train (or resume, or reuse) every planned run, in the plan's order, at most ``jobs`` at a
    time; each run's config (:func:`run_config`) holds its own epochs. With ``curve_every``, the
    learning curves of the runs that have one (:meth:`PlannedRun.curve_every`) are queued
    behind the trainings.

    Returns:
        run name -> its evaluated run.

    Raises:
        RuntimeError: a training job failed (rerun to resume).
    """
    label = preset_label(preset)
    configs = {r.name(label): run_config(r, preset, epochs, threads, data_root, surrogate, sceua_evaluations)
               for r in planned}
    curves = {r.name(label): step for r in planned
              if curve_every and (step := r.curve_every(curve_every)) is not None}
    return ensure_named_runs(store, configs, None, jobs, threads, log,  # each config holds its epochs
                             curves=curves, data_root=data_root)
