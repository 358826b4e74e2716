"""The one job runner: training jobs as separate processes, a queue with state on disk.

Used by the explorer (launch, watch, cancel, resume from the page), by ``hydrolens jobs`` and by
``hydrolens benchmark``. Every job is a folder ``<runs root>/.jobs/<job id>/``::

    job.json      what to run and its lifecycle: queued -> running (pid of the worker)
    result.json   written once by the worker when the command ends: done | failed | cancelled
    cancel        present once someone asked to cancel (the worker forwards SIGTERM)
    log.txt       stdout and stderr of the command

A job runs ``python -m core.jobs JOB_DIR`` (the *worker*, in its own session so it outlives the
tab and the server that started it), which runs ``hydrolens train --resume RUN`` as its child,
forwards a cancel as SIGTERM (the trainer finishes the epoch's bookkeeping, the run stays
resumable), waits, writes result.json and starts the next queued job (:meth:`JobRunner.pump`).
:meth:`JobRunner.pump` also runs whenever a caller lists jobs (the app's periodic callback, the
CLI), so a queue left behind by a stopped server moves on when any of them looks at it. The
queue is guarded by a flock on ``.jobs/.lock``; job files are written atomically; a worker
killed without writing its result is reported ``failed`` (interrupted) and its run resumable.

Progress (epoch, iteration, loss, seconds per iteration, ETA) is read from the run's own
status.json, so what the page shows is what the trainer wrote.

Executors. ``local`` (the default) is the above. ``dask`` (a scheduler given as ``scheduler=``,
``--scheduler`` or ``$HYDROLENS_SCHEDULER``; :mod:`core.cluster`) hands every queued job to the
Dask cluster at once as a detached task (:func:`run_job_task`; the cluster decides when and
where it runs, a CUDA job asks for ``resources={"GPU": 1}``). The task runs the same command on
a worker, writes ``worker.json`` (host, worker, pid) and touches ``heartbeat`` every second,
forwards a ``cancel`` file as SIGTERM within a second, and writes result.json. If its worker
dies, the trainer child gets SIGTERM (the run stays resumable at its last finished epoch) and
the scheduler runs the task again on another worker, which resumes the run from its last
checkpoint. Job state lives in the same files, so ``hydrolens jobs``, the explorer's Jobs tab,
wait, cancel and resume behave the same whichever executor runs a job. The run store must be a
path every worker sees (a shared filesystem).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from ._runtime import child_env
from .cluster import SCHEDULER_ENV, ClusterError, require_cluster, scheduler_address, submit_detached
from .runs import RunStore, write_json_atomic
from .runs.io import now_iso
from .runs.safety import process_alive, process_started
from .training.config import RunConfig

JOBS_DIR = ".jobs"
#: Jobs running at once unless told otherwise ($HYDROLENS_MAX_JOBS): one per 2 cores.
DEFAULT_MAX_RUNNING = int(os.environ.get("HYDROLENS_MAX_JOBS", "1") or 1)
#: Job states. ``cancelling``: a cancel was asked for and the worker is still finishing.
JOB_STATES = ("queued", "running", "cancelling", "done", "failed", "cancelled")
FINAL_STATES = ("done", "failed", "cancelled")
_LIVE_PROCS: dict[int, subprocess.Popen] = {}  # workers started by this process, reaped in pump()
#: What an ended job says when it was cancelled.
CANCELLED = "cancelled; the run keeps its last finished epoch and can be resumed"
#: This checkout (the working directory of a job's processes).
REPO = str(Path(__file__).resolve().parents[1])
#: A Dask job whose heartbeat is older than this (s) has lost its worker.
HEARTBEAT_STALE_S = 30.0
#: How long a Dask task waits for its run's lock (a killed attempt's trainer still stopping).
RUN_LOCK_WAIT_S = 120.0


class JobError(ValueError):
    """A job cannot be submitted, cancelled or resumed (the message says why)."""


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _alive(spec: dict) -> bool:
    """The job's worker (pid and start time in job.json) is a live, non-zombie process that is a
    HydroLens job worker (not another process that reuses its pid)."""
    pid = spec.get("pid")
    if not pid:
        return False
    proc = _LIVE_PROCS.get(pid)
    if proc is not None:  # our own child: poll() answers (and reaps it when it has ended)
        if proc.poll() is None:
            return True
        _LIVE_PROCS.pop(pid, None)
        return False
    return process_alive(pid, started=spec.get("pid_started"), cmdline_has="core.jobs")


@dataclass
class Progress:
    """Where a job's training stands, from its run's status.json.

    Attributes:
        epoch: finished epochs; epochs: epochs to train.
        iteration: iterations done in the current epoch; iters: iterations per epoch.
        loss: mean loss of the current (or last) epoch.
        seconds_per_iteration: measured in the current epoch (None before the first update).
        fraction: 0..1 of all iterations of the run; eta_s: seconds left to the last epoch
            (None if unknown).
        eta_stop_s: seconds left to the early stop of a run with validation and
            ``train.patience``, if no later epoch validates better (the stop moves with each new
            best epoch; None without validation, before its first one, or when the stop is the
            last epoch anyway).
        run_state: the run's state (training, evaluating, done, failed, ...).
    """

    epoch: int = 0
    epochs: int = 0
    iteration: int = 0
    iters: int = 0
    loss: float | None = None
    seconds_per_iteration: float | None = None
    fraction: float = 0.0
    eta_s: float | None = None
    eta_stop_s: float | None = None
    run_state: str = "created"
    message: str = ""

    def eta_text(self) -> str:
        """The ETA as ``hydrolens jobs`` and the explorer's job card write it: 'ETA 42 s'; for an
        early-stopping run the stop first and the epoch cap as the bound, 'ETA 11 min 24 s if
        validation stops improving (≤ 81 min 42 s)'; '' while unknown."""
        if self.eta_s is None:
            return ""
        if self.eta_stop_s is not None:
            return (f"ETA {format_duration(self.eta_stop_s)} if validation stops improving "
                    f"(≤ {format_duration(self.eta_s)})")
        return f"ETA {format_duration(self.eta_s)}"


