"""Dask for HydroLens: the cluster a job runs on when one machine is not enough.

HydroLens does not schedule work across machines itself. Where a user has a Dask cluster (a
``dask scheduler`` with ``dask worker`` processes, a :class:`distributed.LocalCluster`, or SLURM
jobs started by dask-jobqueue), jobs are handed to it (:mod:`core.jobs`, executor ``dask``) and
the rest of HydroLens reads their state from the run store as for local jobs. The run store must
be a path every worker sees (a shared filesystem): workers write checkpoints, logs and results
there.

``distributed`` and ``dask-jobqueue`` are an optional extra (``pip install -e ".[cluster]"``);
without them a request for a cluster says so.

The scheduler is given by ``--scheduler tcp://HOST:PORT`` or ``$HYDROLENS_SCHEDULER``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

#: Environment variable naming the Dask scheduler (tcp://HOST:PORT) jobs are sent to.
SCHEDULER_ENV = "HYDROLENS_SCHEDULER"
#: Seconds to wait for a scheduler to answer before calling it unreachable.
CONNECT_TIMEOUT_S = 10

_CLIENTS: dict[str, Any] = {}


class ClusterError(RuntimeError):
    """No usable Dask cluster: the extra is not installed, the scheduler does not answer, or no
    worker offers what a job asks for (the message says which and what to do)."""


def scheduler_address(given: str | None = None) -> str | None:
    """The scheduler to use: ``given`` ("" = this machine, whatever the environment says), else
    ``$HYDROLENS_SCHEDULER``, else None (this machine)."""
    address = (given if given is not None else os.environ.get(SCHEDULER_ENV) or "").strip()
    return address or None


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ClusterError("running on a Dask cluster needs the optional packages distributed and "
                           "dask-jobqueue: pip install -e \".[cluster]\"") from None
    return distributed


def connect(address: str, timeout: float = CONNECT_TIMEOUT_S):
    """A ``distributed.Client`` to the scheduler at ``address`` (one per address and process).

    Raises:
        ClusterError: the optional packages are missing, or nothing answers at ``address``
            within ``timeout`` seconds (names the address and how to start a cluster).
    """
    distributed = _distributed()
    client = _CLIENTS.get(address)
    if client is not None and client.status == "running":
        return client
    try:
        client = distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as e:
        raise ClusterError(f"no Dask scheduler answers at {address} ({type(e).__name__}: "
                           f"{' '.join(str(e).split())[:200]}); start one with `hydrolens cluster "
                           "local` or `dask scheduler`, or leave the scheduler out to run on this "
                           "machine") from None
    _CLIENTS[address] = client
    return client


def disconnect(address: str) -> None:
    """Close this process's client to ``address`` (before its cluster goes away)."""
    client = _CLIENTS.pop(address, None)
    if client is not None:
        client.close()


@dataclass
class ClusterInfo:
    """What a cluster offers: its scheduler address, dashboard link, workers, threads, GPUs."""

    address: str
    dashboard: str | None
    workers: int
    threads: int
    gpus: int

    def describe(self) -> str:
        gpus = f", {self.gpus} GPU(s)" if self.gpus else ", no GPU"
        dash = f"; dashboard {self.dashboard}" if self.dashboard else ""
        return f"{self.workers} worker(s), {self.threads} thread(s){gpus} at {self.address}{dash}"


def cluster_info(client) -> ClusterInfo:
    """Workers, threads and GPUs (the ``GPU`` resource) of ``client``'s cluster."""
    info = client.scheduler_info()
    workers = info.get("workers", {})
    return ClusterInfo(
        address=str(client.scheduler.address),
        dashboard=getattr(client, "dashboard_link", None),
        workers=len(workers),
        threads=sum(int(w.get("nthreads", 0)) for w in workers.values()),
        gpus=int(sum(float((w.get("resources") or {}).get("GPU", 0)) for w in workers.values())),
    )


def require_cluster(address: str, gpu: bool = False, timeout: float = CONNECT_TIMEOUT_S) -> ClusterInfo:
    """What the cluster at ``address`` offers, after checking it can run a job (``gpu``: one
    that asks for CUDA).

    Raises:
        ClusterError: no scheduler answers within ``timeout`` s, or ``gpu`` and no worker
            offers the ``GPU`` resource (the message says how to start GPU workers).
    """
    info = cluster_info(connect(address, timeout=timeout))
    if gpu and info.gpus < 1:
        raise ClusterError(f"the job asks for CUDA, but no worker of the cluster at {address} offers a "
                           "GPU; start GPU workers with `dask worker ADDRESS --resources GPU=1`, or "
                           "train on device cpu")
    return info


