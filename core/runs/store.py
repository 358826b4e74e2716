"""Run store: one directory per run, holding everything needed to reproduce and display it.

Layout of a run directory ``<root>/<run_id>/``::

    config.yaml        the typed training config (core.training.config.TrainConfig) as YAML
    normalization.json normalisation statistics (training period, training basins)
    status.json        state machine: created -> training -> evaluating -> done | failed
    train_log.csv      one row per epoch: epoch, loss, seconds
    checkpoints/       epoch_NNN.pt (every epoch) and last.pt, written atomically
    metrics.csv        per-basin test metrics (NSE, KGE, ...) with gauge name and location
    outputs.nc         forcing, every flux and state and Q_obs over the test period, dims (basin,
                       time), with units; attrs ``panels`` (display groups) and ``site_kind``
    parameters.nc      learned parameters in physical units: static (site,), dynamic βᵗ/γᵗ
                       (site, time), with units, bounds (valid_min/max) and parameter_type

The index is the directory listing itself (no second file that could go stale): ``RunStore.list``
scans the run directories of ``<root>``. Every file is written atomically (core.runs.io), so a
killed run leaves the last complete checkpoint and a readable status.

Isolation: a run whose files cannot be read (invalid JSON/YAML, a malformed metrics.csv, a
truncated outputs.nc, a missing status.json) is listed with state ``corrupt`` and the reason in
``RunInfo.problem``; it never hides the other runs. Readers raise :class:`RunFileError`
naming the file. Run ids and names are single path components (core.runs.safety); a process that
trains, evaluates or predicts holds the run's lock (:meth:`Run.lock`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr
import yaml

from ..datasets.loader import site_kind_of
from ..datasets.schema import pad_gauge_id
from .io import append_csv_row, load_yaml, now_iso, truncate_csv, update_json, write_text_atomic, yaml_error_text
from .outputs import open_cached, open_run_file, panels_of, site_frame, static_table, variables_of
from .safety import LOCK_FILE, MAX_RUN_NAME, RunLock, lock_holder, process_alive, validate_name

ENV_VAR = "HYDROLENS_RUNS"
STATES = ("created", "training", "evaluating", "done", "failed")
#: Files whose presence makes a folder of the store a run directory.
RUN_FILES = ("status.json", "config.yaml", "checkpoints", "metrics.csv", "outputs.nc")
#: Columns metrics.csv must have.
METRICS_COLUMNS = ("site", "NSE")
#: Variables of which outputs.nc must hold at least one (streamflow or soil-moisture runs).
SIMULATED_OUTPUTS = frozenset({"Q_sim", "SM"})


class RunFileError(ValueError):
    """A file of a run directory cannot be read or does not hold what it should.

    The message names the file, what is wrong and, where there is one, the command that repairs
    it (e.g. ``hydrolens evaluate RUN`` rewrites metrics.csv and outputs.nc).
    """


class RunNotFoundError(KeyError):
    """Raised when a run id is not in the store; the message lists the runs that exist."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


@dataclass(frozen=True)
class RunInfo:
    """Summary of one run, as listed by ``hydrolens runs`` and the explorer's run selector.

    ``state`` is the status.json state, except ``interrupted`` for a run whose training or
    evaluation process no longer exists (nobody holds its lock; or its recorded pid on this
    host is gone), and ``corrupt`` for a run whose files cannot be read: ``problem`` then
    names the file and the reason.
    """

    run_id: str
    path: Path
    state: str
    created: str
    variant: str
    preset: str | None
    n_sites: int
    epochs_done: int
    epochs: int
    median_nse: float | None
    median_kge: float | None
    name: str | None = None
    problem: str | None = None
    site_kind: str = "basin"
    median_rmse: float | None = None

    @property
    def site_noun(self) -> str:
        """"basins" or "cells": what the run's sites are called in a sentence."""
        return "cells" if self.site_kind == "grid_cell" else "basins"