def format_duration(seconds: float) -> str:
    """``seconds`` rounded to whole seconds as '42 s' or '11 min 24 s'."""
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


@dataclass
class Job:
    """One job (a snapshot of its folder). ``state`` is one of :data:`JOB_STATES`."""

    job_id: str
    path: Path
    state: str
    label: str
    run_id: str | None
    args: list[str]
    created: str
    started: str | None = None
    ended: str | None = None
    returncode: int | None = None
    message: str = ""
    device: str = "auto"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        return self.path / "log.txt"

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def log_tail(self, lines: int = 20, max_bytes: int = 16384) -> str:
        """The last ``lines`` lines of the job's log (tqdm carriage returns resolved)."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - max_bytes))
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            return ""
        rows = [r.rsplit("\r", 1)[-1] for r in text.splitlines()]
        return "\n".join([r for r in rows if r.strip()][-lines:])


class JobRunner:
    """The job queue of one run store.

    Args:
        store: the run store (jobs live in ``<store>/.jobs``); a path or RunStore.
        max_running: local jobs running at once (default $HYDROLENS_MAX_JOBS or 1); a Dask
            cluster schedules its own.
        scheduler: a Dask scheduler address (default ``$HYDROLENS_SCHEDULER``): new jobs run on
            that cluster (executor ``dask``); None: on this machine.
    """

    def __init__(self, store: RunStore | str | os.PathLike | None = None,
                 max_running: int | None = None, scheduler: str | None = None):
        self.store = store if isinstance(store, RunStore) else RunStore(store)
        self.root = self.store.root / JOBS_DIR
        self.max_running = max(1, int(max_running or DEFAULT_MAX_RUNNING))
        #: the Dask scheduler new jobs go to (None: this machine), see core.cluster
        self.scheduler = scheduler_address(scheduler)

    @property
    def executor(self) -> str:
        """Where new jobs run: ``local`` or ``dask``."""
        return "dask" if self.scheduler else "local"

    # -- submitting ---------------------------------------------------------------------------
    def submit_train(self, config: dict[str, Any], label: str | None = None,
                     start: bool = True) -> Job:
        """Queue the training of a new run described by ``config`` (a RunConfig dict).

        The run directory is created now (config.yaml written, state ``created``) so the page
        can show it at once; the job trains it (``hydrolens train --resume RUN``, which starts
        from scratch when there is no checkpoint) and evaluates it.

        Raises:
            ConfigError: invalid config (names the fields); InvalidNameError: bad run name.
        """
        cfg = RunConfig.from_dict(config, source="job config")
        run = self.store.create(cfg.run_name())
        run.write_config(cfg.to_dict())
        run.update_status(state="created", epochs=cfg.train.epochs, epoch=0,
                          message="queued for training")
        return self._submit(run.run_id, label or f"train {cfg.model.variant}", cfg.train.device, start,
                            self._train_args(run.run_id))

    def submit_resume(self, run_id: str, epochs: int | None = None, device: str | None = None,
                      label: str | None = None, start: bool = True, threads: int | None = None) -> Job:
        """Queue ``hydrolens train --resume RUN`` (continue after its last checkpoint, evaluate).

        Raises:
            RunNotFoundError: no such run; JobError: a training job for this run is already
            queued or running.
        """
        run = self.store.get(run_id)
        extra = ["--epochs", str(int(epochs))] if epochs else []
        extra += ["--threads", str(int(threads))] if threads else []
        dev = device or "auto"
        return self._submit(run.run_id, label or f"resume {run.run_id}", dev, start,
                            self._train_args(run.run_id, dev, extra))

    def submit_curve(self, run_id: str, every: int, data_root: str | None = None,
                     label: str | None = None, start: bool = True) -> Job:
        """Queue ``hydrolens learning-curve RUN --every N``: the test median NSE of the run's
        epoch checkpoints (:func:`core.benchmarks.runs.learning_curve`, cached in the run's
        learning_curve.csv) as a job of this queue, so the evaluations never share the cores
        with a training (two on 2 cores slow each other about tenfold). It waits behind the
        jobs already queued for the same run (e.g. the training whose checkpoints it reads).

        Raises:
            RunNotFoundError: no such run; JobError: a learning-curve job for this run is
            already queued or running.
        """
        run = self.store.get(run_id)
        args = ["learning-curve", run.run_id, "--out", str(self.store.root), "--every", str(int(every))]
        args += ["--data-root", str(data_root)] if data_root else []
        return self._submit(run.run_id, label or f"learning curve {run.run_id}", "cpu", start, args)

    def _train_args(self, run_id: str, device: str = "auto", extra: Iterable[str] = ()) -> list[str]:
        args = ["train", "--resume", run_id, "--out", str(self.store.root), "--no-progress", *extra]
        return args + (["--device", device] if device and device != "auto" else [])

    def _submit(self, run_id: str, label: str, device: str, start: bool, args: list[str]) -> Job:
        """Queue ``hydrolens ARGS`` for ``run_id``; one queued or running job of each command
        (``args[0]``) per run."""
        for job in self.jobs(pump=False):
            if job.run_id == run_id and not job.final and job.args[:1] == args[:1]:
                raise JobError(f"run {run_id} already has job {job.job_id} ({job.state})")
        dashboard = None
        if self.scheduler:  # refuse here what the cluster could never run
            try:
                dashboard = require_cluster(self.scheduler, gpu=device == "cuda").dashboard
            except ClusterError as e:
                raise JobError(str(e)) from None
        with self._queue_lock():  # ids sort in submission order (the queue's order), unique
            last = max((p.name[:19] for p in self.root.iterdir() if p.is_dir()), default="")
            while (stamp := dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")[:-3]) <= last:
                time.sleep(0.001)  # a second job within the same millisecond
            job_id = stamp + "-" + uuid.uuid4().hex[:4]
            path = self.root / job_id
            path.mkdir(parents=True, exist_ok=False)
        write_json_atomic(path / "job.json", {
            "job_id": job_id, "state": "queued", "label": label, "run_id": run_id, "args": list(args),
            "device": device, "created": now_iso(), "executor": self.executor,
            **({"scheduler": self.scheduler, "dashboard": dashboard} if self.scheduler else {}),
        })
        if start:
            self.pump()
        return self.get(job_id)

    # -- reading ------------------------------------------------------------------------------
    def _load(self, path: Path) -> Job | None:
        spec = _read_json(path / "job.json")
        if spec is None:
            return None
        result = _read_json(path / "result.json")
        state = spec.get("state", "queued")
        cancel = (path / "cancel").exists()
        info = dict(spec)
        if result is not None:
            info.update(result)
            state = result.get("state", "failed")
        elif state == "running" and spec.get("executor") == "dask":
            state, info["message"] = _dask_state(path, spec, cancel)
        elif state == "running":
            alive = _alive(spec)
            if not alive and cancel:  # stopped by the cancel before it could write a result
                state = "cancelled"
                info["message"] = CANCELLED
            elif not alive:
                state = "failed"
                info["message"] = ("the worker stopped without a result (killed?); the run can be "
                                   "resumed")
            elif cancel:
                state = "cancelling"
        elif state == "queued" and cancel:
            state = "cancelled"
        return Job(job_id=path.name, path=path, state=state, label=str(info.get("label", "")),
                   run_id=info.get("run_id"), args=list(info.get("args", [])),
                   created=str(info.get("created", "")), started=info.get("started"),
                   ended=info.get("ended"), returncode=info.get("returncode"),
                   message=str(info.get("message", "")), device=str(info.get("device", "auto")),
                   info=info)

    def get(self, job_id: str) -> Job:
        """The job ``job_id``.

        Raises:
            JobError: no such job.
        """
        if "/" in job_id or job_id.startswith("."):
            raise JobError(f"invalid job id {job_id!r}")
        job = self._load(self.root / job_id)
        if job is None:
            raise JobError(f"no job {job_id!r} in {self.root}")
        return job

    def jobs(self, pump: bool = True) -> list[Job]:
        """Every job, newest first (``pump``: first start queued jobs where slots are free)."""
        if pump:
            self.pump()
        if not self.root.is_dir():
            return []
        out = [j for p in self.root.iterdir() if p.is_dir() and not p.is_symlink()
               and (j := self._load(p)) is not None]
        return sorted(out, key=lambda j: j.job_id, reverse=True)

    def progress(self, job: Job) -> Progress:
        """The job's training progress (from its run's status.json and train_log.csv)."""
        p = Progress()
        if not job.run_id:
            return p
        if job.args[:1] != ["train"]:  # a learning curve: no epochs of its own to count
            p.fraction, p.run_state = float(job.state == "done"), job.state
            p.message = {"queued": "waiting to start",
                         "running": "scoring the epoch checkpoints on the test period"}.get(job.state, job.message)
            return p
        try:
            run = self.store.get(job.run_id)
            st = run.status()
        except Exception:  # noqa: BLE001 - a missing or broken run shows no progress
            return p
        num = lambda v, d=0: v if isinstance(v, (int, float)) and not isinstance(v, bool) else d  # noqa: E731
        p.epoch, p.epochs = int(num(st.get("epoch"))), int(num(st.get("epochs")))
        p.iters = int(num(st.get("iters_per_epoch")))
        p.iteration = int(num(st.get("iteration"))) if st.get("state") == "training" else 0
        if p.iteration >= p.iters:  # the status of a finished epoch
            p.iteration = 0
        p.loss = st.get("loss") if isinstance(st.get("loss"), (int, float)) else None
        spi = st.get("seconds_per_iteration")
        p.seconds_per_iteration = float(spi) if isinstance(spi, (int, float)) else None
        p.run_state = str(st.get("state", "created"))
        p.message = str(st.get("message", ""))
        total = p.epochs * p.iters
        done = p.epoch * p.iters + p.iteration
        if p.run_state in ("evaluating", "done") or job.state == "done":
            p.fraction = 1.0
        elif total:
            p.fraction = min(1.0, done / total)
        if p.seconds_per_iteration and total and job.state in ("running", "cancelling") \
                and p.run_state == "training":
            rate = _typical_rate(run, p.iters, p.seconds_per_iteration)
            p.eta_s = (total - done) * rate
            stop = _early_stop_epoch(run, st, p.epochs)
            if stop is not None and stop < p.epochs:
                p.eta_stop_s = max(0, stop * p.iters - done) * rate
        return p

    # -- the queue ----------------------------------------------------------------------------
    @contextmanager
    def _queue_lock(self):
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def pump(self) -> list[Job]:
        """Start queued jobs (oldest first) while fewer than ``max_running`` run.

        Safe to call from any process at any time (a flock serialises callers). A queued job
        whose run another process is busy with (``hydrolens train`` in a terminal) waits, and so
        does one behind an older job of the same run that has not ended (a learning curve
        behind its training): the jobs of one run run in submission order.

        Returns:
            the jobs started by this call.
        """
        for pid, proc in list(_LIVE_PROCS.items()):  # reap our finished workers
            if proc.poll() is not None:
                _LIVE_PROCS.pop(pid, None)
        if not self.root.is_dir():
            return []
        started = []
        with self._queue_lock():
            jobs = sorted(self.jobs(pump=False), key=lambda j: j.job_id)
            for job in jobs:  # the cluster schedules its jobs itself: hand them over at once
                if job.state == "queued" and job.info.get("executor") == "dask":
                    self._start_dask(job)
                    started.append(job)
            local = [j for j in jobs if j.info.get("executor", "local") == "local"]
            running = sum(j.state in ("running", "cancelling") for j in local)
            ahead: set[str] = set()  # runs with an older job not yet ended
            for job in local:
                if running >= self.max_running:
                    break
                behind = job.run_id in ahead  # the jobs of one run run in submission order
                if job.run_id and not job.final:
                    ahead.add(job.run_id)
                if job.state != "queued" or behind:
                    continue
                if job.run_id and self._run_busy(job.run_id):
                    continue
                self._start(job)
                started.append(job)
                running += 1
        return started

    def _run_busy(self, run_id: str) -> bool:
        try:
            return self.store.get(run_id).busy() is not None
        except Exception:  # noqa: BLE001 - a vanished run: the job fails when it starts
            return False

    def job_env(self) -> dict[str, str]:
        """The environment of a local job's worker: :func:`core._runtime.child_env`, and, where
        more than one job may run at once, OpenMP threads that sleep rather than spin while they
        wait (``OMP_WAIT_POLICY=PASSIVE``, unless the user set a policy). Measured on the 2-core
        VM (docs/performance.md): two demo trainings side by side took 5.8 s an epoch each (a
        first epoch 29 s) spinning and 3.7 s passive; one training alone is 2.2 s spinning and
        2.9 s passive, so a single job keeps the default."""
        extra = {"HYDROLENS_MAX_JOBS": str(self.max_running)}
        if self.max_running > 1 and "OMP_WAIT_POLICY" not in os.environ:
            extra["OMP_WAIT_POLICY"] = "PASSIVE"
        return child_env(**extra)

    def _start(self, job: Job) -> None:
        env = self.job_env()
        with open(job.log_path, "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "core.jobs", str(job.path)],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=env, cwd=REPO, start_new_session=True)
        _LIVE_PROCS[proc.pid] = proc
        spec = _read_json(job.path / "job.json") or {}
        spec.update(state="running", pid=proc.pid, pid_started=process_started(proc.pid), started=now_iso())
        write_json_atomic(job.path / "job.json", spec)

    def _start_dask(self, job: Job) -> None:
        spec = _read_json(job.path / "job.json") or {}
        try:
            key = submit_detached(spec["scheduler"], run_job_task, str(job.path),
                                  key=f"hydrolens-job-{job.job_id}", gpu=job.device == "cuda")
        except ClusterError as e:
            write_json_atomic(job.path / "result.json", {"state": "failed", "returncode": None,
                                                         "ended": now_iso(), "message": str(e)})
            return
        spec.update(state="running", task=key, started=now_iso())
        write_json_atomic(job.path / "job.json", spec)

    # -- control ------------------------------------------------------------------------------
    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job, or stop a running one (SIGTERM; its run stays resumable).

        Raises:
            JobError: no such job, or it has already ended.
        """
        job = self.get(job_id)
        if job.final:
            raise JobError(f"job {job_id} has already ended ({job.state})")
        (job.path / "cancel").write_text(now_iso() + "\n")
        pid = job.info.get("pid")
        if job.info.get("executor") == "dask":
            pass  # the task on its worker sees the cancel file within a second
        elif job.state in ("running", "cancelling") and _alive(job.info):
            try:
                os.kill(int(pid), signal.SIGTERM)
            except ProcessLookupError:
                pass
        elif job.state == "queued" and job.run_id:
            try:
                self.store.get(job.run_id).update_status(
                    message="cancelled before training started; resume to train it")
            except Exception:  # noqa: BLE001
                pass
        return self.get(job_id)

    def resume(self, job_id: str, epochs: int | None = None, scheduler: str | None = None) -> Job:
        """Queue a new job that continues the run of an ended job from its last checkpoint,
        where the ended job ran, or on the Dask cluster at ``scheduler`` ("" = this machine).

        Raises:
            JobError: the job is still queued or running, or has no run.
        """
        job = self.get(job_id)
        if not job.final:
            raise JobError(f"job {job_id} is still {job.state}")
        if not job.run_id:
            raise JobError(f"job {job_id} has no run to resume")
        where = job.info.get("scheduler", "") if scheduler is None else scheduler
        runner = self if scheduler_address(where) == self.scheduler else \
            JobRunner(self.store, self.max_running, scheduler=where)
        if job.args[:1] != ["train"]:  # e.g. a learning curve: the same command again
            return runner._submit(job.run_id, job.label, job.device, True, job.args)
        return runner.submit_resume(job.run_id, epochs=epochs, device=job.device)

    def wait(self, job_ids: Iterable[str], poll: float = 2.0, timeout: float | None = None,
             log=None) -> list[Job]:
        """Block until every job has ended (pumping the queue meanwhile); returns them."""
        ids = list(job_ids)
        t0 = time.monotonic()
        seen: dict[str, str] = {}
        while True:
            jobs = [self.get(i) for i in ids]
            self.pump()
            for j in jobs:
                if log and seen.get(j.job_id) != j.state:
                    log(f"job {j.job_id} ({j.label}): {j.state}")
                seen[j.job_id] = j.state
            if all(j.final for j in jobs):
                return jobs
            if timeout is not None and time.monotonic() - t0 > timeout:
                raise TimeoutError(f"jobs still running after {timeout} s: "
                                   f"{[j.job_id for j in jobs if not j.final]}")
            time.sleep(poll)


