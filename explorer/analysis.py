"""Analysis views: hydrologic signatures of the selected run, and a comparison of several runs.

`SignatureView` plots two signatures of the selected run per site: the simulated baseflow index
against the CAMELS one, and the mean simulated evapotranspiration against P − Q (both mm/d).
Its scatters are linked to the site map: picking sites on a scatter picks them on the map (and
so sets ``state.selection``), picking on the map highlights them on the scatters.

`CompareView` compares evaluated runs (``state.compare``): the empirical CDF of per-site NSE of
each run, a table of summary scores, and a map of ΔNSE = NSE(run 2) − NSE(run 1) per common site.

The computations are pure functions (`nse_cdf`, `comparison_table`, `delta_nse`,
`signature_columns`, `delta_columns`) so that they can be tested without a page. Plots are plain
Bokeh figures (the ΔNSE map is rendered once from HoloViews/GeoViews on `explorer.geomap.basemap`)
with stable names, so tests and the browser find them in the document.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import (
    ColorBar,
    ColumnDataSource,
    CustomJS,
    HoverTool,
    Legend,
    LegendItem,
    LinearColorMapper,
    Range1d,
    Scatter,
    Slope,
    Span,
)
from bokeh.palettes import Category10_10, RdBu11
from bokeh.plotting import figure
from panel.viewable import Viewer

from core.metrics import pcc
from explorer.geomap import project, site_map
from explorer.state import AppState, echo_guard, fmt, readable
from explorer.style import html_pane

#: Bokeh model names, stable for tests and for the browser.
BFI_SCATTER_NAME = "hydrolens-bfi-scatter"
ET_SCATTER_NAME = "hydrolens-et-scatter"
SIGNATURE_SOURCE_NAME = "hydrolens-signatures"
CDF_NAME = "hydrolens-nse-cdf"
DNSE_MAP_NAME = "hydrolens-dnse-map"
DNSE_SOURCE_NAME = "hydrolens-dnse-sites"
DNSE_COLORBAR_NAME = "hydrolens-dnse-colorbar"

#: Per-site columns the signature scatters draw (metrics.csv columns; BFI dimensionless, mm/d).
SIGNATURE_COLUMNS = ("BFI_sim", "BFI_camels", "ET_mean", "P_minus_Q")

#: NSE range of the CDF plot: lower values are drawn at -1 (the CDF's jump there is their share).
CDF_LOW, CDF_HIGH = -1.0, 1.0
#: ΔNSE colour range: centred on 0, clipped to ±DNSE_CLIP (red: run 2 worse, blue: run 2 better).
DNSE_CLIP = 0.3
DNSE_PALETTE = tuple(reversed(RdBu11))
NAN_COLOR = "#9ca3af"
RUN_COLORS = Category10_10

# -- pure computations ------------------------------------------------------------------------

def _numeric(frame: pd.DataFrame | None, column: str) -> pd.Series:
    """``frame[column]`` as floats (NaN where not a number); an all-NaN series when absent."""
    if frame is None:
        return pd.Series(dtype=float)
    if column not in frame:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def nse_cdf(values, low: float = CDF_LOW, high: float = CDF_HIGH) -> tuple[np.ndarray, np.ndarray]:
    """Empirical CDF of per-site NSE (dimensionless).

    NaN (undefined NSE) is left out; the other values are clipped to ``[low, high]`` and sorted.

    Returns:
        ``(x, y)``: the sorted clipped values and, for each, the fraction of sites with NSE at or
        below it (``i / n`` for the i-th value, 1-based), e.g. ``[0.9, 0.2, 0.5]`` gives
        ``x = [0.2, 0.5, 0.9]``, ``y = [1/3, 2/3, 1]``. Empty arrays when no value is finite.
    """
    v = np.asarray(values, dtype=float).ravel()
    v = np.sort(np.clip(v[np.isfinite(v)], low, high))
    n = v.size
    return v, np.arange(1, n + 1, dtype=float) / n if n else np.zeros(0)


def cdf_stairs(x: np.ndarray, y: np.ndarray, high: float = CDF_HIGH) -> tuple[np.ndarray, np.ndarray]:
    """The staircase a line draws for the CDF ``(x, y)`` of `nse_cdf`: from 0 up at the first
    value, flat until the next one, and flat at 1 after the last value up to ``high``."""
    if len(x) == 0:
        return np.zeros(0), np.zeros(0)
    xs = np.repeat(np.asarray(x, float), 2)
    ys = np.concatenate([[0.0], np.repeat(np.asarray(y, float), 2)[:-1]])
    return np.append(xs, max(high, float(x[-1]))), np.append(ys, ys[-1])


def _run_attr(runs, run_id: str, attr: str, default="?"):
    for info in runs or []:
        if getattr(info, "run_id", None) == run_id:
            return getattr(info, attr, default)
    return default


def comparison_table(metrics_by_run: dict[str, pd.DataFrame], runs=None) -> pd.DataFrame:
    """Summary scores of each run, one row per run in the order of ``metrics_by_run``.

    Args:
        metrics_by_run: run id -> its per-site metrics table (`Run.metrics()`).
        runs: the store's `RunInfo` list (for each run's variant); optional.

    Returns:
        columns ``run``, ``variant``, ``n_sites`` (rows of its metrics), ``median_NSE`` and
        ``median_KGE`` (over sites where defined; dimensionless), ``BFI_r`` (Pearson r of
        simulated vs CAMELS baseflow index) and ``ET_r`` (Pearson r of mean simulated ET vs
        P − Q, both mm/d); NaN where a run lacks the columns or has fewer than 3 pairs.
    """
    rows = []
    for rid, m in metrics_by_run.items():
        nse, kge = _numeric(m, "NSE").dropna(), _numeric(m, "KGE").dropna()
        rows.append({
            "run": rid,
            "variant": str(_run_attr(runs, rid, "variant")),
            "n_sites": int(len(m)),
            "median_NSE": float(nse.median()) if len(nse) else float("nan"),
            "median_KGE": float(kge.median()) if len(kge) else float("nan"),
            "BFI_r": pcc(_numeric(m, "BFI_sim"), _numeric(m, "BFI_camels"), min_pairs=3),
            "ET_r": pcc(_numeric(m, "ET_mean"), _numeric(m, "P_minus_Q"), min_pairs=3),
        })
    return pd.DataFrame(rows, columns=["run", "variant", "n_sites", "median_NSE", "median_KGE",
                                       "BFI_r", "ET_r"])


def delta_nse(m1: pd.DataFrame, m2: pd.DataFrame) -> pd.Series:
    """ΔNSE = NSE(run 2) − NSE(run 1) per site the two runs have in common (dimensionless).

    Index: the common site ids in the order of ``m1``; NaN where either NSE is undefined.
    """
    common = m1.index[m1.index.isin(m2.index)]
    d = _numeric(m2, "NSE").reindex(common) - _numeric(m1, "NSE").reindex(common)
    d.name = "dNSE"
    return d


def delta_columns(m1: pd.DataFrame, m2: pd.DataFrame, sites: pd.DataFrame | None = None) -> dict:
    """Columns of the ΔNSE map source: one row per common site (see `delta_nse`).

    Columns: basin, gauge_name, lon, lat (degrees), x, y (metres, CONUS Albers), NSE_1, NSE_2,
    dNSE. Gauge name and location come from the runs' metrics, else from ``sites``.
    """
    d = delta_nse(m1, m2)
    idx = d.index
    meta = pd.DataFrame(index=idx)
    for col in ("gauge_name", "gauge_lat", "gauge_lon"):
        s = pd.Series(np.nan, index=idx, dtype=object)
        for frame in (m2, m1, sites):
            if frame is not None and col in frame:
                s = s.combine_first(frame[col].reindex(idx).astype(object))
        meta[col] = s
    lon = pd.to_numeric(meta["gauge_lon"], errors="coerce").to_numpy(float)
    lat = pd.to_numeric(meta["gauge_lat"], errors="coerce").to_numpy(float)
    x, y = project(lon, lat) if len(idx) else (np.zeros(0), np.zeros(0))
    return {
        "site": [str(b) for b in idx],
        "gauge_name": meta["gauge_name"].fillna("").astype(str).tolist(),
        "lon": lon, "lat": lat, "x": np.asarray(x, float), "y": np.asarray(y, float),
        "NSE_1": _numeric(m1, "NSE").reindex(idx).to_numpy(float),
        "NSE_2": _numeric(m2, "NSE").reindex(idx).to_numpy(float),
        "dNSE": d.to_numpy(float),
    }


def signature_columns(ids, metrics: pd.DataFrame | None) -> dict:
    """Columns of the signature scatters' source, one row per site id of ``ids`` (in order).

    Columns: basin, gauge_name and `SIGNATURE_COLUMNS` (BFI_sim, BFI_camels: dimensionless;
    ET_mean, P_minus_Q: mm/d); NaN for a site not in ``metrics`` or without the value (such rows
    are not drawn).
    """
    idx = pd.Index([str(b) for b in ids])
    names = (metrics["gauge_name"].reindex(idx) if metrics is not None and "gauge_name" in metrics
             else pd.Series("", index=idx))
    cols = {"site": list(idx), "gauge_name": names.fillna("").astype(str).tolist()}
    for c in SIGNATURE_COLUMNS:
        cols[c] = (_numeric(metrics, c).reindex(idx).to_numpy(float) if metrics is not None
                   else np.full(len(idx), np.nan))
    return cols


def run_choice_label(info) -> str:
    """One line for the comparison picker: ``run_id · variant · NSE 0.61``."""
    return f"{info.run_id} · {info.variant} · NSE {fmt(info.median_nse)}"


def evaluated(runs) -> list:
    """The readable runs that have an evaluation (a median NSE, or state done)."""
    return [i for i in readable(runs) if i.median_nse is not None or i.state == "done"]


def _placeholder(title: str, text: str) -> str:
    return (f'<div class="hl-placeholder"><b>{html.escape(title)}</b><br>{text}</div>')


# -- signature scatters -----------------------------------------------------------------------

_LINK_JS = """
const a = cb_obj.indices, b = other.indices;
if (a.length !== b.length || a.some((v, i) => v !== b[i])) { other.indices = a.slice(); }
"""


class SignatureView(Viewer):
    """Two signatures of the selected run per site, linked to the map's site selection.

    Left: simulated baseflow index ``BFI_sim`` (y) against the CAMELS ``baseflow_index``
    (``BFI_camels``, x), both dimensionless in [0, 1]. Right: mean simulated evapotranspiration
    ``ET_mean`` (y) against ``P_minus_Q`` = mean precipitation − mean observed streamflow (x), both
    mm/d over the test period (over a long period P − Q is the ET the water balance allows).
    Each has a dashed 1:1 line; its title gives Pearson r and the number of sites with both
    values. A run without the outputs (an LSTM has no baseflow or ET) shows a placeholder.

    Linking: both scatters draw from `source`, a ColumnDataSource with exactly the rows of the
    map's source (same sites, same order; sites not in the run are NaN and not drawn), so the
    two scatters share their selection, and the selection of `source` and of ``map_source`` are
    kept equal: in the browser by a ``js_on_change`` link each way (instant, no round trip), and
    on the server by ``on_change`` callbacks each way (so a pick on a scatter reaches the map's
    handler, which sets ``state.selection``/``state.site``, and a server-side pick reaches the
    scatters). Tap, box and lasso selection work on either scatter.

    The scatters use their own source rather than adding columns to ``map_source``: the map
    replaces its source's data wholesale on a run change, which would drop added columns, and a
    browser that receives that data before the columns are added back draws glyphs whose fields
    do not exist. `refresh` re-aligns `source` with the map's rows; it runs on every change of
    ``map_source.data`` (server-side ``on_change``, which fires after the map set its data,
    whatever the order of the state's watchers) and when ``state.metrics`` changes, and is a
    cheap no-op when neither the map's site ids nor the metrics changed. MapView may also call it.

    Attributes:
        source: the scatters' ColumnDataSource (basin, gauge_name, BFI_sim, BFI_camels,
            ET_mean, P_minus_Q), named ``hydrolens-signatures``.
        bfi_figure, et_figure: the Bokeh figures (``hydrolens-bfi-scatter``,
            ``hydrolens-et-scatter``).
    """

    state = param.ClassSelector(class_=AppState, doc="The explorer state.")
    shown = param.Boolean(default=True, doc=(
        "Whether the view is on screen. The figures are built the first time it is True (a "
        "hidden tab costs no figures); `source` and its selection are kept linked throughout."))

    def __init__(self, state: AppState, map_source: ColumnDataSource | None = None, **params):
        super().__init__(state=state, **params)
        self.map_source = map_source
        self._key: tuple | None = None
        self._syncing = False
        self.source = ColumnDataSource(signature_columns([], None), name=SIGNATURE_SOURCE_NAME)
        self.bfi_figure = self.et_figure = None
        self._content = pn.Column(sizing_mode="stretch_width")
        self._layout = pn.Column(
            self._content,
            html_pane(
                '<div class="hl-caption">Per site of the selected run, test period. Dashed: 1:1. '
                "Select sites on a scatter (tap, box, lasso) to pick them on the map; sites "
                "picked on the map are highlighted here.</div>"),
            sizing_mode="stretch_width",
        )
        self.param.watch(self._build, "shown")
        self._build()
        if map_source is not None:
            map_source.on_change("data", self._on_map_data)
            map_source.selected.on_change("indices", self._from_map)
            self.source.selected.on_change("indices", self._to_map)
            map_source.selected.js_on_change(
                "indices", CustomJS(args={"other": self.source.selected}, code=_LINK_JS))
            self.source.selected.js_on_change(
                "indices", CustomJS(args={"other": map_source.selected}, code=_LINK_JS))
        state.param.watch(self.refresh, "metrics")
        self.refresh()

    # -- building ------------------------------------------------------------------------------
    def _build(self, *_events) -> None:
        """Build the two scatters (once, when first shown) and show the current titles."""
        if not self.shown or self.bfi_figure is not None:
            return
        self.bfi_figure = self._make_figure(
            BFI_SCATTER_NAME, "BFI_camels", "BFI_sim", "CAMELS baseflow index (–)",
            "simulated baseflow index (–)",
            [("site", "@site"), ("name", "@gauge_name"), ("BFI sim", "@BFI_sim{0.000}"),
             ("BFI CAMELS", "@BFI_camels{0.000}")], unit_range=True)
        self.et_figure = self._make_figure(
            ET_SCATTER_NAME, "P_minus_Q", "ET_mean", "P − Q (mm/d)", "mean simulated ET (mm/d)",
            [("site", "@site"), ("name", "@gauge_name"), ("ET sim", "@ET_mean{0.00} mm/d"),
             ("P − Q", "@P_minus_Q{0.00} mm/d")], unit_range=False)
        self._bfi_box, self._bfi_note = self._boxed(self.bfi_figure)
        self._et_box, self._et_note = self._boxed(self.et_figure)
        if self._key is not None:
            # titles before the figures reach the page: BokehJS 3.9 does not re-lay out a
            # figure whose empty title gets text after its first render (the title stays unseen)
            self._show_titles()
        self._content.objects = [
            pn.Row(pn.Column(self._bfi_note, self._bfi_box, sizing_mode="stretch_width"),
                   pn.Column(self._et_note, self._et_box, sizing_mode="stretch_width"),
                   sizing_mode="stretch_width")]

    def _make_figure(self, name, x, y, xlabel, ylabel, tooltips, unit_range):
        ranges = {"x_range": Range1d(-0.02, 1.02), "y_range": Range1d(-0.02, 1.02)} if unit_range else {}
        fig = figure(name=name, height=340, sizing_mode="stretch_width",
                     tools="pan,wheel_zoom,box_select,lasso_select,tap,reset,save",
                     active_drag="box_select", toolbar_location="above", x_axis_label=xlabel,
                     y_axis_label=ylabel, border_fill_color="#ffffff", outline_line_color=None,
                     **ranges)
        fig.toolbar.logo = None
        fig.title.text_font_size = "14px"
        fig.add_layout(Slope(gradient=1, y_intercept=0, line_color="#6b7280", line_dash="dashed",
                             line_width=1.2))
        points = fig.scatter(x, y, source=self.source, size=8, fill_color="#2563eb",
                             line_color="#1e3a8a", line_width=0.6, fill_alpha=0.75,
                             name=f"{name}-points")
        points.selection_glyph = Scatter(x=x, y=y, size=11, fill_color="#f59e0b", line_color="#000000",
                                         line_width=1.4, fill_alpha=1.0)
        points.nonselection_glyph = Scatter(x=x, y=y, size=7, fill_color="#2563eb", line_color="#1e3a8a",
                                            fill_alpha=0.2, line_alpha=0.25)
        fig.add_tools(HoverTool(renderers=[points], tooltips=tooltips))
        return fig

    @staticmethod
    def _boxed(fig):
        # visibility is toggled on a wrapper (see HydrographView)
        box = pn.Column(pn.pane.Bokeh(fig, sizing_mode="stretch_width"), sizing_mode="stretch_width")
        note = html_pane(sizing_mode="stretch_width", visible=False)
        return box, note

    # -- updating ------------------------------------------------------------------------------
    def _ids(self) -> list[str]:
        if self.map_source is not None:
            return [str(b) for b in self.map_source.data.get("site", [])]
        m = self.state.metrics
        return [] if m is None else [str(b) for b in m.index]

    def refresh(self, *_events) -> None:
        """Align `source` with the map's rows and the selected run's metrics; update the titles
        and placeholders. A no-op when neither the map's site ids nor the metrics changed."""
        ids, metrics = self._ids(), self.state.metrics
        if self._key is not None and self._key[1] is metrics and self._key[0] == ids:
            return
        self._key = (ids, metrics)
        with echo_guard(self, "_syncing"):
            self.source.data = signature_columns(ids, metrics)
            if self.map_source is not None:
                n = len(ids)
                self.source.selected.indices = [i for i in self.map_source.selected.indices if i < n]
        self._show_titles()

    def _show_titles(self) -> None:
        if self.bfi_figure is None:  # not built yet (hidden): `_build` shows them
            return
        m = self.state.metrics
        run = self.state.run_id
        for fig, box, note, (x, y), what, missing in (
            (self.bfi_figure, self._bfi_box, self._bfi_note, ("BFI_camels", "BFI_sim"),
             "Baseflow index: simulated vs CAMELS",
             {"BFI_sim": "has no baseflow output (e.g. an LSTM run), so no simulated BFI",
              "BFI_camels": "has no CAMELS baseflow index for its sites"}),
            (self.et_figure, self._et_box, self._et_note, ("P_minus_Q", "ET_mean"),
             "Mean ET vs P − Q (mm/d)",
             {"ET_mean": "has no ET output (e.g. an LSTM run)",
              "P_minus_Q": "has no P − Q (no observed streamflow or precipitation)"}),
        ):
            xs, ys = _numeric(m, x), _numeric(m, y)
            reason = None
            if m is None:
                reason = "No evaluated run selected: pick an evaluated run in the sidebar."
            else:
                for col, text in missing.items():
                    if not _numeric(m, col).notna().any():
                        reason = f"Run {html.escape(str(run))} {text}."
                        break
            box.visible = reason is None
            note.visible = reason is not None
            if reason is not None:
                fig.title.text = what
                note.object = _placeholder(what, reason)
                continue
            n = int((xs.notna() & ys.notna()).sum())
            fig.title.text = f"{what} · r = {fmt(pcc(xs, ys, min_pairs=3))} · n = {n}"

    def _on_map_data(self, _attr, _old, _new) -> None:
        self.refresh()

    def _from_map(self, _attr, _old, new) -> None:
        if self._syncing:
            return
        n = len(self.source.data["site"])
        wanted = [i for i in new if i < n]
        if list(self.source.selected.indices) != wanted:
            with echo_guard(self, "_syncing"):
                self.source.selected.indices = wanted

    def _to_map(self, _attr, _old, new) -> None:
        if self._syncing or self.map_source is None:
            return
        if list(self.map_source.selected.indices) != list(new):
            self.map_source.selected.indices = list(new)  # the map's handler sets the state

    def __panel__(self):
        return self._layout