def _process_gone(status: dict) -> bool:
    """True when status names a process on this host that no longer runs (exited, a zombie, or
    its pid reused by another process: ``safety.process_alive``)."""
    if not status.get("pid"):
        return False
    return not process_alive(status.get("pid"), host=status.get("host"), started=status.get("pid_started"))


def _is_run_dir(path: Path) -> bool:
    """A real folder (not a link) holding at least one of :data:`RUN_FILES` (links count: a planted
    one makes the run corrupt, it does not hide it)."""
    return not path.is_symlink() and path.is_dir() and any(os.path.lexists(path / f) for f in RUN_FILES)


def _stamp(path: Path) -> tuple | None:
    try:
        st = path.lstat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode)  # an atomic replace changes st_ino


def require_regular(path: Path) -> None:
    """A run's files must be regular files: a symlink could point a reader (and an error message
    quoting the content) at a file outside the run, a FIFO would block every reader.

    Raises:
        FileNotFoundError: no such file.
        RunFileError: a symlink or another non-regular file.
    """
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        raise RunFileError(f"{path}: a symbolic link; the files of a run must be regular files")
    if not stat.S_ISREG(mode):
        raise RunFileError(f"{path}: not a regular file")


# per-site parameter tables by file version (run path -> (stamp, table))
_PARAM_TABLES: dict[str, tuple] = {}

# check results cached by file version (path, inode, mtime, size, mode): listing a store re-reads
# only what changed
_CHECKED: dict[tuple, str | None] = {}


def _cached_check(path: Path, check) -> str | None:
    stamp = _stamp(path)
    if stamp is None:
        return None
    key = (str(path), *stamp)
    if key not in _CHECKED:
        if len(_CHECKED) > 4096:
            _CHECKED.clear()
        try:
            check(path)
            _CHECKED[key] = None
        except RunFileError as e:
            _CHECKED[key] = str(e)
        except FileNotFoundError:  # removed meanwhile: nothing to judge
            return None
        except Exception as e:  # noqa: BLE001 - any unreadable file is a problem to name, never a crash
            _CHECKED[key] = f"{path}: cannot be read ({type(e).__name__}: {' '.join(str(e).split())[:200]})"
    return _CHECKED[key]


def read_status_file(path: Path) -> dict[str, Any]:
    """status.json as a dict.

    Raises:
        FileNotFoundError: no such file.
        RunFileError: not JSON, not an object, an unknown ``state`` or a non-numeric epoch count.
    """
    require_regular(path)
    try:
        st = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise RunFileError(f"{path}: not valid JSON ({type(e).__name__ if isinstance(e, RecursionError) else e})") from None
    if not isinstance(st, dict):
        raise RunFileError(f"{path}: expected a JSON object with 'state', found {type(st).__name__}")
    if st.get("state", "created") not in STATES:
        raise RunFileError(f"{path}: 'state' is {st.get('state')!r}; expected one of {', '.join(STATES)}")
    for key in ("epoch", "epochs", "n_sites", "n_basins", "iters_per_epoch"):
        if key in st and not (isinstance(st[key], int) and not isinstance(st[key], bool)):
            raise RunFileError(f"{path}: '{key}' is {st[key]!r}; expected a whole number")
    for key in ("median_nse", "median_kge", "loss"):
        if st.get(key) is not None and not isinstance(st[key], (int, float)):
            raise RunFileError(f"{path}: '{key}' is {st[key]!r}; expected a number or null")
    return st


