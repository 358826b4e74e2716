"""The explorer's views: the basin map, the hydrograph and the run panel.

Each view is a `panel.viewable.Viewer` around one :class:`~explorer.state.AppState`. Views only
read the state and set its `run_id` / `basin`; they never open run files themselves. Plots are
plain Bokeh figures (named, so that tests and the browser can find them in the document).
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import (
    ColorBar,
    ColumnDataSource,
    DataRange1d,
    FixedTicker,
    HoverTool,
    Legend,
    LinearColorMapper,
    Scatter,
    TapTool,
)
from bokeh.palettes import interp_palette
from bokeh.plotting import figure
from panel.viewable import Viewer

from explorer.geometry import albers, conus_states
from explorer.state import AppState, fmt, readable, run_label

#: The explorer's stylesheet (shipped as package data beside this module).
CSS_PATH = Path(__file__).resolve().parents[1] / "assets" / "hydrolens.css"
CSS = CSS_PATH.read_text(encoding="utf-8")

#: NSE colour scale in bins of 0.1, clipped to [NSE_LOW, NSE_HIGH]: red to yellow below 0 (worse
#: than the mean flow), green to dark blue from 0 to 1 (no near-white bin, so every point stands
#: out from the land). Below NSE_LOW the darkest red, NaN grey: every basin stays visible.
NSE_LOW, NSE_HIGH = -0.5, 1.0
NSE_PALETTE = ("#a50026", "#d73027", "#f46d43", "#fdae61", "#fee08b") + tuple(
    interp_palette(("#c7e9b4", "#7fcdbb", "#41b6c4", "#1d91c0", "#225ea8", "#0c2c84"), 10)
)
NSE_BELOW_COLOR = "#67001f"
NSE_NAN_COLOR = "#9ca3af"

OBS_COLOR, SIM_COLOR = "#1f2937", "#2563eb"

#: Bokeh model names, stable for tests and for the browser (Bokeh.documents[0].get_model_by_name).
MAP_NAME = "hydrolens-map"
BASINS_NAME = "hydrolens-basins"
HYDROGRAPH_NAME = "hydrolens-hydrograph"
SERIES_NAME = "hydrolens-series"

_POINT_COLUMNS = ("basin", "gauge_name", "gauge_lon", "gauge_lat", "x", "y", "NSE", "KGE")


def basin_columns(metrics: pd.DataFrame | None) -> dict[str, np.ndarray | list]:
    """Columns of the map's point source: one row per basin of `metrics` (empty if None)."""
    if metrics is None or metrics.empty:
        return {c: [] for c in _POINT_COLUMNS}
    lon = pd.to_numeric(metrics["gauge_lon"], errors="coerce").to_numpy(float)
    lat = pd.to_numeric(metrics["gauge_lat"], errors="coerce").to_numpy(float)
    x, y = albers(lon, lat)
    return {
        "basin": [str(b) for b in metrics.index],
        "gauge_name": metrics["gauge_name"].fillna("").astype(str).tolist(),
        "gauge_lon": lon,
        "gauge_lat": lat,
        "x": x,
        "y": y,
        "NSE": pd.to_numeric(metrics["NSE"], errors="coerce").to_numpy(float),
        "KGE": pd.to_numeric(metrics["KGE"], errors="coerce").to_numpy(float),
    }


def nse_color_mapper() -> LinearColorMapper:
    """The map's colour mapper for NSE (see `NSE_PALETTE`)."""
    return LinearColorMapper(
        palette=list(NSE_PALETTE),
        low=NSE_LOW,
        high=NSE_HIGH,
        low_color=NSE_BELOW_COLOR,
        high_color=NSE_PALETTE[-1],
        nan_color=NSE_NAN_COLOR,
    )