def _early_stop_epoch(run, status: dict, epochs: int) -> int | None:
    """The epoch a training run with validation stops at if no later epoch validates better:
    its best epoch + ``train.patience`` validations × ``train.val_every`` epochs (the trainer's
    rule, ``Trainer.stopped_early``), at most ``epochs``; None for a run without validation
    sites, without patience or before its first validation."""
    best = status.get("best_epoch")
    if not isinstance(best, int) or isinstance(best, bool) or not status.get("n_val_sites"):
        return None
    try:
        train = run.config().get("train") or {}
    except Exception:  # noqa: BLE001 - no readable config: no early-stop estimate
        return None
    patience, every = train.get("patience"), train.get("val_every") or 1
    if not isinstance(patience, int) or patience <= 0 or not isinstance(every, int):
        return None
    return min(epochs, best + patience * every)


def _typical_rate(run, iters: int, current: float) -> float:
    """Seconds per iteration for an ETA: the median over the run's last 5 finished epochs
    (train_log.csv, whole epochs with their validation), so a burst of other load during the
    current epoch does not swing the estimate; ``current`` (this epoch's) before any epoch ended."""
    try:
        secs = pd.to_numeric(run.train_log()["seconds"], errors="coerce").dropna().tail(5)
    except Exception:  # noqa: BLE001 - no or an older log: the current epoch's rate
        return current
    return float(secs.median()) / iters if len(secs) and iters else current


