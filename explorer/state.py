"""The explorer's single application state.

`AppState` holds what the user has chosen (a run, a basin) and what follows from it (the
run list, the selected run's status and per-basin metrics). Every view watches this one object;
none of them talks to the run store. The state reads runs only through the public
:mod:`core.runs` API.
"""

from __future__ import annotations

import html
import math
import os
import re

import pandas as pd
import param

from core.runs import Run, RunInfo, RunNotFoundError, RunStore

#: Run states after which a run's status no longer changes.
TERMINAL_STATES = ("done", "failed")

#: Columns of `Run.metrics()` the map needs; a run without them cannot be mapped.
MAP_COLUMNS = ("NSE", "KGE", "gauge_name", "gauge_lat", "gauge_lon")


def fmt(value: float | None, digits: int = 2) -> str:
    """Format a metric for display: ``0.71``, or an em dash for a missing/NaN value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def run_label(info: RunInfo) -> str:
    """One line for the run selector: run id, variant, number of basins, median NSE (or state)."""
    score = f"NSE {fmt(info.median_nse)}" if info.median_nse is not None else info.state
    return f"{info.run_id} · {info.variant} · {info.n_basins} basins · {score}"


def readable(runs: list[RunInfo]) -> list[RunInfo]:
    """The runs whose files can be read (not ``corrupt``)."""
    return [info for info in runs if not info.problem]


def default_run(runs: list[RunInfo]) -> str | None:
    """The run shown on start: the newest evaluated readable run, else the newest readable run."""
    runs = readable(runs)
    for info in runs:
        if info.median_nse is not None or info.state == "done":
            return info.run_id
    return runs[0].run_id if runs else None


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+!|~<>])")


def escape(text) -> str:
    """Text from a run directory (ids, messages, problems) made inert for the Markdown/HTML panes:
    HTML-escaped, then every Markdown punctuation character backslash-escaped, so no link, image,
    emphasis or raw HTML can be planted through a status message or a file name."""
    return _MARKDOWN.sub(r"\\\1", html.escape(str(text), quote=True))


def default_basin(metrics: pd.DataFrame | None) -> str | None:
    """The basin shown on start: the one whose NSE is closest to the run's median NSE."""
    if metrics is None or metrics.empty:
        return None
    nse = pd.to_numeric(metrics["NSE"], errors="coerce").dropna()
    if nse.empty:
        return str(metrics.index[0])
    return str((nse - nse.median()).abs().idxmin())