class MapView(Viewer):
    """CONUS map of the selected run's basins, coloured by test NSE; a click selects a basin.

    Attributes:
        source: the points' ColumnDataSource (columns basin, gauge_name, gauge_lon, gauge_lat,
            x, y, NSE, KGE); its ``selected.indices`` mirror ``state.basin``.
        figure: the Bokeh figure (named ``hydrolens-map``).
    """

    state = param.ClassSelector(class_=AppState, doc="The explorer state.")

    def __init__(self, state: AppState, **params):
        super().__init__(state=state, **params)
        self.source = ColumnDataSource(data=basin_columns(None), name=BASINS_NAME)
        self.figure = self._make_figure()
        self.source.selected.on_change("indices", self._on_indices)
        state.param.watch(self._show_run, ["metrics", "info"])
        state.param.watch(self._show_basin, "basin")
        self._show_run()
        self._pane = pn.pane.Bokeh(self.figure, sizing_mode="stretch_width")

    def _make_figure(self):
        fig = figure(
            name=MAP_NAME,
            height=470,
            sizing_mode="stretch_width",
            match_aspect=True,
            tools="pan,wheel_zoom,box_zoom,reset,save",
            toolbar_location="above",
            x_axis_location=None,
            y_axis_location=None,
            background_fill_color="#eaf2f8",
            border_fill_color="#ffffff",
            outline_line_color=None,
            min_border_left=10,
            min_border_right=10,
        )
        fig.grid.visible = False
        fig.toolbar.logo = None
        fig.title.text_font_size = "15px"
        states = fig.patches(
            "xs",
            "ys",
            source=ColumnDataSource(conus_states()),
            fill_color="#fbfbf8",
            line_color="#9aa5b1",
            line_width=0.8,
        )
        # The view spans CONUS whatever the basins are.
        fig.x_range = DataRange1d(renderers=[states], range_padding=0.02)
        fig.y_range = DataRange1d(renderers=[states], range_padding=0.04)

        mapper = nse_color_mapper()
        color = {"field": "NSE", "transform": mapper}
        points = fig.scatter(
            "x", "y", source=self.source, size=11, fill_color=color,
            line_color="#111827", line_width=0.8, name="hydrolens-basin-points",
        )
        points.selection_glyph = Scatter(
            size=17, fill_color=color, line_color="#000000", line_width=2.5
        )
        points.nonselection_glyph = Scatter(
            size=11, fill_color=color, line_color="#111827", line_width=0.8, fill_alpha=0.85
        )
        hover = HoverTool(
            renderers=[points],
            tooltips=[
                ("gauge", "@basin"),
                ("name", "@gauge_name"),
                ("NSE", "@NSE{0.00}"),
                ("KGE", "@KGE{0.00}"),
                ("lat, lon", "@gauge_lat{0.00}, @gauge_lon{0.00}"),
            ],
        )
        fig.add_tools(hover, TapTool(renderers=[points]))
        fig.add_layout(
            ColorBar(
                color_mapper=mapper,
                ticker=FixedTicker(ticks=[-0.5, 0.0, 0.25, 0.5, 0.75, 1.0]),
                title="NSE (test)",
                title_text_font_style="normal",
                width=12,
                padding=6,
                major_label_text_font_size="11px",
            ),
            "right",
        )
        return fig

    def _show_run(self, *_events) -> None:
        metrics = self.state.metrics
        self.source.data = basin_columns(metrics)
        info = self.state.info
        if info is None:
            self.figure.title.text = "Basins (no run selected)"
        elif metrics is None:
            self.figure.title.text = f"Basins of {info.run_id} (not evaluated yet)"
        else:
            self.figure.title.text = (
                f"Test NSE of {len(metrics)} basins · run {info.run_id} · click a basin"
            )
        self._show_basin()

    def _show_basin(self, *_events) -> None:
        basins = self.source.data["basin"]
        wanted = [basins.index(self.state.basin)] if self.state.basin in basins else []
        if list(self.source.selected.indices) != wanted:
            self.source.selected.indices = wanted

    def _on_indices(self, _attr, _old, new) -> None:
        if not new:
            # A click beside the points: keep the selected basin highlighted.
            self._show_basin()
            return
        # Overlapping points: take the one drawn on top (the last in the source).
        self.state.basin = self.source.data["basin"][max(new)]

    def __panel__(self):
        return self._pane