def read_config_file(path: Path) -> dict[str, Any]:
    """config.yaml as a plain dict (not validated against RunConfig here).

    Raises:
        FileNotFoundError: no such file.
        RunFileError: not valid YAML, or not a mapping of sections.
    """
    require_regular(path)
    try:
        cfg = load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except RecursionError:
        raise RunFileError(f"{path}: not valid YAML (nested too deeply)") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        why = yaml_error_text(e) if isinstance(e, yaml.YAMLError) else " ".join(str(e).split())
        raise RunFileError(f"{path}: not valid YAML ({why})") from None
    if cfg is None:
        raise RunFileError(f"{path}: the file is empty; expected the run's configuration "
                           "(sections data, model, train)")
    if not isinstance(cfg, dict):
        raise RunFileError(f"{path}: expected a mapping of sections (data, model, train), "
                           f"found {type(cfg).__name__}")
    for section in ("data", "model", "train"):
        if section in cfg and not isinstance(cfg[section], dict):
            raise RunFileError(f"{path}: section '{section}' should be a mapping, "
                               f"found {type(cfg[section]).__name__}")
    _ids_as_text(cfg.get("data") or {})
    return cfg


def _ids_as_text(data: dict) -> None:
    """Site ids of a config's data section as text, however the YAML wrote them: an unquoted
    gauge id (1022500, or 01022500 read by the loader as text) becomes its 8-digit id, a
    grid-cell id (12) the text "12"."""
    grid = site_kind_of(data.get("source", "caravan")) == "grid_cell"
    for key in ("sites", "basins", "test_sites"):
        ids = data.get(key)
        if isinstance(ids, list):
            data[key] = [str(b) if grid or isinstance(b, bool) or not isinstance(b, (int, str)) else
                         _gauge_id_or_text(b) for b in ids]


def _gauge_id_or_text(b: int | str) -> str:
    try:
        return pad_gauge_id(b)
    except ValueError:
        return str(b)  # not a gauge id: the config's validation names it


def read_metrics_file(path: Path) -> pd.DataFrame:
    """metrics.csv indexed by ``site`` (str: a gauge id or a grid-cell id). A file of a run
    evaluated before sites were generalised names the column ``basin``; it is read the same.

    Raises:
        FileNotFoundError: no such file.
        RunFileError: not a CSV table, lacks site/NSE/KGE, or NSE/KGE are not numbers.
    """
    if not path.exists():
        raise FileNotFoundError(path)
    require_regular(path)
    fix = f"; rewrite it with `hydrolens evaluate {path.parent.name}`"
    try:
        df = pd.read_csv(path, dtype={"site": str, "basin": str})
    except Exception as e:  # noqa: BLE001 - pandas raises many types for malformed text
        raise RunFileError(f"{path}: not a readable CSV table ({type(e).__name__}: "
                           f"{' '.join(str(e).split())}){fix}") from None
    if "site" not in df.columns and "basin" in df.columns:  # runs evaluated before v0.10
        df = df.rename(columns={"basin": "site"})
    missing = [c for c in METRICS_COLUMNS if c not in df.columns]
    if missing:
        raise RunFileError(f"{path}: missing column(s) {missing}; found {list(df.columns)}{fix}")
    for c in (c for c in ("NSE", "KGE", "RMSE", "PCC") if c in df.columns):
        if not pd.api.types.is_numeric_dtype(df[c]):
            bad = df[c][pd.to_numeric(df[c], errors="coerce").isna() & df[c].notna()]
            raise RunFileError(f"{path}: column {c} holds non-numbers (e.g. {bad.iloc[0]!r}){fix}")
    if df["site"].isna().any() or df["site"].duplicated().any():
        raise RunFileError(f"{path}: column site has missing or repeated site ids{fix}")
    return df.set_index("site")


def check_outputs_file(path: Path) -> None:
    """Open outputs.nc's header: it must be netCDF with dims site (``basin`` in runs evaluated
    before sites were generalised) and time, and hold the variables named in ``sim_names``
    (default: any of Q_sim or SM).

    Raises:
        RunFileError: unreadable (e.g. truncated by a copy) or not the run-output layout.
    """
    import netCDF4

    require_regular(path)
    fix = f"; rewrite it with `hydrolens evaluate {path.parent.name}`"
    try:
        with netCDF4.Dataset(path, "r") as nc:
            dims, names = set(nc.dimensions), set(nc.variables)
    except (OSError, RuntimeError, ValueError) as e:
        raise RunFileError(f"{path}: not a readable netCDF file ({e}){fix}") from None
    if not ({"site", "time"} <= dims or {"basin", "time"} <= dims) or not names & SIMULATED_OUTPUTS:
        raise RunFileError(f"{path}: expected dims (site, time) and a simulated variable "
                           f"({' or '.join(sorted(SIMULATED_OUTPUTS))}); found dims "
                           f"{sorted(dims)}, variables {sorted(names)[:12]}{fix}")