class AppState(param.Parameterized):
    """What the explorer shows: the chosen run and basin, and what is known about them.

    Set `run_id` or `basin` to change the selection; `runs`, `info`, `status`, `metrics` and
    `message` follow. Only `metrics` (one row per basin) is loaded for a run; a basin's series
    are read on demand by :meth:`series`.
    """

    run_id = param.String(default=None, allow_None=True, doc="Selected run id.")
    basin = param.String(default=None, allow_None=True, doc="Selected 8-digit gauge id.")

    runs = param.List(default=[], doc="RunInfo of every run in the store, newest first.")
    info = param.Parameter(default=None, doc="RunInfo of the selected run (None if none).")
    status = param.Dict(default={}, doc="status.json content of the selected run.")
    metrics = param.DataFrame(
        default=None, allow_None=True, doc="Run.metrics() of the selected run, None if not evaluated."
    )
    message = param.String(default="", doc="Why there is nothing to show; empty when all is well.")

    def __init__(self, store: RunStore | None = None, **params):
        super().__init__(**params)
        self.store = store if store is not None else RunStore()
        self._run: Run | None = None
        self.runs = self.store.list()
        if self.run_id not in [info.run_id for info in readable(self.runs)]:
            with param.discard_events(self):
                self.run_id = default_run(self.runs)
        self._load_run()

    @property
    def corrupt(self) -> list[RunInfo]:
        """Runs of the store whose files cannot be read (each with its ``problem``)."""
        return [info for info in self.runs if info.problem]

    # -- run list and run selection ------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the run list; keep the selected run if it still exists, else pick the default."""
        runs = self.store.list()
        self.runs = runs
        ids = [info.run_id for info in readable(runs)]
        if self.run_id not in ids:
            self.run_id = default_run(runs)
        elif self._run is not None:
            self.poll()

    @param.depends("run_id", watch=True)
    def _load_run(self) -> None:
        run, info, status, metrics, message = None, None, {}, None, ""
        if self.run_id is None and self.runs:
            message = "Select a run in the sidebar."
        elif self.run_id is None:
            message = (
                f"No runs in the run store `{os.fspath(self.store.root)}` yet. Train one with "
                "`hydrolens train --basins 5 --epochs 1`, then press Refresh."
            )
        else:
            try:
                run = self.store.get(self.run_id)
                info = run.info()
                if info.problem:
                    raise ValueError(info.problem)
                status = run.status()
                if run.has_evaluation():
                    metrics = run.metrics()
            except RunNotFoundError:
                run, message = None, f"Run {escape(self.run_id)} is no longer in the run store."
            except Exception as e:  # noqa: BLE001 - one unreadable run must not break the page
                run, info, status, metrics = None, None, {}, None
                message = f"Run {escape(self.run_id)} cannot be shown: {escape(e)}"
            else:
                message = "" if metrics is not None else self._not_evaluated_message(status)
        self._run = run
        # One batch: each view redraws once per run change.
        self.param.update(
            info=info, status=status, metrics=metrics, message=message,
            basin=default_basin(metrics),
        )

    def _not_evaluated_message(self, status: dict) -> str:
        state = status.get("state", "unknown")
        epoch, epochs = status.get("epoch"), status.get("epochs")
        progress = f" (epoch {epoch}/{epochs})" if epoch is not None and epochs else ""
        text = f"Run {escape(self.run_id)} is **{escape(state)}**{progress} and has no evaluation yet"
        note = escape(status.get("message") or "")
        return f"{text}: {note}." if note and note not in text else f"{text}."

    def poll(self) -> None:
        """Re-read the selected run's status while it is still running; reload it once it ends.

        Cheap (one small file) and safe to call from a periodic callback.
        """
        if self._run is None or self.status.get("state") in TERMINAL_STATES:
            return
        try:
            status = self._run.status()
        except Exception as e:  # noqa: BLE001 - the file may be replaced by a broken copy
            self.message = f"Run {escape(self._run.run_id)}: {escape(e)}"
            return
        if status == self.status:
            return
        if status.get("state") in TERMINAL_STATES:
            self.runs = self.store.list()
            self._load_run()
        else:
            self.param.update(
                status=status, info=self._run.info(), message=self._not_evaluated_message(status)
            )

    # -- basin data ----------------------------------------------------------------------------

    @property
    def run(self) -> Run | None:
        """The selected `core.runs.Run`, or None."""
        return self._run

    def basin_row(self, basin: str | None = None) -> pd.Series | None:
        """The metrics row of `basin` (default: the selected basin), or None."""
        basin = self.basin if basin is None else basin
        if self.metrics is None or basin is None or basin not in self.metrics.index:
            return None
        return self.metrics.loc[basin]

    def series(self, basin: str | None = None) -> pd.DataFrame | None:
        """Observed and simulated streamflow (mm/d) of one basin over the test period.

        Returns a frame indexed by time with columns ``Q_obs`` and ``Q_sim``, or None when no
        evaluated run or basin is selected. Only this basin's two series are read.
        """
        basin = self.basin if basin is None else basin
        if self._run is None or self.metrics is None or basin is None:
            return None
        try:
            with self._run.outputs() as ds:
                one = ds[["Q_obs", "Q_sim"]].sel(basin=basin).load()
        except Exception as e:  # noqa: BLE001 - a damaged outputs.nc names itself, the page lives on
            self.message = f"Basin {escape(basin)} of run {escape(self._run.run_id)} cannot be shown: {escape(e)}"
            return None
        return one.to_dataframe()[["Q_obs", "Q_sim"]]