def _dask_state(path: Path, spec: dict, cancel: bool) -> tuple[str, str]:
    """(state, message) of a Dask job without a result, from its heartbeat file."""
    beat = path / "heartbeat"
    try:
        age = time.time() - beat.stat().st_mtime
    except OSError:  # no worker has started it yet
        return ("cancelling" if cancel else "running"), "waiting for a Dask worker"
    where = (_read_json(path / "worker.json") or {}).get("worker", "a Dask worker")
    if age > HEARTBEAT_STALE_S:
        if cancel:
            return "cancelled", CANCELLED
        return "failed", (f"the Dask worker ({where}) stopped without a result {age:.0f} s ago; the "
                          "scheduler runs the job again on another worker if it can, else resume it")
    return ("cancelling" if cancel else "running"), f"running on {where}"


def _pdeathsig() -> None:
    """In the child: SIGTERM when the worker that started it dies (Linux), so a killed Dask
    worker's trainer stops (resumable) instead of holding the run."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_job_task(job_dir: str) -> str:
    """A job as a Dask task (executor ``dask``): run on a worker; returns the job's end state.

    Records the worker in ``worker.json``, waits (up to :data:`RUN_LOCK_WAIT_S`) for a previous
    attempt's trainer to release the run, then runs the job as :func:`run_job` does, with a
    heartbeat, the child tied to this worker's life.
    """
    path = Path(job_dir)
    try:
        from distributed import get_worker

        where = get_worker().address
    except (ImportError, ValueError):
        where = "?"
    (path / "heartbeat").touch()
    write_json_atomic(path / "worker.json", {"host": socket.gethostname(), "worker": where,
                                             "pid": os.getpid(), "started": now_iso()})
    spec = _read_json(path / "job.json") or {}
    store = RunStore(path.parent.parent)
    t0 = time.monotonic()
    while spec.get("run_id") and time.monotonic() - t0 < RUN_LOCK_WAIT_S:
        try:
            if store.get(spec["run_id"]).busy() is None:
                break
        except Exception:  # noqa: BLE001 - a vanished run fails in the command itself
            break
        (path / "heartbeat").touch()
        time.sleep(1.0)
    with open(path / "log.txt", "ab") as log:
        return run_job(path, stdout=log, heartbeat=True)


def run_job(job_dir: Path, stdout=None, heartbeat: bool = False) -> str:
    """Run one job's command as a child, pass a cancel on as SIGTERM (the ``cancel`` file is
    checked every second, and SIGTERM/SIGINT to this process forward too), record result.json.

    Args:
        job_dir: the job's folder.
        stdout: where the child writes (default: inherited).
        heartbeat: touch ``heartbeat`` every second and tie the child to this process's life
            (a Dask task).

    Returns:
        the end state: done, failed or cancelled.
    """
    spec = _read_json(job_dir / "job.json") or {}
    cmd = [sys.executable, "-m", "core.cli", *spec.get("args", [])]

    def say(text: str) -> None:  # the job's log: this process's stdout, or ``stdout``
        if stdout is None:
            print(text, flush=True)
        else:
            stdout.write(f"{text}\n".encode())
            stdout.flush()

    say(f"$ hydrolens {' '.join(spec.get('args', []))}")
    env = child_env()
    if heartbeat:  # on a Dask worker: the job's own calibration stays on this worker (a task
        # waiting for tasks of the same cluster could take the threads they need)
        env.pop(SCHEDULER_ENV, None)
    child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stdout, env=env, cwd=REPO,
                             preexec_fn=_pdeathsig if heartbeat else None)
    sent = False

    def forward(signum=None, _frame=None):
        nonlocal sent
        (job_dir / "cancel").touch()
        if not sent:
            sent = True
            try:
                child.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    if _in_main_thread():
        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
    while True:
        if (job_dir / "cancel").exists():  # asked to cancel (any time, from anywhere)
            forward()
        if heartbeat:
            (job_dir / "heartbeat").touch()
        try:
            rc = child.wait(timeout=1.0)
            break
        except subprocess.TimeoutExpired:
            continue
    cancelled = (job_dir / "cancel").exists()
    state = "done" if rc == 0 else ("cancelled" if cancelled else "failed")
    done = {"train": "trained and evaluated", "learning-curve": "learning curve computed"}
    message = {"done": done.get(spec.get("args", ["train"])[0], "done"), "cancelled": CANCELLED,
               "failed": f"exit code {rc}; see the log"}[state]
    write_json_atomic(job_dir / "result.json", {"state": state, "returncode": rc, "ended": now_iso(),
                                                "message": message})
    say(f"job {state} (exit {rc})")
    return state


def _in_main_thread() -> bool:
    """Whether this is the main thread (signal handlers can only be set there; a Dask task is not)."""
    return threading.current_thread() is threading.main_thread()


def _worker(job_dir: Path) -> int:
    """The local executor's worker process: run the job, then move the queue on."""
    run_job(job_dir)
    runs_root = job_dir.parent.parent
    try:  # move the queue on, even with no app or CLI watching
        JobRunner(runs_root).pump()
    except Exception as e:  # noqa: BLE001
        print(f"could not start the next queued job: {e}", flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m core.jobs JOB_DIR")
    sys.exit(_worker(Path(sys.argv[1])))