def check_parameters_file(path: Path) -> None:
    """Open parameters.nc's header: netCDF with a site (or, in older runs, basin) dimension.

    Raises:
        RunFileError: unreadable or without a site dimension.
    """
    import netCDF4

    require_regular(path)
    fix = f"; rewrite it with `hydrolens evaluate {path.parent.name}`"
    try:
        with netCDF4.Dataset(path, "r") as nc:
            dims = set(nc.dimensions)
    except (OSError, RuntimeError, ValueError) as e:
        raise RunFileError(f"{path}: not a readable netCDF file ({e}){fix}") from None
    if "site" not in dims and "basin" not in dims:
        raise RunFileError(f"{path}: expected a site dimension; found {sorted(dims)}{fix}")


def read_train_log_file(path: Path) -> pd.DataFrame:
    """train_log.csv as a table (epoch, loss, seconds).

    Raises:
        RunFileError: not a readable CSV table, or without the columns epoch and loss.
    """
    require_regular(path)
    try:
        log = pd.read_csv(path)
    except Exception as e:  # noqa: BLE001
        raise RunFileError(f"{path}: not a readable CSV table ({type(e).__name__})") from None
    if len(log.columns) and not {"epoch", "loss"} <= set(log.columns):
        raise RunFileError(f"{path}: expected columns epoch, loss; found {list(log.columns)}")
    return log


