"""Run store: one directory per run, holding everything needed to reproduce and display it.

Layout of a run directory ``<root>/<run_id>/``::

    config.yaml        the typed training config (core.training.config.TrainConfig) as YAML
    normalization.json normalisation statistics (training period, training basins)
    status.json        state machine: created -> training -> evaluating -> done | failed
    train_log.csv      one row per epoch: epoch, loss, seconds
    checkpoints/       epoch_NNN.pt (every epoch) and last.pt, written atomically
    metrics.csv        per-basin test metrics (NSE, KGE, ...) with gauge name and location
    outputs.nc         every flux and state over the test period, dims (basin, time)

The index is the directory listing itself (no second file that could go stale): ``RunStore.list``
scans ``<root>/*/status.json``. Every file is written atomically (core.runs.io), so a killed run
leaves the last complete checkpoint and a readable status.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr
import yaml

from .io import write_json_atomic, write_text_atomic

ENV_VAR = "HYDROLENS_RUNS"
STATES = ("created", "training", "evaluating", "done", "failed")


class RunNotFoundError(KeyError):
    """Raised when a run id is not in the store; the message lists the runs that exist."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


@dataclass(frozen=True)
class RunInfo:
    """Summary of one run, as listed by ``hydrolens runs`` and the explorer's run selector.

    ``state`` is the status.json state, except ``interrupted`` for a run whose training or
    evaluation process (recorded pid on this host) no longer exists.
    """

    run_id: str
    path: Path
    state: str
    created: str
    variant: str
    preset: str | None
    n_basins: int
    epochs_done: int
    epochs: int
    median_nse: float | None
    median_kge: float | None
    name: str | None = None


