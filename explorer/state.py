"""The explorer's single application state.

`AppState` holds what the user has chosen (a run, a site, the map quantity, the picked sites,
the runs to compare, the period on screen) and what follows from it (the run list, the selected
run's status, per-site metrics, its variables with units and bounds, its learned parameters).
Every view watches this one object. The state reads runs only through the public
:mod:`core.runs` API and the data root's site table through :mod:`core.datasets`; names,
units and bounds come from the run's files (``Run.variables``), never from HBV lists.
"""

from __future__ import annotations

import html
import math
import os
import re

import pandas as pd
import panel as pn
import param

from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any, Callable

from core.datasets.loader import SITE_COLUMNS, site_table
from core.datasets.schema import pad_gauge_id
from core.runs import METRIC_SPECS, Run, RunInfo, RunNotFoundError, RunStore, Variable

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
    return f"{info.run_id} · {info.variant} · {info.n_sites} {info.site_noun} · {score}"


def readable(runs: list[RunInfo]) -> list[RunInfo]:
    """The runs whose files can be read (not ``corrupt``)."""
    return [info for info in runs if not info.problem]


def default_run(runs: list[RunInfo]) -> str | None:
    """The run shown on start (``runs`` newest first): the newest evaluated readable run, else the
    newest readable run with a finished epoch (a run in training has learning curves to watch; a
    queued one has nothing to show yet), else the newest readable run; None for no readable run."""
    runs = readable(runs)
    for info in runs:
        if info.median_nse is not None or info.state == "done":
            return info.run_id
    for info in runs:
        if info.epochs_done > 0:
            return info.run_id
    return runs[0].run_id if runs else None


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+!|~<>])")


def escape(text) -> str:
    """Text from a run directory (ids, messages, problems) made inert for the Markdown/HTML panes:
    HTML-escaped, then every Markdown punctuation character backslash-escaped, so no link, image,
    emphasis or raw HTML can be planted through a status message or a file name."""
    return _MARKDOWN.sub(r"\\\1", html.escape(str(text), quote=True))


def escape_html(text) -> str:
    """Text from a run directory made inert for an HTML pane (HTML-escaped only: an HTML pane
    renders no Markdown, so `escape`'s backslashes would show, as in ``delta\\_n``)."""
    return html.escape(str(text), quote=True)


def default_basin(metrics: pd.DataFrame | None) -> str | None:
    """The basin shown on start: the one whose NSE is closest to the run's median NSE."""
    if metrics is None or metrics.empty:
        return None
    nse = pd.to_numeric(metrics["NSE"], errors="coerce").dropna()
    if nse.empty:
        return str(metrics.index[0])
    return str((nse - nse.median()).abs().idxmin())


@dataclass(frozen=True)
class Quantity:
    """A quantity the map can be coloured by.

    Attributes:
        key: identifier (a metrics.csv column, or ``param:<name>``).
        label: what the user reads (``NSE``, ``BETA (time mean)``).
        units: UDUNITS string shown on the colour bar ("1" is left out).
        group: metric | signature | parameter.
        bounds: fixed colour range (parameters: their ParamSpec bounds), or None (data range).
        diverging: centred on zero (differences such as BFI_diff, ΔNSE).
    """

    key: str
    label: str
    units: str
    group: str
    bounds: tuple[float, float] | None = None
    diverging: bool = False

    @property
    def title(self) -> str:
        """Colour-bar title: label and units."""
        return self.label if self.units in ("", "1") else f"{self.label} ({self.units})"


#: Map quantities whose colour range is fixed (skill scores) or centred on zero.
_FIXED = {"NSE": (-0.5, 1.0), "KGE": (-0.5, 1.0), "PCC": (0.0, 1.0), "BFI_sim": (0.0, 1.0),
          "BFI_camels": (0.0, 1.0)}
_DIVERGING = ("BFI_diff",)


def metric_specs() -> dict[str, dict]:
    """Units and descriptions of metrics.csv columns (core.runs.METRIC_SPECS)."""
    return METRIC_SPECS


@lru_cache(maxsize=4)
def site_universe(root: str | None = None, source: str = "caravan") -> pd.DataFrame:
    """Every site of ``source`` the data root can train on (core.datasets.site_table: basins,
    or SMAP grid cells), cached per process.

    An empty frame (with the site columns) when no data root is found: the app still shows runs.
    """
    try:
        return site_table(root, source)
    except Exception:  # noqa: BLE001 - no data root: picking is disabled, runs still display
        return pd.DataFrame(columns=list(SITE_COLUMNS), index=pd.Index([], name="site"))