def _check_json(path: Path) -> None:
    require_regular(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise RunFileError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise RunFileError(f"{path}: expected a JSON object")


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
    def parameters_path(self) -> Path:
        return self.path / "parameters.nc"

    @property
    def normalization_path(self) -> Path:
        return self.path / "normalization.json"

    @property
    def train_log_path(self) -> Path:
        return self.path / "train_log.csv"

    @property
    def predictions_dir(self) -> Path:
        return self.path / "predictions"

    # locking -----------------------------------------------------------------------------
    def lock(self, purpose: str) -> RunLock:
        """Context manager holding this run's lock while ``purpose`` (training, evaluating,
        predicting) runs; see :class:`core.runs.safety.RunLock`.

        Raises:
            RunBusyError: another live process holds it ("run X is busy (pid N, training …)").
        """
        return RunLock(self.path, purpose, self.run_id)

    def busy(self) -> str | None:
        """Who holds the run's lock (``"(pid N, training since …)"``), or None."""
        return lock_holder(self.path)

    # reading -----------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The run's config as a plain dict (see core.training.config.RunConfig).

        Raises:
            FileNotFoundError: no config.yaml yet.
            RunFileError: config.yaml is not valid YAML or not a mapping (names the file).
        """
        return read_config_file(self.config_path)

    def status(self) -> dict[str, Any]:
        """Content of status.json: state, message, epoch, epochs, loss, updated, ...

        Raises:
            RunFileError: status.json is not a valid status (names the file and the field).
        """
        try:
            return read_status_file(self.status_path)
        except FileNotFoundError:
            return {"state": "created", "message": "no status yet"}

    def has_evaluation(self) -> bool:
        """True when metrics.csv and outputs.nc exist."""
        return self.metrics_path.exists() and self.outputs_path.exists()

    def metrics(self) -> pd.DataFrame:
        """Per-site test metrics, index ``site`` (str).

        Columns: NSE, KGE, gauge_name, gauge_lat, gauge_lon and further metrics.

        Raises:
            FileNotFoundError: the run has not been evaluated yet.
            RunFileError: metrics.csv is malformed (names the file and the fix).
        """
        if not self.metrics_path.exists():
            raise FileNotFoundError(
                f"{self.metrics_path} does not exist: run `hydrolens evaluate {self.run_id}` first"
            )
        return read_metrics_file(self.metrics_path)

    def outputs(self) -> xr.Dataset:
        """Fluxes and states over the test period, dims (site, time), opened lazily.

        Variables: Q_obs and Q_sim (mm/d) plus every HBV flux and state (see
        core.physics.hbv.OUTPUT_UNITS). Close it (or use ``with``) when done.

        Raises:
            FileNotFoundError: the run has not been evaluated yet.
            RunFileError: outputs.nc cannot be opened (names the file and the fix).
        """
        if not self.outputs_path.exists():
            raise FileNotFoundError(
                f"{self.outputs_path} does not exist: run `hydrolens evaluate {self.run_id}` first"
            )
        require_regular(self.outputs_path)
        try:
            return open_run_file(self.outputs_path)
        except (OSError, RuntimeError, ValueError) as e:
            raise RunFileError(f"{self.outputs_path}: not a readable netCDF file ({e}); rewrite it "
                               f"with `hydrolens evaluate {self.run_id}`") from None

    # display: variables, one site's series, per-site parameter values -------------------
    def _open_display(self, path: Path) -> xr.Dataset:
        require_regular(path)
        try:
            return open_cached(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"{path} does not exist: run `hydrolens evaluate {self.run_id}` "
                                    "to write it") from None
        except (OSError, RuntimeError, ValueError) as e:
            raise RunFileError(f"{path}: not a readable netCDF file ({e}); rewrite it with "
                               f"`hydrolens evaluate {self.run_id}`") from None

    def _display_sets(self) -> list[xr.Dataset]:
        sets = [self._open_display(self.outputs_path)]
        if self.parameters_path.exists():
            sets.append(self._open_display(self.parameters_path))
        return sets

    def variables(self):
        """Every displayable variable: series of outputs.nc and parameters of parameters.nc,
        with units, long_name, kind and (parameters) bounds and static/dynamic type.

        Returns:
            list of :class:`core.runs.outputs.Variable`.

        Raises:
            FileNotFoundError: not evaluated yet. RunFileError: a file cannot be read.
        """
        sets = self._display_sets()
        out = variables_of(sets[0], "series")
        for ds in sets[1:]:
            out += variables_of(ds, "parameter")
        return out

    def panels(self) -> list[dict]:
        """The run's time-series panels (title, variables, style, log), from outputs.nc."""
        return panels_of(self._display_sets()[0])

    def site_kind(self) -> str:
        """``basin`` (sites are gauges, drawn as points) or ``grid_cell`` (squares)."""
        return str(self._display_sets()[0].attrs.get("site_kind", "basin"))

    def site_series(self, site: str, names: list[str] | None = None) -> pd.DataFrame:
        """One site's daily series over the evaluated period: every (site, time) variable of
        outputs.nc and parameters.nc (dynamic parameters such as βᵗ, γᵗ), or only ``names``.

        Only that site's rows are read (files stay open in a process-wide cache).

        Returns:
            frame indexed by time, one column per variable, in the file's units.

        Raises:
            KeyError: the site is not in the run. FileNotFoundError / RunFileError: as above.
        """
        return site_frame(self._display_sets(), str(site), names)

    def site_parameters(self) -> pd.DataFrame:
        """Per-site learned parameters: static values and the time mean of dynamic ones
        (index site id; empty frame for a run without parameters.nc or without parameters)."""
        if not self.parameters_path.exists():
            return pd.DataFrame()
        path = self.parameters_path
        key = _stamp(path)
        cached = _PARAM_TABLES.get(str(path))
        if cached is not None and cached[0] == key:
            return cached[1]
        table = static_table(self._open_display(path))
        _PARAM_TABLES[str(path)] = (key, table)
        return table

    def train_log(self) -> pd.DataFrame:
        """Per-epoch training log (epoch, loss, seconds); empty when no epoch finished.

        Raises:
            RunFileError: train_log.csv is malformed.
        """
        if not self.train_log_path.exists():
            return pd.DataFrame(columns=["epoch", "loss", "seconds"])
        return read_train_log_file(self.train_log_path)

    def problems(self) -> list[str]:
        """What makes this run unreadable: one line per file (empty when every file reads).

        Checks status.json, config.yaml, normalization.json, train_log.csv, metrics.csv and the
        header of outputs.nc; results are cached per file version, so listing a store is cheap.
        Checkpoints are checked when a process loads them (resume falls back to an intact one).
        """
        out = []
        if not self.status_path.exists():
            out.append(f"{self.status_path}: missing (every run directory has one)")
        else:
            p = _cached_check(self.status_path, read_status_file)
            if p:
                out.append(p)
        checks = ((self.config_path, read_config_file), (self.normalization_path, _check_json),
                  (self.train_log_path, read_train_log_file), (self.metrics_path, read_metrics_file),
                  (self.outputs_path, check_outputs_file),
                  (self.parameters_path, check_parameters_file))
        for path, check in checks:
            p = _cached_check(path, check)
            if p:
                out.append(p)
        if not out:
            state = self.status().get("state")
            if not self.config_path.exists() and (state == "done" or self.checkpoint_dir.exists()):
                out.append(f"{self.config_path}: missing (state {state})")
            if state == "done" and not self.has_evaluation():
                gone = [p.name for p in (self.metrics_path, self.outputs_path) if not p.exists()]
                out.append(f"{self.status_path}: state done but {', '.join(gone)} missing; rewrite with "
                           f"`hydrolens evaluate {self.run_id}`")
        return out

    def info(self) -> RunInfo:
        """A RunInfo summary built from status.json, config.yaml and metrics.csv.

        Never raises for unreadable files: the run is then ``corrupt`` with ``problem`` set.
        """
        problems = self.problems()
        try:
            st = self.status()
        except RunFileError:
            st = {}
        try:
            cfg = self.config()
        except (FileNotFoundError, RunFileError):
            cfg = {}
        data, model, train = (cfg.get(k) if isinstance(cfg.get(k), dict) else {}
                              for k in ("data", "model", "train"))
        sites = data.get("sites", data.get("basins"))  # "basins": configs before v0.10
        n_cfg = len(sites) if isinstance(sites, list) else (sites if isinstance(sites, int) else 0)
        state = st.get("state", "created")
        if problems:
            state = "corrupt"
        elif state in ("training", "evaluating") and (
                _process_gone(st) or ((self.path / LOCK_FILE).exists() and self.busy() is None)):
            state = "interrupted"  # killed without a chance to write its status (e.g. SIGKILL)
        med_nse = st.get("median_nse")
        med_kge = st.get("median_kge")

        def whole(v, default=0):
            return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else default

        return RunInfo(
            run_id=self.run_id,
            path=self.path,
            state=state,
            created=str(st.get("created", "")),
            variant=str(model.get("variant", "?")),
            preset=cfg.get("preset") if isinstance(cfg.get("preset"), str) else None,
            n_sites=whole(st.get("n_sites", st.get("n_basins", n_cfg))),
            epochs_done=whole(st.get("epoch", 0)),
            epochs=whole(train.get("epochs", st.get("epochs", 0))),
            median_nse=None if med_nse is None else float(med_nse),
            median_kge=None if med_kge is None else float(med_kge),
            name=cfg.get("name") if isinstance(cfg.get("name"), str) else None,
            problem="; ".join(problems) or None,
            site_kind=site_kind_of(data.get("source", "")),
            median_rmse=float(st["median_rmse"]) if isinstance(st.get("median_rmse"), (int, float)) else None,
        )

    # writing -----------------------------------------------------------------------------
    def update_status(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into status.json (atomically) and stamp ``updated``.

        An unreadable status.json is replaced (the fields written here make it valid again).
        """
        try:
            st = self.status()
        except RunFileError:
            st = {}
        if "state" in fields and fields["state"] not in STATES:
            raise ValueError(f"status state must be one of {STATES}, got {fields['state']!r}")
        return update_json(self.status_path, st, **fields)

    def write_config(self, config: dict[str, Any]) -> None:
        """Write config.yaml atomically."""
        write_text_atomic(self.config_path, yaml.safe_dump(config, sort_keys=False))

    def append_train_log(self, row: dict[str, Any]) -> None:
        """Append one epoch row to train_log.csv (rewritten atomically)."""
        append_csv_row(self.train_log_path, row)

    def truncate_train_log(self, last_epoch: int) -> int:
        """Drop log rows after ``last_epoch`` (a resume from an older checkpoint); returns how many."""
        return truncate_csv(self.train_log_path, "epoch", last_epoch)


class RunStore:
    """A folder of runs. ``root`` defaults to $HYDROLENS_RUNS, else ``./runs``."""

    def __init__(self, root: str | os.PathLike | None = None):
        if root is None:
            root = os.environ.get(ENV_VAR) or Path.cwd() / "runs"
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def _run_dirs(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        out = []
        for p in self.root.iterdir():
            try:
                if not p.name.startswith(".") and _is_run_dir(p):
                    out.append(p)
            except OSError:  # e.g. another user's folder we may not enter: listed as corrupt
                out.append(p)
        return out

    def list(self) -> list[RunInfo]:
        """All runs, newest first (by creation time, then id). Unreadable runs are listed with
        state ``corrupt`` and their ``problem``; they never hide the others."""
        runs = []
        for p in self._run_dirs():
            try:
                runs.append(Run(p).info())
            except Exception as e:  # noqa: BLE001 - one run must never hide the others
                if not os.path.lexists(p):
                    continue  # removed while listing
                runs.append(RunInfo(run_id=p.name, path=p, state="corrupt", created="", variant="?",
                                    preset=None, n_sites=0, epochs_done=0, epochs=0, median_nse=None,
                                    median_kge=None, problem=f"{p}: cannot be read ({type(e).__name__}: "
                                    f"{' '.join(str(e).split())[:200]})"))
        return sorted(runs, key=lambda r: (r.created, r.run_id), reverse=True)

    def get(self, run_id: str) -> Run:
        """The run called ``run_id``.

        Raises:
            InvalidNameError: ``run_id`` is not a single safe path component (``..``, ``a/b``).
            RunNotFoundError: no such run directory (the message lists existing runs).
        """
        validate_name(run_id, "run id")
        path = self.root / run_id
        if not _is_run_dir(path):
            known = ", ".join(p.name for p in sorted(self._run_dirs(), reverse=True)) or "none"
            raise RunNotFoundError(f"run {run_id!r} not found in {self.root} (runs: {known})")
        return Run(path)

    def create(self, name: str | None = None) -> Run:
        """Create a new, empty run directory (state 'created') and return it.

        The id is ``<UTC timestamp>-<name>``; a numeric suffix keeps ids unique.

        Raises:
            InvalidNameError: ``name`` is not a safe single path component.
        """
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
        if name is not None:
            validate_name(name, "run name", MAX_RUN_NAME)
        base = f"{stamp}-{name}" if name else stamp
        self.root.mkdir(parents=True, exist_ok=True)
        for i in range(1000):
            run_id = base if i == 0 else f"{base}-{i}"
            try:
                (self.root / run_id).mkdir()
                break
            except FileExistsError:
                continue
        run = Run(self.root / run_id)
        run.update_status(state="created", created=now_iso(), message="created")
        return run

    def latest(self, state: str | None = "done") -> Run | None:
        """The newest run (in ``state``, if given), or None."""
        for info in self.list():
            if state is None or info.state == state:
                return Run(info.path)
        return None
