"""What both benchmarks share about their runs: names, finding the newest one, training the
missing ones through the job runner, and the learning curve of a run's epoch checkpoints."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd

from ..evaluation import evaluate_run
from ..jobs import JobRunner
from ..runs import Run, RunStore, write_text_atomic


def run_name(preset: str, variant: str) -> str:
    """Name of the benchmark run of ``variant`` under ``preset``: ``<preset>-<variant>``."""
    return f"{preset}-{variant}"


def preset_label(preset: str) -> str:
    """Run-name prefix of a preset: its name, or the stem of a YAML config file (characters
    other than letters, digits and ``_ . -`` replaced by ``-``, so it is a valid run name)."""
    if not preset.endswith((".yaml", ".yml")):
        return preset
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(preset).stem).strip("-.") or "config"


def find_run(store: RunStore, name: str) -> Run | None:
    """The newest run whose config name is ``name`` (a finished one first), or None."""
    infos = [i for i in store.list() if i.name == name]
    done = [i for i in infos if i.state == "done"]
    pick = (done or infos or [None])[0]
    return None if pick is None else Run(pick.path)


def iters_per_epoch(run: Run) -> int:
    """Iterations per epoch of a run (recorded by the trainer; else the configured value)."""
    return int(run.status().get("iters_per_epoch") or run.config()["train"].get("iters_per_epoch") or 0)


# ------------------------------------------------------------------------------ training
def _needs_training(store: RunStore, name: str, epochs: int | None) -> bool:
    run = find_run(store, name)
    if run is None:
        return True
    info = run.info()
    target = epochs or info.epochs
    return not (info.state == "done" and info.epochs_done >= target and run.has_evaluation())


def ensure_named_runs(store: RunStore, configs: dict[str, dict], epochs: int | None = None,
                      jobs: int = 1, threads: int | None = None, log=print, poll: float = 5.0,
                      curves: dict[str, int] | None = None, data_root: str | None = None) -> dict[str, Run]:
    """Train (or resume, or reuse) the run called each key of ``configs`` (name -> RunConfig
    dict of a new run) through the job runner (:class:`core.jobs.JobRunner`, the one the
    explorer uses), at most ``jobs`` at a time, in the order of ``configs``; then, for each
    name in ``curves`` (name -> every), its :func:`learning_curve` as a job of the same queue
    (queued after all the trainings, so the checkpoint evaluations never share the cores with a
    training, this call's or a later one's; on a Dask cluster the caller computes them itself).

    A run that another live process is training waits in the queue until it is free (the
    runner never starts a job on a busy run); a job already queued for a run is waited for, not
    submitted twice. A finished run with fewer than ``epochs`` epochs is resumed to ``epochs``.
    A learning curve whose checkpoints are all scored in the run's cache is not queued.

    Returns:
        name -> its evaluated run.

    Raises:
        RuntimeError: a training or learning-curve job failed or was cancelled (names the run,
            its exit code and log; it can be resumed by running the benchmark again).
    """
    runner = JobRunner(store, max_running=jobs)
    pending = {}
    active = {j.run_id: j for j in runner.jobs(pump=False) if not j.final and j.args[:1] == ["train"]}
    for name, cfg in configs.items():
        if not _needs_training(store, name, epochs):
            continue
        run = find_run(store, name)
        if run is not None and run.run_id in active:
            job = active[run.run_id]
            log(f"{name}: job {job.job_id} is already {job.state}; waiting for it")
        elif run is not None:
            job = runner.submit_resume(run.run_id, epochs=epochs, threads=threads, start=False,
                                       label=f"benchmark {name}")
            log(f"{name}: resuming {run.run_id} (job {job.job_id})")
        else:
            job = runner.submit_train(cfg, label=f"benchmark {name}", start=False)
            log(f"{name}: training {job.run_id} (job {job.job_id})")
        pending[name] = job.job_id
    for name, every in (curves or {}).items() if runner.executor == "local" else ():
        run = find_run(store, name)
        if run is None or (name not in pending and not _unscored_epochs(run, every)):
            continue
        busy = [j for j in runner.jobs(pump=False) if j.run_id == run.run_id and not j.final
                and j.args[:1] == ["learning-curve"]]
        job = busy[0] if busy else runner.submit_curve(run.run_id, every, data_root, start=False,
                                                        label=f"benchmark {name} learning curve")
        pending[f"{name} (learning curve)"] = job.job_id
    failures = []
    if pending:
        runner.pump()
        done = runner.wait(pending.values(), poll=poll, log=log)
        for name, job in zip(pending, done):
            if job.state != "done":
                failures.append(f"{name} ({job.state}, exit {job.returncode}; log {job.log_path})")
    if failures:
        raise RuntimeError("jobs that did not finish: " + ", ".join(failures) +
                           "; run the benchmark again to resume")
    return {name: find_run(store, name) for name in configs}


def evaluated_runs(store: RunStore, label: str, variants: list[str], hint: str = "") -> dict[str, Run]:
    """variant -> its evaluated run ``<label>-<variant>``.

    Raises:
        RuntimeError: a variant has no evaluated run (names it; ``hint`` is appended).
    """
    runs = {}
    for v in variants:
        run = find_run(store, run_name(label, v))
        if run is None or not run.has_evaluation():
            raise RuntimeError(f"no evaluated run {run_name(label, v)!r} in {store.root}{hint}")
        runs[v] = run
    return runs


# ------------------------------------------------------------------------------ learning curve
def learning_curve(run: Run, every: int = 2, data_root: str | None = None, log=print) -> pd.DataFrame:
    """Per epoch: the training log (epoch, loss, and where the run has them updates, val_loss,
    val_NSE) and, for the epoch checkpoints (every ``every``-th epoch and the last one that has
    a checkpoint), the test median NSE over the run's trained sites (``test_median_nse``) and
    over its unseen sites (``test_median_nse_unseen``, NaN without ``data.test_sites``), cached
    in ``<run>/learning_curve.csv``.

    Evaluating a checkpoint reads the test period, so this curve shows how far from
    convergence the run is; it is never used to choose a checkpoint (the run's model is chosen
    on its validation sites). Holds the run's lock while it writes the cache (a second process
    gets RunBusyError).
    """
    with run.lock("computing the learning curve"):
        return _learning_curve(run, every, data_root, log)


_CURVE_COLUMNS = ("test_median_nse", "test_median_nse_unseen")


def _epoch_checkpoints(run: Run) -> dict[int, str]:
    """epoch -> file name of the run's epoch checkpoints (``epoch_<n>.pt``)."""
    return {int(p.stem.split("_")[1]): p.name for p in sorted(run.checkpoint_dir.glob("epoch_*.pt"))}