def with_site_columns(metrics: pd.DataFrame) -> pd.DataFrame:
    """``metrics`` with the columns every view reads a site by: ``gauge_name``, ``gauge_lat``,
    ``gauge_lon``. A grid-cell run stores ``lat``/``lon`` (the cell centre) and no name: the
    name becomes "cell <id>" (with its set, e.g. NG, where ``split`` says unseen)."""
    if "gauge_lat" not in metrics and "lat" in metrics:
        metrics = metrics.assign(gauge_lat=metrics["lat"], gauge_lon=metrics["lon"])
    if "gauge_name" not in metrics:
        unseen = metrics.get("split", pd.Series("", index=metrics.index)).eq("unseen")
        metrics = metrics.assign(gauge_name=[f"cell {s}" + (" · unseen" if u else "")
                                             for s, u in zip(metrics.index, unseen)])
    return metrics


@contextmanager
def echo_guard(view, flag: str):
    """Set ``view.<flag>`` while the block runs, so the view's own change handlers ignore the
    changes it makes itself (a Bokeh selection it sets, a widget it updates)."""
    setattr(view, flag, True)
    try:
        yield
    finally:
        setattr(view, flag, False)


def on_click(button, handler: Callable[[Any], None]) -> None:
    """``button.on_click(handler)``, with the handler run under the Bokeh document lock.

    Panel 1.9 processes a click that arrives while another widget's change is still pending (a
    user types site ids and clicks *add* at once, or the server is busy) as a ``nolock``
    next-tick callback (``Reactive._server_event`` -> ``state.execute`` -> ``async_execute``).
    Panel's own models are safe there (it sends their changes under ``unlocked()``), but the raw
    Bokeh models the explorer's watchers change in response (the map's ColumnDataSource and its
    selection, the scatters linked to it by server-side ``on_change`` callbacks, figure titles)
    would reach Bokeh's ServerSession without the lock, which raises ``RuntimeError:
    _pending_writes should be non-None when we have a document lock`` and stops the remaining
    watchers (in CI the pick count stayed at 0 after "added 5 site(s)"). So in a served session
    the handler goes through ``pn.state.execute(..., schedule=True)``, which Panel runs on the
    next tick with the document lock held; outside a server it runs at once.

    Args:
        button: a Panel Button (anything with ``on_click``).
        handler: called with the click event.
    """
    button.on_click(lambda event: pn.state.execute(partial(handler, event), schedule=True))


def parse_ids(text: str, known=None) -> list[str]:
    """Site ids typed by a user (commas, spaces, new lines): an id in ``known`` (the shown
    sites) is kept as typed (a SMAP cell id such as 12); other digit strings are gauge ids and
    get their leading zeros back (1022500 -> 01022500)."""
    ids = []
    for token in re.split(r"[\s,;]+", text or ""):
        token = token.strip()
        if known is not None and token in known:
            ids.append(token)
        elif token.isdigit() and len(token) <= 8:
            ids.append(pad_gauge_id(token))
        elif token:
            ids.append(token)
    return list(dict.fromkeys(ids))