# -- run comparison ---------------------------------------------------------------------------

class CompareView(Viewer):
    """Compare evaluated runs: NSE CDFs, a score table and a ΔNSE map.

    A multi-choice of the evaluated readable runs is bound both ways to ``state.compare``.
    For the runs picked (in pick order):

    - `cdf_figure` (``hydrolens-nse-cdf``): the empirical CDF of per-site test NSE
      (dimensionless; x clipped to [−1, 1], the jump at −1 is the share of sites at or below −1),
      one line per run named ``cdf-<run id>``, legend run id and variant;
    - `table` (class ``hl-compare-table``): run, variant, sites, median NSE, median KGE, BFI r
      (Pearson, simulated vs CAMELS baseflow index), ET r (Pearson, mean ET vs P − Q, mm/d);
    - the ΔNSE map (``hydrolens-dnse-map``, created once two runs are picked): NSE(run 2) −
      NSE(run 1) on the sites both runs have, on the CONUS basemap, red where run 2 is worse,
      blue where it is better (colours clipped to ±0.3). Its source is `dnse_source`.

    Attributes:
        picker: the ``pn.widgets.MultiChoice``.
        cdf_figure, table, dnse_figure (None until needed), dnse_source.
        frame: the last `comparison_table` shown.
    """

    state = param.ClassSelector(class_=AppState, doc="The explorer state.")

    def __init__(self, state: AppState, **params):
        super().__init__(state=state, **params)
        self._syncing = False
        self._runs: dict[str, str] = {}
        self.frame = comparison_table({})
        self.picker = pn.widgets.MultiChoice(label="Runs to compare", placeholder="pick two or more runs",
                                             sizing_mode="stretch_width")
        self.hint = html_pane()
        self.cdf_figure = self._make_cdf()
        self.table = html_pane()
        self.dnse_figure = None
        self.dnse_source: ColumnDataSource | None = None
        self.dnse_mapper: LinearColorMapper | None = None
        self._cdf_box = pn.Column(pn.pane.Bokeh(self.cdf_figure, sizing_mode="stretch_width"),
                                  sizing_mode="stretch_width")
        self._map_box = pn.Column(sizing_mode="stretch_width", visible=False)
        self._map_note = html_pane()
        self._layout = pn.Column(self.picker, self.hint, self._cdf_box, self.table, self._map_note,
                                 self._map_box, sizing_mode="stretch_width")
        self.picker.param.watch(self._pick, "value")
        state.param.watch(self._show_runs, "runs")
        state.param.watch(self._show_compare, "compare")
        self._show_runs()

    # -- building ------------------------------------------------------------------------------
    def _make_cdf(self):
        fig = figure(name=CDF_NAME, height=330, sizing_mode="stretch_width",
                     x_range=Range1d(CDF_LOW, CDF_HIGH), y_range=Range1d(0, 1.02),
                     tools="pan,wheel_zoom,box_zoom,reset,save", toolbar_location="above",
                     x_axis_label="NSE, test period (clipped to [−1, 1])",
                     y_axis_label="fraction of sites with NSE ≤ x",
                     border_fill_color="#ffffff", outline_line_color=None)
        fig.toolbar.logo = None
        fig.title.text = "CDF of per-site NSE"
        fig.title.text_font_size = "14px"
        fig.add_layout(Span(location=0, dimension="height", line_color="#9ca3af", line_dash="dotted"))
        self._legend = Legend(items=[], location="top_left", click_policy="hide",
                              label_text_font_size="11px")
        fig.add_layout(self._legend)
        fig.add_tools(HoverTool(tooltips=[("run", "@run"), ("NSE", "@x{0.00}"),
                                          ("fraction ≤", "@y{0.00}")]))
        return fig

    def _make_map(self):
        df = pd.DataFrame({k: pd.Series(dtype=object if k in ("site", "gauge_name") else float)
                           for k in ("x", "y", "site", "gauge_name", "lon", "lat", "NSE_1", "NSE_2",
                                     "dNSE")})
        fig, renderer = site_map(
            df, name=DNSE_MAP_NAME, key="dNSE", title_font_size="14px",
            tools=["hover"], size=9, color="#9ca3af", line_color="#1f2937",
            hover_tooltips=[("site", "@site"), ("name", "@gauge_name"),
                            ("NSE run 1", "@NSE_1{0.000}"), ("NSE run 2", "@NSE_2{0.000}"),
                            ("ΔNSE", "@dNSE{+0.000}")])
        source = renderer.data_source
        source.name = DNSE_SOURCE_NAME
        mapper = LinearColorMapper(palette=list(DNSE_PALETTE), low=-DNSE_CLIP, high=DNSE_CLIP,
                                   low_color=DNSE_PALETTE[0], high_color=DNSE_PALETTE[-1],
                                   nan_color=NAN_COLOR)
        color = {"field": "dNSE", "transform": mapper}
        for g in (renderer.glyph, renderer.selection_glyph, renderer.nonselection_glyph,
                  renderer.hover_glyph):
            if g is not None:
                g.update(fill_color=color)
        fig.add_layout(ColorBar(color_mapper=mapper, name=DNSE_COLORBAR_NAME,
                                title="ΔNSE (run2 − run1)", title_text_font_style="normal",
                                width=12, padding=6, major_label_text_font_size="11px",
                                title_text_font_size="12px"), "right")
        self.dnse_figure, self.dnse_source, self.dnse_mapper = fig, source, mapper

    # -- updating ------------------------------------------------------------------------------
    def _show_runs(self, *_events) -> None:
        self._runs = {i.run_id: run_choice_label(i) for i in evaluated(self.state.runs)}
        self._show_compare()

    def _sync_picker(self) -> list[str]:
        """Put the picker in step with ``state.compare``; return the runs it can offer.

        The picked runs are listed first, in pick order (the picker shows its chips in the order
        of its options, and run 1 / run 2 of the ΔNSE map are the first two picks)."""
        runs = self._runs
        wanted = [r for r in self.state.compare if r in runs]
        order = wanted + [r for r in runs if r not in wanted]
        options = {runs[r]: r for r in order}
        current = self.picker.options
        current = list(current.items()) if isinstance(current, dict) else list(current)
        if list(options.items()) != current or list(self.picker.value) != wanted:
            with echo_guard(self, "_syncing"):
                self.picker.param.update(options=options, value=wanted, disabled=len(options) < 2)
        return list(runs)

    def _pick(self, event) -> None:
        if not self._syncing:
            self.state.compare = [str(r) for r in event.new]

    def _show_compare(self, *_events) -> None:
        state = self.state
        available = self._sync_picker()
        by_run = state.comparison(list(state.compare))
        left_out = [r for r in state.compare if r not in by_run]
        self._show_hint(len(available), by_run, left_out)
        self._show_cdf(by_run)
        self._show_table(by_run)
        self._show_delta(by_run)

    def _show_hint(self, n_available: int, by_run: dict, left_out: list[str]) -> None:
        if n_available < 2:
            text = (f"{n_available} evaluated run(s) in the store: train and evaluate at least two "
                    "runs to compare them.")
        elif not by_run:
            text = "Pick two or more runs to compare their per-site NSE."
        elif len(by_run) == 1:
            text = "Pick one more run: the ΔNSE map needs two."
        else:
            ids = list(by_run)
            text = (f"ΔNSE map: <b>{html.escape(ids[1])}</b> − <b>{html.escape(ids[0])}</b> "
                    "(the first two runs picked).")
        if left_out:
            text += " Left out (not evaluated or unreadable): " + ", ".join(
                f"<code>{html.escape(r)}</code>" for r in left_out) + "."
        self.hint.object = f'<div class="hl-hint">{text}</div>'

    def _show_cdf(self, by_run: dict) -> None:
        fig = self.cdf_figure
        keep = [r for r in fig.renderers if not (r.name or "").startswith("cdf-")]
        items, new = [], []
        for i, (rid, m) in enumerate(by_run.items()):
            x, y = nse_cdf(_numeric(m, "NSE"))
            xs, ys = cdf_stairs(x, y)
            src = ColumnDataSource({"x": xs, "y": ys, "run": [rid] * len(xs)})
            r = fig.line("x", "y", source=src, line_width=2.2, color=RUN_COLORS[i % len(RUN_COLORS)],
                         name=f"cdf-{rid}")
            new.append(r)
            variant = _run_attr(self.state.runs, rid, "variant")
            items.append(LegendItem(label=f"{rid} · {variant} (n={len(x)})", renderers=[r]))
        fig.renderers = keep + new
        self._legend.items = items
        fig.title.text = ("CDF of per-site NSE" if by_run
                          else "CDF of per-site NSE: pick runs to compare")

    def _show_table(self, by_run: dict) -> None:
        frame = comparison_table(by_run, self.state.runs)
        self.frame = frame
        if frame.empty:
            self.table.object = ""
            return
        head = ("<tr><th>run</th><th>variant</th><th class='hl-num'>sites</th>"
                "<th class='hl-num'>median NSE</th><th class='hl-num'>median KGE</th>"
                "<th class='hl-num'>BFI r</th><th class='hl-num'>ET r</th></tr>")
        rows = []
        for i, row in enumerate(frame.itertuples(index=False)):
            swatch = f'<span class="hl-swatch" style="background:{RUN_COLORS[i % len(RUN_COLORS)]}"></span>'
            rows.append(
                f"<tr><td>{swatch}<code>{html.escape(row.run)}</code></td>"
                f"<td>{html.escape(row.variant)}</td><td class='hl-num'>{row.n_sites}</td>"
                f"<td class='hl-num'>{fmt(row.median_NSE)}</td><td class='hl-num'>{fmt(row.median_KGE)}</td>"
                f"<td class='hl-num'>{fmt(row.BFI_r)}</td><td class='hl-num'>{fmt(row.ET_r)}</td></tr>")
        self.table.object = (f'<table class="hl-table hl-compare-table"><thead>{head}</thead>'
                             f"<tbody>{''.join(rows)}</tbody></table>"
                             '<div class="hl-caption">NSE, KGE: dimensionless, test period. BFI r: '
                             "Pearson r of simulated vs CAMELS baseflow index; ET r: Pearson r of "
                             "mean simulated ET vs P − Q (mm/d); — where a run has no such output."
                             "</div>")

    def _show_delta(self, by_run: dict) -> None:
        ids = list(by_run)
        cols = None
        if len(ids) >= 2:
            cols = delta_columns(by_run[ids[0]], by_run[ids[1]], self.state.sites)
        if cols is None or not cols["site"]:
            self._map_box.visible = False
            if self.dnse_source is not None:
                self.dnse_source.data = {k: [] for k in self.dnse_source.column_names}
            self._map_note.visible = True
            what = ("Pick two or more runs above: the map shows NSE(run 2) − NSE(run 1) per site."
                    if len(ids) < 2 else
                    f"Runs {html.escape(ids[0])} and {html.escape(ids[1])} have no site in common: pick two "
                    "runs trained on overlapping sites.")
            self._map_note.object = _placeholder("ΔNSE map", what)
            return
        new = self.dnse_figure is None
        if new:
            self._make_map()
        src = self.dnse_source
        self.dnse_source.data = {k: cols[k] for k in src.column_names if k in cols} | {
            k: v for k, v in cols.items() if k not in src.column_names}
        d = np.asarray(cols["dNSE"], float)
        ok = d[np.isfinite(d)]
        better, worse = int((ok > 0).sum()), int((ok < 0).sum())
        self.dnse_figure.title.text = (
            f"ΔNSE = NSE({ids[1]}) − NSE({ids[0]}) · {len(d)} common sites · "
            f"median {fmt(float(np.median(ok)) if ok.size else None, 3)} · "
            f"{better} better, {worse} worse")
        if new:  # on the page only once titled (see SignatureView._build: BokehJS 3.9 titles)
            self._map_box.objects = [pn.pane.Bokeh(self.dnse_figure, sizing_mode="stretch_width")]
        self._map_note.visible = False
        self._map_box.visible = True

    def __panel__(self):
        return self._layout