class HydrographView(Viewer):
    """Observed and simulated streamflow (mm/d) of the selected basin over the test period.

    Attributes:
        source: ColumnDataSource with columns time, Q_obs, Q_sim (the selected basin's series).
        figure: the Bokeh figure (named ``hydrolens-hydrograph``); its title names gauge id,
            gauge name, NSE and KGE.
    """

    state = param.ClassSelector(class_=AppState, doc="The explorer state.")

    def __init__(self, state: AppState, **params):
        super().__init__(state=state, **params)
        self.source = ColumnDataSource(
            data={"time": [], "Q_obs": [], "Q_sim": []}, name=SERIES_NAME
        )
        self.figure = self._make_figure()
        # Visibility is toggled on a wrapper: toggling it on the Bokeh pane itself fails in a
        # served session (Panel 1.9 copies the figure's stylesheets back and rejects them).
        self._plot = pn.Column(
            pn.pane.Bokeh(self.figure, sizing_mode="stretch_width"), sizing_mode="stretch_width"
        )
        self._placeholder = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=[CSS])
        self._layout = pn.Column(self._placeholder, self._plot, sizing_mode="stretch_width")
        state.param.watch(self._show_basin, ["basin", "metrics"])
        self._show_basin()

    def _make_figure(self):
        fig = figure(
            name=HYDROGRAPH_NAME,
            height=330,
            sizing_mode="stretch_width",
            x_axis_type="datetime",
            y_range=DataRange1d(start=0, range_padding=0.05),
            tools="xpan,xwheel_zoom,box_zoom,reset,save",
            toolbar_location="above",
            y_axis_label="Q (mm/d)",
            border_fill_color="#ffffff",
            outline_line_color=None,
        )
        fig.toolbar.logo = None
        fig.title.text_font_size = "15px"
        obs = fig.line("time", "Q_obs", source=self.source, color=OBS_COLOR, line_width=1.4)
        sim = fig.line(
            "time", "Q_sim", source=self.source, color=SIM_COLOR, line_width=1.4, alpha=0.9
        )
        fig.add_tools(
            HoverTool(
                renderers=[obs],
                mode="vline",
                tooltips=[
                    ("date", "@time{%F}"),
                    ("Q obs", "@Q_obs{0.00} mm/d"),
                    ("Q sim", "@Q_sim{0.00} mm/d"),
                ],
                formatters={"@time": "datetime"},
            )
        )
        legend = Legend(
            items=[("observed Q", [obs]), ("simulated Q", [sim])],
            orientation="horizontal",
            click_policy="hide",
            border_line_color=None,
            margin=0,
            padding=4,
        )
        fig.add_layout(legend, "above")
        fig.xgrid.grid_line_color = None
        return fig

    def _show_basin(self, *_events) -> None:
        row = self.state.basin_row()
        series = self.state.series() if row is not None else None
        self._plot.visible = series is not None
        self._placeholder.visible = series is None
        if series is None:
            self.source.data = {"time": [], "Q_obs": [], "Q_sim": []}
            self.figure.title.text = (
                "Hydrograph: select a basin on the map"
                if self.state.metrics is not None
                else "Hydrograph: no evaluated run selected"
            )
            self._placeholder.object = (
                f'<div class="hl-placeholder"><b>{html.escape(self.figure.title.text)}</b>'
                "<br>Observed and simulated streamflow Q (mm/d) over the test period appear "
                "here once a run is evaluated and a basin is selected.</div>"
            )
            return
        self.source.data = {
            "time": series.index.to_numpy(),
            "Q_obs": series["Q_obs"].to_numpy(float),
            "Q_sim": series["Q_sim"].to_numpy(float),
        }
        self.figure.title.text = (
            f"{self.state.basin} · {row['gauge_name']} — "
            f"NSE {fmt(float(row['NSE']))} · KGE {fmt(float(row['KGE']))} (test period)"
        )

    def __panel__(self):
        return self._layout