def _wanted_epochs(ck: dict[int, str], every: int) -> list[int]:
    """The checkpoints a learning curve scores: every ``every``-th, the first and the last."""
    return [e for e in ck if e % every == 0 or e == 1 or e == max(ck)]


def _unscored_epochs(run: Run, every: int) -> list[int]:
    """The wanted checkpoints (:func:`_wanted_epochs`) not yet in the run's learning_curve.csv."""
    path = run.path / "learning_curve.csv"
    try:
        cached = pd.read_csv(path) if path.exists() else None
    except (OSError, ValueError):  # unreadable: recompute it
        cached = None
    done = set(cached["epoch"].astype(int)) if cached is not None and "test_median_nse_unseen" in cached else set()
    return [e for e in _wanted_epochs(_epoch_checkpoints(run), every) if e not in done]


def _learning_curve(run: Run, every: int, data_root: str | None, log) -> pd.DataFrame:
    path = run.path / "learning_curve.csv"
    tl = run.train_log()
    curve = tl[[c for c in ("epoch", "updates", "loss", "val_loss", "val_NSE") if c in tl]].copy()
    cached = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["epoch", *_CURVE_COLUMNS])
    # a cache written before the unseen column existed is recomputed for it
    known = {int(r["epoch"]): (r["test_median_nse"], r["test_median_nse_unseen"])
             for _, r in cached.iterrows()} if "test_median_nse_unseen" in cached else {}
    ck = _epoch_checkpoints(run)
    if ck:
        for e in _wanted_epochs(ck, every):
            if e not in known:
                t0 = time.perf_counter()
                met = evaluate_run(run, data_root=data_root, checkpoint=ck[e], write=False)
                split = met["split"] if "split" in met else pd.Series("trained", index=met.index)
                unseen = met.loc[split == "unseen", "NSE"]
                known[e] = (float(met.loc[split == "trained", "NSE"].median()),
                            float(unseen.median()) if len(unseen) else float("nan"))
                log(f"  {run.run_id} epoch {e}: test median NSE {known[e][0]:.3f}"
                    + (f", unseen {known[e][1]:.3f}" if len(unseen) else "")
                    + f" ({time.perf_counter() - t0:.0f} s)")
                write_text_atomic(path, pd.DataFrame([(k, *v) for k, v in sorted(known.items())], columns=[
                    "epoch", *_CURVE_COLUMNS]).to_csv(index=False))
    for i, c in enumerate(_CURVE_COLUMNS):
        curve[c] = curve["epoch"].astype(int).map({k: v[i] for k, v in known.items()})
    return curve