class AppState(param.Parameterized):
    """What the explorer shows: the chosen run and site, and what is known about them.

    Set `run_id`, `basin`, `quantity`, `selection`, `compare` or `period` to change the view;
    `runs`, `info`, `status`, `metrics`, `variables`, `panels`, `params_table` and `message`
    follow. Only per-site tables are loaded for a run; a site's series are read on demand by
    :meth:`series` (one site's rows of outputs.nc and parameters.nc).
    """

    run_id = param.String(default=None, allow_None=True, doc="Selected run id.")
    site = param.String(default=None, allow_None=True, doc="Selected site: an 8-digit gauge id or a grid-cell id.")
    quantity = param.String(default="NSE", doc=(
        "Map quantity key (see `quantities`); a bare learned-parameter name (`infiltr`, `FC`, as "
        "typed in a URL) stands for `param:<name>`, an unknown key for NSE once the run is loaded."))
    selection = param.List(default=[], item_type=str, doc="Sites picked for training.")
    compare = param.List(default=[], item_type=str, doc="Run ids to compare.")
    period = param.String(default="", doc="Time range on screen, 'YYYY-MM-DD..YYYY-MM-DD' ('' = test period).")
    log_q = param.Boolean(default=False, doc="Streamflow panel on a log scale.")

    runs = param.List(default=[], doc="RunInfo of every run in the store, newest first.")
    info = param.Parameter(default=None, doc="RunInfo of the selected run (None if none).")
    status = param.Dict(default={}, doc="status.json content of the selected run.")
    metrics = param.DataFrame(
        default=None, allow_None=True, doc="Run.metrics() of the selected run, None if not evaluated."
    )
    variables = param.List(default=[], doc="core.runs.Variable of the selected run's files.")
    panels = param.List(default=[], doc="The run's time-series panels (title, variables, style, log).")
    params_table = param.DataFrame(default=None, allow_None=True,
                                   doc="Per-site learned parameters (static; time mean of dynamic).")
    message = param.String(default="", doc="Why there is nothing to show; empty when all is well.")

    def __init__(self, store: RunStore | None = None, data_root: str | None = None, **params):
        super().__init__(**params)
        self.store = store if store is not None else RunStore()
        self.data_root = data_root
        self._run: Run | None = None
        self._loaded_run_id: str | None = None  # the run_id whose tables are loaded
        self._series_cache: tuple | None = None  # ((run, site, mtime), frame): the last site read
        self.runs = self.store.list()
        if self.run_id not in [info.run_id for info in readable(self.runs)]:
            with param.discard_events(self):
                self.run_id = default_run(self.runs)
        self._load_run()

    @property
    def corrupt(self) -> list[RunInfo]:
        """Runs of the store whose files cannot be read (each with its ``problem``)."""
        return [info for info in self.runs if info.problem]

    # -- sites ---------------------------------------------------------------------------------
    @property
    def site_source(self) -> str:
        """The data source of the selected run (its sites' universe); caravan without a run."""
        try:
            cfg = self._run.config() if self._run is not None else {}
        except Exception:  # noqa: BLE001 - an unreadable config: the run is listed as corrupt
            cfg = {}
        return str((cfg.get("data") or {}).get("source") or "caravan")

    @property
    def sites(self) -> pd.DataFrame:
        """Every site to show on the map: the data root's sites plus the run's own (a run may
        hold sites of another data root), with gauge_name/lat/lon, area, huc_02 and CAMELS
        attributes where known. Index: site id."""
        universe = site_universe(self.data_root, self.site_source)
        metrics = self.metrics
        if metrics is None or metrics.empty:
            return universe
        extra = metrics.index.difference(universe.index)
        if len(extra) == 0:
            return universe
        if "gauge_lat" not in metrics and "lat" in metrics:  # grid cells: lat/lon of the centre
            metrics = metrics.rename(columns={"lat": "gauge_lat", "lon": "gauge_lon"})
        cols = [c for c in ("gauge_name", "gauge_lat", "gauge_lon", "area", "huc_02") if c in metrics]
        if universe.empty:  # no data root: the run's own sites
            return metrics.loc[extra, cols]
        return pd.concat([universe, metrics.loc[extra, cols]])

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
        variables, panels, table = [], [], None
        if self.run_id is None and self.runs:
            message = "Select a run in the sidebar."
        elif self.run_id is None:
            message = (
                f"No runs in the run store `{os.fspath(self.store.root)}` yet. Pick basins on the "
                "map and launch a training job, or run `hydrolens train --basins 5 --epochs 1`."
            )
        else:
            try:
                run = self.store.get(self.run_id)
                info = run.info()
                if info.problem:
                    raise ValueError(info.problem)
                status = run.status()
                if run.has_evaluation():
                    metrics = with_site_columns(run.metrics())
                    variables = run.variables()
                    panels = run.panels()
                    table = run.site_parameters()
            except RunNotFoundError:
                run, message = None, f"Run {escape(self.run_id)} is no longer in the run store."
            except Exception as e:  # noqa: BLE001 - one unreadable run must not break the page
                run, info, status, metrics, variables, panels, table = None, None, {}, None, [], [], None
                message = f"Run {escape(self.run_id)} cannot be shown: {escape(e)}"
            else:
                message = "" if metrics is not None else self._not_evaluated_message(status)
        self._run = run
        self._loaded_run_id = self.run_id
        basin = self.site if metrics is not None and self.site in metrics.index else default_basin(metrics)
        quantity = self.quantity
        # One batch: each view redraws once per run change.
        with param.parameterized.batch_call_watchers(self):
            self.param.update(info=info, status=status, metrics=metrics, variables=variables,
                              panels=panels, params_table=table, message=message, site=basin)
            resolved = self.resolve_quantity(quantity)
            if resolved != quantity:
                self.quantity = resolved

    def resolve_quantity(self, key: str) -> str:
        """The map-quantity key that ``key`` stands for on the loaded run: ``key`` itself when
        the run has it, ``param:<key>`` when ``key`` is the bare name of one of its learned
        parameters (``infiltr``, ``FC``: what a user types into the URL's ``q``), else NSE."""
        known = self.quantities()
        if key in known:
            return key
        if f"param:{key}" in known:
            return f"param:{key}"
        return "NSE"

    @param.depends("quantity", watch=True)
    def _check_quantity(self) -> None:
        # a run still to be loaded (run and quantity set together, as from a URL) decides in
        # _load_run, against its own quantities
        if self._loaded_run_id != self.run_id or self.metrics is None:
            return
        resolved = self.resolve_quantity(self.quantity)
        if resolved != self.quantity:
            self.quantity = resolved

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

    # -- map quantities ------------------------------------------------------------------------
    def quantities(self) -> dict[str, Quantity]:
        """What the map can show for the selected run: metrics, signatures (simulated BFI, CAMELS
        BFI and their difference, mean ET, P − Q) and every learned parameter (time mean of a
        dynamic one), each with its units (from the run's files)."""
        out: dict[str, Quantity] = {}
        metrics = self.metrics
        specs = metric_specs()
        if metrics is not None:
            for key, spec in specs.items():
                if key in metrics and pd.to_numeric(metrics[key], errors="coerce").notna().any():
                    out[key] = Quantity(key, key if key != "P_minus_Q" else "P − Q", spec["units"],
                                        spec["group"], _FIXED.get(key), key in _DIVERGING)
        table = self.params_table
        if table is not None and not table.empty:
            for v in self.variables:
                if v.kind == "parameter" and v.name in table:
                    label = v.name + (" (time mean)" if v.parameter_type == "dynamic" else "")
                    out[f"param:{v.name}"] = Quantity(f"param:{v.name}", label, v.units, "parameter",
                                                      v.bounds)
        return out

    def values(self, key: str | None = None) -> pd.Series:
        """Per-site values of a map quantity (default: the selected one); NaN where unknown."""
        key = key or self.quantity
        if key.startswith("param:"):
            table = self.params_table
            name = key.split(":", 1)[1]
            if table is None or name not in table:
                return pd.Series(dtype=float)
            return pd.to_numeric(table[name], errors="coerce")
        if self.metrics is None or key not in self.metrics:
            return pd.Series(dtype=float)
        return pd.to_numeric(self.metrics[key], errors="coerce")

    def variable(self, name: str) -> Variable | None:
        """The run's variable called ``name`` (units, long_name, bounds), or None."""
        return next((v for v in self.variables if v.name == name), None)

    # -- basin data ----------------------------------------------------------------------------

    @property
    def run(self) -> Run | None:
        """The selected `core.runs.Run`, or None."""
        return self._run

    def basin_row(self, basin: str | None = None) -> pd.Series | None:
        """The metrics row of `basin` (default: the selected basin), or None."""
        basin = self.site if basin is None else basin
        if self.metrics is None or basin is None or basin not in self.metrics.index:
            return None
        return self.metrics.loc[basin]

    def series(self, basin: str | None = None, names: list[str] | None = None) -> pd.DataFrame | None:
        """One site's daily series over the evaluated period (test period): forcing, outputs,
        Q_obs and dynamic parameters (columns in the run's units), or only ``names``.

        Returns None when no evaluated run or site is selected. Only this site's rows are read.
        """
        basin = self.site if basin is None else basin
        if self._run is None or self.metrics is None or basin is None or basin not in self.metrics.index:
            return None
        try:
            key = (self._run.run_id, basin, self._run.outputs_path.stat().st_mtime_ns)
            if self._series_cache is None or self._series_cache[0] != key:
                self._series_cache = (key, self._run.site_series(basin))
            frame = self._series_cache[1]
            return frame if names is None else frame[[n for n in names if n in frame]]
        except Exception as e:  # noqa: BLE001 - a damaged file names itself, the page lives on
            self.message = f"Basin {escape(basin)} of run {escape(self._run.run_id)} cannot be shown: {escape(e)}"
            return None

    def period_range(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """`period` as two timestamps, or None when unset or malformed."""
        try:
            a, b = self.period.split("..")
            lo, hi = pd.Timestamp(a), pd.Timestamp(b)
        except (ValueError, AttributeError):
            return None
        return (lo, hi) if lo < hi else None

    # -- comparison ----------------------------------------------------------------------------
    def comparison(self, run_ids: list[str] | None = None) -> dict[str, pd.DataFrame]:
        """run id -> its metrics table, for the runs to compare that are evaluated and readable."""
        out = {}
        for rid in run_ids if run_ids is not None else self.compare:
            try:
                run = self.store.get(rid)
                if run.has_evaluation():
                    out[rid] = run.metrics()
            except Exception:  # noqa: BLE001 - a run that vanished or broke is left out
                continue
        return out