class RunPanel(Viewer):
    """Sidebar: the run selector, a refresh button, the run summary and the basin selector."""

    state = param.ClassSelector(class_=AppState, doc="The explorer state.")

    def __init__(self, state: AppState, **params):
        super().__init__(state=state, **params)
        self.run_select = pn.widgets.Select(label="Run", sizing_mode="stretch_width")
        self.refresh_button = pn.widgets.Button(
            label="↻ Refresh runs", color="light", sizing_mode="stretch_width"
        )
        self.basin_select = pn.widgets.Select(label="Basin", sizing_mode="stretch_width")
        self.summary = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=[CSS])
        #: runs whose files cannot be read, named with the reason (they never hide the others)
        self.corrupt = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=[CSS], visible=False)
        self._layout = pn.Column(
            self.run_select,
            self.refresh_button,
            self.summary,
            self.basin_select,
            self.corrupt,
            sizing_mode="stretch_width",
        )
        self._show_runs()
        self._show_basins()
        self._show_summary()
        self.run_select.param.watch(self._pick_run, "value")
        self.basin_select.param.watch(self._pick_basin, "value")
        self.refresh_button.on_click(lambda _event: state.refresh())
        state.param.watch(self._show_runs, ["runs", "run_id"])
        state.param.watch(self._show_basins, ["metrics", "basin"])
        state.param.watch(self._show_summary, ["info", "status"])

    def _show_runs(self, *_events) -> None:
        options = {run_label(info): info.run_id for info in readable(self.state.runs)}
        self.run_select.param.update(
            options=options, value=self.state.run_id, disabled=not options
        )
        broken = self.state.corrupt
        self.corrupt.visible = bool(broken)
        items = "".join(  # paths shown relative to the run directory
            f"<li><b>{html.escape(info.run_id)}</b>: "
            f"{html.escape((info.problem or '').replace(f'{info.path}{os.sep}', ''))}</li>"
            for info in broken
        )
        self.corrupt.object = (
            f'<div class="hl-corrupt"><b>{len(broken)} run(s) cannot be read</b> and are not listed '
            f"above:<ul>{items}</ul></div>" if broken else ""
        )

    def _pick_run(self, event) -> None:
        if event.new is not None:
            self.state.run_id = event.new

    def _show_basins(self, *_events) -> None:
        metrics = self.state.metrics
        options = {}
        if metrics is not None:
            names = metrics["gauge_name"].fillna("").astype(str)
            options = {f"{b} · {names[b]}": str(b) for b in metrics.index}
        self.basin_select.param.update(
            options=options, value=self.state.basin, disabled=not options
        )

    def _pick_basin(self, event) -> None:
        if event.new is not None:
            self.state.basin = event.new

    def _show_summary(self, *_events) -> None:
        info, status = self.state.info, self.state.status
        if info is None:
            self.summary.object = (
                '<div class="hl-summary"><p class="hl-muted">No run selected.</p></div>'
            )
            return
        state = status.get("state", info.state)
        epoch = status.get("epoch", info.epochs_done)
        epochs = status.get("epochs", info.epochs)
        message = status.get("message") or ""
        rows = [
            ("Run", info.run_id),
            ("Variant", info.variant),
            ("Preset", info.preset or "—"),
            ("Epochs", f"{epoch} / {epochs}"),
            ("Created", info.created),
            ("Updated", status.get("updated", "—")),
        ]
        table = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
        )
        tiles = "".join(
            f'<div class="hl-tile"><div class="hl-tile-value">{v}</div>'
            f'<div class="hl-tile-label">{k}</div></div>'
            for k, v in (
                ("median NSE", fmt(info.median_nse)),
                ("median KGE", fmt(info.median_kge)),
                ("basins", info.n_basins),
            )
        )
        self.summary.object = (
            '<div class="hl-summary">'
            f'<div class="hl-status"><span class="hl-badge hl-badge-{html.escape(state)}">'
            f"{html.escape(state)}</span>"
            f'<span class="hl-muted">{html.escape(str(message))}</span></div>'
            f'<div class="hl-tiles">{tiles}</div>'
            f'<table class="hl-table">{table}</table>'
            "</div>"
        )

    def __panel__(self):
        return self._layout