def submit_detached(address: str, fn: Callable, *args, key: str, gpu: bool = False, retries: int = 0):
    """Run ``fn(*args)`` on the cluster at ``address`` as a task that outlives this process
    (``distributed.fire_and_forget``): the scheduler keeps it, and runs it again on another
    worker if its worker dies. A GPU task asks for the resource ``{"GPU": 1}``.

    Returns:
        the task's key.

    Raises:
        ClusterError: no scheduler at ``address``, or ``gpu`` and no worker offers a GPU.
    """
    distributed = _distributed()
    require_cluster(address, gpu=gpu)
    future = connect(address).submit(fn, *args, key=key, pure=False, resources={"GPU": 1} if gpu else None,
                                     retries=retries)
    distributed.fire_and_forget(future)
    return future.key


def start_local_cluster(workers: int, threads: int, dashboard_address: str = ":8787"):
    """A :class:`distributed.LocalCluster` of ``workers`` worker processes with ``threads``
    threads each (processes, so a killed worker takes only its own tasks)."""
    distributed = _distributed()
    return distributed.LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                                    dashboard_address=dashboard_address)


# ------------------------------------------------------------------------------ SLURM (dask-jobqueue)
def _slurm_model():
    from pydantic import BaseModel, ConfigDict, Field

    class SlurmConfig(BaseModel):
        """One SLURM job = one Dask worker process (dask-jobqueue ``SLURMCluster``)."""

        model_config = ConfigDict(extra="forbid", strict=True)
        queue: str | None = Field(None, description="partition (#SBATCH -p)")
        account: str | None = Field(None, description="account to charge (#SBATCH -A)")
        cores: int = Field(..., ge=1, description="CPU cores per job (worker threads)")
        memory: str = Field(..., description="memory per job, e.g. '16GB'")
        walltime: str = Field("04:00:00", description="HH:MM:SS per job")
        gpus: int = Field(0, ge=0, description="GPUs per job: #SBATCH --gres=gpu:N and the worker "
                          "resource GPU=N, so CUDA jobs land there")
        python: str | None = Field(None, description="the Python that runs the worker (the venv's)")
        setup: list[str] = Field(default_factory=list, description="shell lines before the worker "
                                 "starts (module load, source .venv/bin/activate, export ...)")
        extra_directives: list[str] = Field(default_factory=list, description="more #SBATCH options")

    return SlurmConfig


def read_slurm_config(path) -> dict:
    """The SLURM settings of a small YAML file (queue, account, cores, memory, walltime, gpus,
    python, setup, extra_directives), validated.

    Raises:
        ClusterError: unreadable file, unknown keys or bad values (names the file and field).
    """
    import yaml
    from pydantic import ValidationError

    try:
        raw = yaml.safe_load(open(path, encoding="utf-8").read()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ClusterError(f"{path}: cannot read the SLURM settings ({type(e).__name__}: {e})") from None
    if not isinstance(raw, dict):
        raise ClusterError(f"{path}: expected a mapping of SLURM settings (cores, memory, ...)")
    try:
        return _slurm_model()(**raw).model_dump()
    except ValidationError as e:
        lines = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise ClusterError(f"{path}: {lines}") from None


def slurm_cluster(settings: dict):
    """A dask-jobqueue ``SLURMCluster`` for ``settings`` (:func:`read_slurm_config`); no job is
    submitted until it is scaled (``cluster.scale(jobs=N)``)."""
    _distributed()
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise ClusterError("SLURM clusters need dask-jobqueue: pip install -e \".[cluster]\"") from None
    s = settings
    directives = list(s["extra_directives"]) + ([f"--gres=gpu:{s['gpus']}"] if s["gpus"] else [])
    return SLURMCluster(
        queue=s["queue"], account=s["account"], cores=s["cores"], processes=1, memory=s["memory"],
        walltime=s["walltime"], python=s["python"], job_script_prologue=list(s["setup"]),
        job_extra_directives=directives,
        worker_extra_args=["--resources", f"GPU={s['gpus']}"] if s["gpus"] else [])
