"""The site map: every site of the data root on the CONUS Albers basemap, coloured by a quantity.

Drawn with HoloViews/GeoViews (``explorer.geomap.basemap() * hv.Points(...)`` in CONUS_CRS metres),
rendered to Bokeh once per session; later changes (run, quantity, filters, picks) only update
the points' ColumnDataSource and the colour mapper, so they take milliseconds. Tap, box and
lasso selection pick sites (``state.selection``); a tap on a site of the run also shows it
(``state.site``), which is ringed. Sites are basins (points) or grid cells (squares).
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import ColorBar, ColumnDataSource, LinearColorMapper, Scatter
from bokeh.palettes import RdBu11, Viridis256, interp_palette
from panel.viewable import Viewer

from explorer.geomap import project, site_map
from explorer.state import AppState, Quantity, echo_guard

#: NSE/KGE colour scale in bins of 0.1, clipped to [-0.5, 1]: red to yellow below 0 (worse than
#: the mean flow), green to dark blue from 0 to 1; darkest red below -0.5, grey when undefined.
NSE_LOW, NSE_HIGH = -0.5, 1.0
NSE_PALETTE = ("#a50026", "#d73027", "#f46d43", "#fdae61", "#fee08b") + tuple(
    interp_palette(("#c7e9b4", "#7fcdbb", "#41b6c4", "#1d91c0", "#225ea8", "#0c2c84"), 10)
)
NSE_BELOW_COLOR = "#67001f"
NAN_COLOR = "#9ca3af"
DIVERGING_PALETTE = tuple(reversed(RdBu11))

MAP_NAME = "hydrolens-map"
BASINS_NAME = "hydrolens-basins"
COLORBAR_NAME = "hydrolens-colorbar"

#: Point sizes (screen px): sites of the selected run, other sites of the data root.
SIZE_IN_RUN, SIZE_OTHER = 10, 6


def palette_for(q: Quantity | None, values: np.ndarray) -> dict:
    """Colour-mapper settings (palette, low, high, low/high colours) for a quantity's values."""
    finite = values[np.isfinite(values)]
    if q is not None and q.key in ("NSE", "KGE", "dNSE"):
        lo, hi = (NSE_LOW, NSE_HIGH) if q.key != "dNSE" else (-0.3, 0.3)
        if q.key == "dNSE":
            return {"palette": list(DIVERGING_PALETTE), "low": lo, "high": hi,
                    "low_color": DIVERGING_PALETTE[0], "high_color": DIVERGING_PALETTE[-1]}
        return {"palette": list(NSE_PALETTE), "low": lo, "high": hi,
                "low_color": NSE_BELOW_COLOR, "high_color": NSE_PALETTE[-1]}
    if q is not None and q.diverging:
        m = float(np.nanpercentile(np.abs(finite), 95)) if finite.size else 1.0
        m = m or 1.0
        return {"palette": list(DIVERGING_PALETTE), "low": -m, "high": m,
                "low_color": DIVERGING_PALETTE[0], "high_color": DIVERGING_PALETTE[-1]}
    if q is not None and q.bounds is not None and q.group != "parameter":
        lo, hi = q.bounds
    elif finite.size:
        # parameters: the data range inside their physical bounds (learned values rarely span
        # the whole range, and a map of one colour answers nothing)
        lo, hi = float(np.nanpercentile(finite, 2)), float(np.nanpercentile(finite, 98))
        if q is not None and q.bounds is not None:
            lo, hi = max(lo, q.bounds[0]), min(hi, q.bounds[1])
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
    else:
        lo, hi = 0.0, 1.0
    pal = list(Viridis256[::8])
    return {"palette": pal, "low": lo, "high": hi, "low_color": pal[0], "high_color": pal[-1]}