def _process_gone(status: dict) -> bool:
    """True when status names a process on this host that no longer exists."""
    import socket

    pid, host = status.get("pid"), status.get("host")
    if not pid or host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Run:
    """One run directory. Cheap to construct; every accessor reads from disk."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.run_id = self.path.name

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # paths -------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def outputs_path(self) -> Path:
        return self.path / "outputs.nc"

    @property
    def normalization_path(self) -> Path:
        return self.path / "normalization.json"

    @property
    def train_log_path(self) -> Path:
        return self.path / "train_log.csv"

    # reading -----------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The run's config as a plain dict (see core.training.config.TrainConfig)."""
        with open(self.config_path, encoding="utf-8") as fh:
            return yaml.safe_load(fh) or {}

    def status(self) -> dict[str, Any]:
        """Content of status.json: state, message, epoch, epochs, loss, updated, ..."""
        try:
            return json.loads(self.status_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"state": "created", "message": "no status yet"}

    def has_evaluation(self) -> bool:
        """True when metrics.csv and outputs.nc exist."""
        return self.metrics_path.exists() and self.outputs_path.exists()

    def metrics(self) -> pd.DataFrame:
        """Per-basin test metrics, index ``basin`` (8-digit str).

        Columns: NSE, KGE, gauge_name, gauge_lat, gauge_lon and further metrics.

        Raises:
            FileNotFoundError: the run has not been evaluated yet.
        """
        if not self.metrics_path.exists():
            raise FileNotFoundError(
                f"{self.metrics_path} does not exist: run `hydrolens evaluate {self.run_id}` first"
            )
        return pd.read_csv(self.metrics_path, dtype={"basin": str}).set_index("basin")

    def outputs(self) -> xr.Dataset:
        """Fluxes and states over the test period, dims (basin, time), opened lazily.

        Variables: Q_obs and Q_sim (mm/d) plus every HBV flux and state (see
        core.physics.hbv.OUTPUT_UNITS). Close it (or use ``with``) when done.

        Raises:
            FileNotFoundError: the run has not been evaluated yet.
        """
        if not self.outputs_path.exists():
            raise FileNotFoundError(
                f"{self.outputs_path} does not exist: run `hydrolens evaluate {self.run_id}` first"
            )
        return xr.open_dataset(self.outputs_path)

    def train_log(self) -> pd.DataFrame:
        """Per-epoch training log (epoch, loss, seconds); empty when no epoch finished."""
        if not self.train_log_path.exists():
            return pd.DataFrame(columns=["epoch", "loss", "seconds"])
        return pd.read_csv(self.train_log_path)

    def info(self) -> RunInfo:
        """A RunInfo summary built from status.json, config.yaml and metrics.csv."""
        st = self.status()
        try:
            cfg = self.config()
        except FileNotFoundError:
            cfg = {}
        basins = cfg.get("data", {}).get("basins")
        n_cfg = len(basins) if isinstance(basins, list) else (basins if isinstance(basins, int) else 0)
        state = st.get("state", "created")
        if state in ("training", "evaluating") and _process_gone(st):
            state = "interrupted"  # killed without a chance to write its status (e.g. SIGKILL)
        med_nse = st.get("median_nse")
        med_kge = st.get("median_kge")
        return RunInfo(
            run_id=self.run_id,
            path=self.path,
            state=state,
            created=st.get("created", ""),
            variant=cfg.get("model", {}).get("variant", "?"),
            preset=cfg.get("preset"),
            n_basins=int(st.get("n_basins", n_cfg)),
            epochs_done=int(st.get("epoch", 0)),
            epochs=int(cfg.get("train", {}).get("epochs", st.get("epochs", 0))),
            median_nse=None if med_nse is None else float(med_nse),
            median_kge=None if med_kge is None else float(med_kge),
            name=cfg.get("name"),
        )

    # writing -----------------------------------------------------------------------------
    def update_status(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into status.json (atomically) and stamp ``updated``."""
        st = self.status()
        if "state" in fields and fields["state"] not in STATES:
            raise ValueError(f"status state must be one of {STATES}, got {fields['state']!r}")
        st.update(fields)
        st["updated"] = _now()
        write_json_atomic(self.status_path, st)
        return st

    def write_config(self, config: dict[str, Any]) -> None:
        """Write config.yaml atomically."""
        write_text_atomic(self.config_path, yaml.safe_dump(config, sort_keys=False))

    def append_train_log(self, row: dict[str, Any]) -> None:
        """Append one epoch row to train_log.csv (rewritten atomically)."""
        log = self.train_log()
        log = pd.DataFrame([row]) if log.empty else pd.concat([log, pd.DataFrame([row])], ignore_index=True)
        write_text_atomic(self.train_log_path, log.to_csv(index=False))


_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class RunStore:
    """A folder of runs. ``root`` defaults to $HYDROLENS_RUNS, else ``./runs``."""

    def __init__(self, root: str | os.PathLike | None = None):
        if root is None:
            root = os.environ.get(ENV_VAR) or Path.cwd() / "runs"
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def list(self) -> list[RunInfo]:
        """All runs, newest first (by creation time, then id)."""
        if not self.root.is_dir():
            return []
        runs = [Run(p.parent).info() for p in self.root.glob("*/status.json")]
        return sorted(runs, key=lambda r: (r.created, r.run_id), reverse=True)

    def get(self, run_id: str) -> Run:
        """The run called ``run_id``.

        Raises:
            RunNotFoundError: no such run directory (the message lists existing runs).
        """
        path = self.root / run_id
        if not (path / "status.json").exists():
            known = ", ".join(r.run_id for r in self.list()) or "none"
            raise RunNotFoundError(f"run {run_id!r} not found in {self.root} (runs: {known})")
        return Run(path)

    def create(self, name: str | None = None) -> Run:
        """Create a new, empty run directory (state 'created') and return it.

        The id is ``<UTC timestamp>-<name>``; a numeric suffix keeps ids unique.
        """
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
        base = f"{stamp}-{_SAFE.sub('-', name)}" if name else stamp
        self.root.mkdir(parents=True, exist_ok=True)
        for i in range(1000):
            run_id = base if i == 0 else f"{base}-{i}"
            try:
                (self.root / run_id).mkdir()
                break
            except FileExistsError:
                continue
        run = Run(self.root / run_id)
        run.update_status(state="created", created=_now(), message="created")
        return run

    def latest(self, state: str | None = "done") -> Run | None:
        """The newest run (in ``state``, if given), or None."""
        for info in self.list():
            if state is None or info.state == state:
                return Run(info.path)
        return None