def site_columns(sites: pd.DataFrame, in_run: pd.Index, values: pd.Series,
                 shown: np.ndarray | None = None) -> dict:
    """The map source's columns: one row per site (ids, names, projected x/y in metres, value)."""
    lon = pd.to_numeric(sites["gauge_lon"], errors="coerce").to_numpy(float)
    lat = pd.to_numeric(sites["gauge_lat"], errors="coerce").to_numpy(float)
    x, y = project(lon, lat)
    ids = [str(b) for b in sites.index]
    member = sites.index.isin(in_run)
    vals = values.reindex(sites.index).to_numpy(float) if len(values) else np.full(len(ids), np.nan)
    shown = np.ones(len(ids), bool) if shown is None else shown
    return {
        "site": ids,
        "gauge_name": sites["gauge_name"].fillna("").astype(str).tolist(),
        "x": x, "y": y, "lon": lon, "lat": lat,
        "value": vals,
        "in_run": member.tolist(),
        "size": np.where(member, SIZE_IN_RUN, SIZE_OTHER).astype(float),
        "alpha": np.where(shown, 1.0, 0.15),
    }


class MapView(Viewer):
    """CONUS map of the sites coloured by ``state.quantity``; tap/box/lasso pick sites.

    Attributes:
        source: the points' ColumnDataSource (columns basin, gauge_name, x, y (metres, CONUS
            Albers), lon, lat, value, in_run, size, alpha); ``selected.indices`` are the picked
            sites (``state.selection``).
        figure: the Bokeh figure rendered from the HoloViews overlay (named ``hydrolens-map``).
        color_bar: the colour bar; its title is the quantity and its units.
    """

    state = param.ClassSelector(class_=AppState, doc="The explorer state.")

    def __init__(self, state: AppState, **params):
        super().__init__(state=state, **params)
        self._shown = None      # filter mask over state.sites (None: all)
        self._ids: list[str] = []
        self._updating = False
        self.figure, self.source, self.renderer = self._make_figure()
        self.mapper = LinearColorMapper(palette=list(NSE_PALETTE), low=NSE_LOW, high=NSE_HIGH,
                                        nan_color=NAN_COLOR)
        color = {"field": "value", "transform": self.mapper}
        glyph = self.renderer.glyph
        marker = "square" if self._site_kind() == "grid_cell" else "circle"
        for g in (glyph, self.renderer.selection_glyph, self.renderer.nonselection_glyph):
            if g is not None:
                g.update(fill_color=color, marker=marker)
        self.renderer.glyph.update(size={"field": "size"}, fill_alpha={"field": "alpha"},
                                   line_alpha={"field": "alpha"}, line_color="#1f2937", line_width=0.6)
        self.renderer.selection_glyph = Scatter(marker=marker, size={"field": "size"}, fill_color=color,
                                                line_color="#000000", line_width=1.6, fill_alpha=1.0)
        self.renderer.nonselection_glyph = Scatter(marker=marker, size={"field": "size"},
                                                   fill_color=color, line_color="#6b7280",
                                                   line_width=0.4, fill_alpha=0.35, line_alpha=0.35)
        self.color_bar = ColorBar(color_mapper=self.mapper, name=COLORBAR_NAME, title="NSE",
                                  title_text_font_style="normal", width=12, padding=6,
                                  major_label_text_font_size="11px", title_text_font_size="12px")
        self.figure.add_layout(self.color_bar, "right")
        # the shown site: a ring
        self.ring = ColumnDataSource({"x": [], "y": []}, name="hydrolens-current")
        self.figure.scatter("x", "y", source=self.ring, size=20, fill_alpha=0, line_color="#111827",
                            line_width=3, marker="circle")
        self.source.selected.on_change("indices", self._on_indices)
        state.param.watch(self._show_run, ["metrics", "info", "params_table"])
        state.param.watch(self._show_quantity, "quantity")
        state.param.watch(self._show_basin, "site")
        state.param.watch(self._show_selection, "selection")
        self._show_run()
        self._pane = pn.pane.Bokeh(self.figure, sizing_mode="stretch_width")

    # -- building ------------------------------------------------------------------------------
    def _site_kind(self) -> str:
        run = self.state.run
        try:
            return run.site_kind() if run is not None and run.has_evaluation() else "basin"
        except Exception:  # noqa: BLE001
            return "basin"

    def _make_figure(self):
        cols = site_columns(self.state.sites, pd.Index([]), pd.Series(dtype=float))
        fig, renderer = site_map(
            pd.DataFrame(cols), name=MAP_NAME, key="site",
            tools=["hover", "tap", "box_select", "lasso_select"], size=SIZE_OTHER, color="#9ca3af",
            hover_tooltips=[("site", "@site"), ("name", "@gauge_name"), ("value", "@value{0.000}"),
                            ("lat, lon", "@lat{0.00}, @lon{0.00}")],
            line_color="#1f2937", nonselection_alpha=0.35)
        renderer.data_source.name = BASINS_NAME
        return fig, renderer.data_source, renderer

    # -- updating ------------------------------------------------------------------------------
    def set_filter(self, shown: np.ndarray | None) -> None:
        """Fade the sites outside a filter (``shown``: bool per row of ``state.sites``)."""
        self._shown = shown
        n = len(self._ids)
        mask = np.ones(n, bool) if shown is None or len(shown) != n else shown
        self.source.patch({"alpha": [(slice(0, n), np.where(mask, 1.0, 0.15))]})

    def _set_marker(self) -> None:
        """Squares for grid cells, circles for basins: the shown run's kind of site."""
        marker = "square" if self._site_kind() == "grid_cell" else "circle"
        for g in (self.renderer.glyph, self.renderer.selection_glyph, self.renderer.nonselection_glyph):
            if g is not None and g.marker != marker:
                g.marker = marker

    def _show_run(self, *_events) -> None:
        state = self.state
        self._set_marker()
        sites = state.sites
        in_run = state.metrics.index if state.metrics is not None else pd.Index([])
        cols = site_columns(sites, in_run, state.values(), self._shown)
        with echo_guard(self, "_updating"):
            self._ids = cols["site"]
            self.source.data = {k: cols[k] for k in self.source.column_names if k in cols} | {
                k: v for k, v in cols.items() if k not in self.source.column_names}
            self._show_selection()
        self._show_quantity()
        self._show_basin()

    def _show_quantity(self, *_events) -> None:
        state = self.state
        q = state.quantities().get(state.quantity)
        values = state.values().reindex(pd.Index(self._ids)).to_numpy(float) if self._ids else np.zeros(0)
        if len(values) == len(self._ids):
            if len(values):
                self.source.patch({"value": [(slice(0, len(values)), values)]})
        self.mapper.update(**palette_for(q, values))
        info = state.info
        self.color_bar.title = (q.title if q is not None else "no run selected" if info is None
                                else "run not evaluated yet")
        n_run = 0 if state.metrics is None else len(state.metrics)
        if info is None:
            title = f"{len(self._ids)} sites of the data root · pick sites to train"
        elif state.metrics is None:
            title = f"{len(self._ids)} sites · run {info.run_id} is not evaluated yet"
        else:
            title = f"{q.title if q else state.quantity} · {n_run} sites of run {info.run_id}"
        self.figure.title.text = title

    def _show_basin(self, *_events) -> None:
        b = self.state.site
        if b in self._ids:
            i = self._ids.index(b)
            self.ring.data = {"x": [self.source.data["x"][i]], "y": [self.source.data["y"][i]]}
        else:
            self.ring.data = {"x": [], "y": []}

    def _show_selection(self, *_events) -> None:
        pos = {b: i for i, b in enumerate(self._ids)}
        wanted = sorted(pos[b] for b in self.state.selection if b in pos)
        if list(self.source.selected.indices) != wanted:
            with echo_guard(self, "_updating"):
                self.source.selected.indices = wanted

    def _on_indices(self, _attr, old, new) -> None:
        if self._updating:
            return
        ids = self._ids
        shown = self._shown
        picked = [ids[i] for i in new if i < len(ids) and (shown is None or shown[i])]
        metrics = self.state.metrics
        with param.parameterized.batch_call_watchers(self.state):
            if len(new) == 1 and metrics is not None and ids[new[0]] in metrics.index:
                self.state.site = ids[new[0]]  # a tap on a site of the run shows it
            self.state.selection = picked
        if len(picked) != len(new):
            self._show_selection()

    def __panel__(self):
        return self._pane


def describe_selection(state: AppState, limit: int = 60) -> str:
    """HTML list of the picked sites (id and name), for the selection panel."""
    sites = state.sites
    items = []
    for b in state.selection[:limit]:
        name = sites["gauge_name"].get(b, "") if b in sites.index else ""
        items.append(f"<li><code>{html.escape(b)}</code> {html.escape(str(name))}</li>")
    more = f"<li>… and {len(state.selection) - limit} more</li>" if len(state.selection) > limit else ""
    return f'<ul class="hl-picklist">{"".join(items)}{more}</ul>' if items else ""
