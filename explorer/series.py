"""Inside a run, for one site: linked time-series panels and the dynamic-parameter traces.

`SeriesView` draws the panels the run itself declares (outputs.nc attribute ``panels``, e.g.
for HBV: P with T on a right axis; Q_obs vs Q_sim; Q0/Q1/Q2 stacked; the storages SWE, SM, SUZ,
SLZ; ET vs PET), with units from the file, one shared x-range (zoom one, all follow), a log-scale toggle for
streamflow and a CSV download of the site's series. `TraceView` shows the dynamic parameters
(βᵗ, γᵗ) through time in the manner of Feng et al. (2022, Fig. 4), with soil moisture and
precipitation for context and the static value of a static run for comparison.
"""

from __future__ import annotations

import html
import io
from functools import partial

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.layouts import column as bokeh_column
from bokeh.models import (BasicTicker, BasicTickFormatter, ColumnDataSource, DataRange1d, DatetimeAxis,
                          DatetimeTicker, DatetimeTickFormatter, Grid, HoverTool, Legend, LinearAxis,
                          LogAxis, LogScale, LogTicker, LogTickFormatter, Range1d, Span)
from bokeh.palettes import Category10_10
from bokeh.plotting import figure
from panel.viewable import Viewer

from explorer.style import html_pane
from explorer.state import AppState, escape_html as escape, fmt

SERIES_NAME = "hydrolens-series"
TRACES_NAME = "hydrolens-traces"
HYDROGRAPH_NAME = "hydrolens-hydrograph"
DAY_MS = 86_400_000

#: Colours of well-known series (others cycle through Category10).
COLORS = {"Q_obs": "#1f2937", "Q_sim": "#2563eb", "P": "#3b82f6", "T": "#dc2626", "PET": "#9ca3af",
          "ET": "#16a34a", "Q0": "#f59e0b", "Q1": "#10b981", "Q2": "#6366f1", "SWE": "#0ea5e9",
          "SM": "#a16207", "SUZ": "#7c3aed", "SLZ": "#0f766e", "BETA": "#b91c1c", "GAMMA": "#7e22ce"}
LABELS = {"Q_obs": "observed Q", "Q_sim": "simulated Q"}


def color_of(name: str, i: int) -> str:
    return COLORS.get(name, Category10_10[i % 10])


def units_label(units: str) -> str:
    """Axis text for a UDUNITS string: ``mm d-1`` -> ``mm/d``; ``1`` -> dimensionless."""
    return {"mm d-1": "mm/d", "degC": "°C", "1": "–", "d-1": "1/d", "": ""}.get(units, units)


class AxisKit:
    """Tickers and tick formatters shared by the axes of a view's figures.

    A datetime axis built by ``figure(x_axis_type="datetime")`` brings 18 models of its own (a
    DatetimeTicker with 13 sub-tickers, three formatters): with one kit per view, a page of nine
    time-series panels carries one set instead of nine, which halves the models the page sends
    and lays out. Tickers and formatters hold no per-axis state, so sharing them is safe.
    """

    def __init__(self):
        self.time_ticker = DatetimeTicker()
        self.time_format = DatetimeTickFormatter()
        self.ticker = BasicTicker()
        self.format = BasicTickFormatter()
        self.log_ticker = LogTicker()
        self.log_format = LogTickFormatter()

    def linear_axis(self, label: str = "", **kw) -> LinearAxis:
        return LinearAxis(ticker=self.ticker, formatter=self.format, axis_label=label, **kw)


def _figure(name: str, title: str, x_range, height: int, y_label: str, log: bool = False,
            kit: AxisKit | None = None):
    """A time-series panel: datetime x (the shared `x_range`), linear or log y labelled
    `y_label`, x-only pan and wheel zoom, box zoom, reset and PNG save; axes from `kit`."""
    kit = kit or AxisKit()
    fig = figure(name=name, height=height, sizing_mode="stretch_width", x_axis_type=None,
                 y_axis_type=None, x_range=x_range,
                 tools="xpan,xwheel_zoom,box_zoom,reset,save", toolbar_location="right",
                 active_scroll="xwheel_zoom", title=title,
                 border_fill_color="#ffffff", outline_line_color=None, min_border_left=60)
    fig.add_layout(DatetimeAxis(ticker=kit.time_ticker, formatter=kit.time_format), "below")
    if log:
        fig.y_scale = LogScale()
        y_axis = LogAxis(ticker=kit.log_ticker, formatter=kit.log_format, axis_label=y_label)
    else:
        y_axis = kit.linear_axis(y_label)
    fig.add_layout(y_axis, "left")
    fig.add_layout(Grid(dimension=1, ticker=y_axis.ticker))
    fig.toolbar.logo = None
    fig.title.text_font_size = "13px"
    return fig


class SeriesView(Viewer):
    """The selected site's series in linked panels, as the run declares them.

    Attributes:
        source: ColumnDataSource (named ``hydrolens-series``): ``time`` and one column per
            (site, time) variable of the run (forcing, states, fluxes, Q_obs, dynamic
            parameters), in the file's units.
        x_range: the shared x-range (the test period by default; ``state.period`` follows it).
        figures: name -> Bokeh figure; the streamflow panel is ``hydrolens-hydrograph``.
    """

    state = param.ClassSelector(class_=AppState, doc="The explorer state.")

    def __init__(self, state: AppState, x_range: Range1d | None = None, **params):
        super().__init__(state=state, **params)
        self.source = ColumnDataSource({"time": []}, name=SERIES_NAME)
        self.x_range = x_range or Range1d(start=0, end=1, name="hydrolens-x-range")
        self.figures: dict[str, object] = {}
        self.kit = AxisKit()
        self._layout_key = None
        self._column = None
        self._pending: list = []  # panels held back from the first paint (`_rebuild`)
        self.title = html_pane(sizing_mode="stretch_width")
        self.placeholder = html_pane(sizing_mode="stretch_width")
        self.log_toggle = pn.widgets.Toggle(label="log scale Q", value=state.log_q, width=110,
                                            color="light")
        self.download = pn.widgets.FileDownload(callback=self._csv, filename="series.csv",
                                                label="⬇ CSV of this site", color="light",
                                                width=170, embed=False)
        self.plots = pn.Column(sizing_mode="stretch_width")
        self._layout = pn.Column(
            pn.Row(self.title, self.log_toggle, self.download, sizing_mode="stretch_width"),
            self.placeholder, self.plots, sizing_mode="stretch_width")
        self.log_toggle.link(state, value="log_q", bidirectional=True)
        state.param.watch(self._rebuild, ["panels", "variables"])
        state.param.watch(self._show_basin, ["site", "metrics"])
        state.param.watch(self._show_log, "log_q")
        state.param.watch(self._show_period, "period")
        self.x_range.on_change("end", self._range_moved)
        self._rebuild()

    # -- layout --------------------------------------------------------------------------------
    def _rebuild(self, *_events) -> None:
        key = tuple((p["title"], tuple(p["variables"])) for p in self.state.panels)
        if key != self._layout_key:
            self._layout_key = key
            self.figures = {}
            # panels with a log-scale twin: panel spec -> {False: linear figure, True: log one};
            # the log twin is built the first time it is asked for (`_show_log`)
            self._scaled: list[tuple[dict, dict]] = []
            panels = list(self.state.panels)
            # Progressive first paint: while a served page is loading, only the panels down to
            # the streamflow panel (what the first screen shows) are built and travel with the
            # page; the panels below follow once the browser has drawn it (Panel's onload =
            # BokehJS's "document idle"). That takes ~0.4 s off page ready (bench_app.py).
            cut = len(panels)
            if pn.state.curdoc is not None and not pn.state.loaded and len(panels) > 2:
                q = [i for i, p in enumerate(panels) if "Q_sim" in p["variables"]]
                cut = (q[0] if q else 1) + 1
            figs = self._panel_figures(panels[:cut])
            self._pending = panels[cut:]
            # one Bokeh layout in one pane: one document root instead of one per panel
            self._column = bokeh_column(*figs, sizing_mode="stretch_width") if figs else None
            # every edit of the new figures (log twins, titles, data) before they reach the page:
            # an edit in the same tick as their arrival can reach the browser first ("reference
            # pNNNN isn't known")
            self._show_log()
            self._show_basin()
            self.plots.objects = [pn.pane.Bokeh(self._column, sizing_mode="stretch_width")] if figs else []
            if self._pending:
                pn.state.onload(partial(self._attach_pending, self._column))
            return
        self._show_basin()

    def _panel_figures(self, panels: list[dict]) -> list:
        """The linear-scale figures of `panels` (noting those with a log-scale twin)."""
        figs = []
        for p in panels:
            fig = self._panel_figure(p, False)
            figs.append(fig)
            if p.get("log"):
                self._scaled.append((p, {False: fig}))
        return figs

    def _attach_pending(self, column) -> None:
        """Build the panels held back from the first paint (`_rebuild`) and append them to
        `column`, unless a rebuild has replaced it since."""
        if column is not self._column or not self._pending:
            return
        figs = self._panel_figures(self._pending)
        self._pending = []
        self._show_log(children=list(self._column.children) + figs)

    def _panel_figure(self, p: dict, log: bool):
        """One panel of the run's ``panels`` spec: its ``variables`` drawn in its ``style`` on the
        left axis (those in ``markers`` as dots: sparse observations), except those listed in ``right``, drawn as lines on a right axis of their own
        units and range (e.g. T in °C beside P in mm/d)."""
        names = p["variables"]
        right = [n for n in p.get("right", []) if n in names]
        left = [n for n in names if n not in right] or names
        right = [n for n in right if n not in left]
        unit = {n: self.state.variable(n).units if self.state.variable(n) else "" for n in names}

        def label(ns):
            us = list(dict.fromkeys(units_label(unit[n]) for n in ns))
            return " / ".join(us)

        is_q = "Q_sim" in names
        name = (HYDROGRAPH_NAME + ("-log" if log else "")) if is_q else f"hydrolens-panel-{names[0]}"
        fig = _figure(name, p["title"], self.x_range, 240 if is_q else 170, label(left), log, self.kit)
        items, renderers = [], []
        src = self.source
        if p["style"] == "stacked":
            rs = fig.varea_stack(stackers=left, x="time", source=src,
                                 color=[color_of(n, i) for i, n in enumerate(left)], alpha=0.8)
            items = [(n, [r]) for n, r in zip(left, rs)]
            renderers = list(rs)
        elif p["style"] == "bars":
            # daily totals as one stepped area (a bar per day without a glyph per day: 5479 bars
            # of a 15-year period cost ~8x the paint time of the other panels)
            for i, n in enumerate(left):
                r = fig.varea_step(x="time", y1=0, y2=n, step_mode="center", source=src,
                                   fill_color=color_of(n, i), fill_alpha=0.85)
                items.append((n, [r]))
                renderers.append(r)
            fig.y_range.start = 0
        else:
            dots = set(p.get("markers", []))   # sparse observations (SMAP: ~42 % of days)
            for i, n in enumerate(left):
                if n in dots:
                    r = fig.scatter("time", n, source=src, color=color_of(n, i), size=4, alpha=0.9,
                                    name=f"dots-{n}")
                else:
                    r = fig.line("time", n, source=src, color=color_of(n, i), line_width=1.3,
                                 alpha=0.9, name=f"line-{n}")
                items.append((LABELS.get(n, n), [r]))
                renderers.append(r)
        fig.y_range.renderers = list(renderers)  # the left axis fits its own variables only
        if right:
            fig.extra_y_ranges = {"right": DataRange1d()}
            fig.add_layout(self.kit.linear_axis(label(right), y_range_name="right"), "right")
            drawn = []
            for i, n in enumerate(right, start=len(left)):
                # context on the right axis: thin and light, so the left variables stay in front
                r = fig.line("time", n, source=src, color=color_of(n, i), line_width=0.8,
                             alpha=0.45, y_range_name="right", name=f"line-{n}")
                items.append((f"{LABELS.get(n, n)} (right)", [r]))
                drawn.append(r)
            fig.extra_y_ranges["right"].renderers = drawn
            renderers += drawn
        fig.add_tools(HoverTool(renderers=renderers[:1], mode="vline", formatters={"@time": "datetime"},
                                tooltips=[("date", "@time{%F}")] + [
                                    (n, f"@{{{n}}}{{0.00}} {units_label(unit[n])}") for n in left + right]))
        fig.add_layout(Legend(items=items, orientation="horizontal", click_policy="hide",
                              border_line_color=None, margin=0, padding=2, label_text_font_size="11px"),
                       "above")
        self.figures[name] = fig
        return fig

    # -- data ----------------------------------------------------------------------------------
    def _show_basin(self, *_events) -> None:
        state = self.state
        series = state.series() if state.basin_row() is not None else None
        self.plots.visible = series is not None
        self.placeholder.visible = series is None
        if series is None:
            self.source.data = {"time": []}
            why = ("select a site of this run on the map" if state.metrics is not None
                   else "no evaluated run selected")
            self.title.object = ""
            self.placeholder.object = (
                f'<div class="hl-placeholder"><b>Time series: {why}</b><br>Forcing, streamflow '
                "(observed vs simulated), runoff components, storages and evapotranspiration of "
                "one site over the test period appear here.</div>")
            return
        used = {n for p in state.panels for n in p["variables"]}
        data = {"time": series.index.to_numpy()}
        for c in series.columns:
            if c in used:  # only what the panels draw travels to the browser (the CSV has all)
                data[c] = series[c].to_numpy(np.float32)
        self.source.data = data
        row = state.basin_row()
        self.title.object = (
            f'<div class="hl-view-title"><b>{escape(state.site)}</b> · {escape(row.get("gauge_name", ""))}'
            f' — NSE {fmt(float(row["NSE"]))} · KGE {fmt(float(row["KGE"]))} (test period)</div>')
        self.download.filename = f"{state.run_id}_{state.site}.csv"
        q_title = (f"{state.site} · {row.get('gauge_name', '')} — NSE {fmt(float(row['NSE']))} · "
                   f"KGE {fmt(float(row['KGE']))} (test period)")
        for name, fig in self.figures.items():
            if name.startswith(HYDROGRAPH_NAME):
                fig.title.text = q_title
        self._show_period()

    def _show_period(self, *_events) -> None:
        t = self.source.data.get("time")
        if t is None or len(t) == 0:
            return
        lo, hi = pd.Timestamp(t[0]), pd.Timestamp(t[-1])
        rng = self.state.period_range()
        if rng is not None:
            lo, hi = max(lo, rng[0]), min(hi, rng[1])
            if hi <= lo:
                lo, hi = pd.Timestamp(t[0]), pd.Timestamp(t[-1])
        start, end = lo.value // 10**6, hi.value // 10**6
        if (self.x_range.start, self.x_range.end) != (start, end):
            self._moving = True
            try:
                self.x_range.update(start=start, end=end)
            finally:
                self._moving = False

    def _range_moved(self, _attr, _old, _new) -> None:
        if getattr(self, "_moving", False):
            return
        try:
            lo = pd.Timestamp(self.x_range.start, unit="ms").date()
            hi = pd.Timestamp(self.x_range.end, unit="ms").date()
        except (TypeError, ValueError, OverflowError):
            return
        t = self.source.data.get("time")
        if t is None or len(t) == 0:
            return
        full = (pd.Timestamp(t[0]).date(), pd.Timestamp(t[-1]).date())
        self.state.period = "" if (lo, hi) == full else f"{lo}..{hi}"

    def _show_log(self, *_events, children: list | None = None) -> None:
        """Show the linear or the log-scale twin of each panel that has one (``state.log_q``),
        building a twin the first time it is asked for. `children`: the figures the column is to
        hold (default: what it holds); new figures get their title and visibility before the
        column takes them, so no edit of a figure reaches the browser before the figure does."""
        if self._column is None:
            return
        log = self.state.log_q
        kids = list(self._column.children) if children is None else list(children)
        for p, twins in self._scaled:
            if log not in twins:  # first use of the log scale: build the twin beside the other
                twin = twins[False]
                twins[True] = fig = self._panel_figure(p, True)
                if self.source.data.get("time") is not None and twin.title.text:
                    fig.title.text = twin.title.text
                kids.insert(kids.index(twin) + 1, fig)
            for is_log, fig in twins.items():
                fig.visible = is_log == log
        if kids != list(self._column.children):
            self._column.children = kids

    def _csv(self):
        """The site's series as CSV (time, one column per variable; units in the header)."""
        series = self.state.series()
        buf = io.StringIO()
        if series is not None:
            units = {v.name: v.units for v in self.state.variables}
            out = series.rename(columns=lambda c: f"{c} [{units.get(c, '')}]" if units.get(c) else c)
            buf.write(f"# HydroLens run {self.state.run_id}, site {self.state.site}\n")
            out.to_csv(buf, index_label="time", float_format="%.5g")
        return io.BytesIO(buf.getvalue().encode("utf-8"))

    def __panel__(self):
        return self._layout


class TraceView(Viewer):
    """Dynamic parameters through time (Feng et al. 2022, Fig. 4) for the selected site.

    One panel per dynamic parameter of the run (its daily value, the component mean, in the
    file's units, with the ParamSpec bounds as the y-range), the static value of a reference run
    (a run where that parameter is static) as a dashed line, and soil moisture with
    precipitation for context; all share the series x-range.

    Attributes:
        source: ColumnDataSource (``hydrolens-traces``): time, each dynamic parameter, SM, P.
        reference: Select of the run whose static values are drawn for comparison.
    """

    state = param.ClassSelector(class_=AppState, doc="The explorer state.")
    shown = param.Boolean(default=True, doc=(
        "Whether the view is on screen. While False (a hidden tab) run and site changes are only "
        "noted; the figures and data are brought up to date when it becomes True."))

    def __init__(self, state: AppState, x_range: Range1d | None = None, **params):
        super().__init__(state=state, **params)
        self._stale = False
        self.kit = AxisKit()
        self.x_range = x_range or Range1d(start=0, end=1)
        self.source = ColumnDataSource({"time": []}, name=TRACES_NAME)
        self.reference = pn.widgets.Select(label="Static reference run", width=360)
        self.note = html_pane(sizing_mode="stretch_width")
        self.plots = pn.Column(sizing_mode="stretch_width")
        self.spans: dict[str, Span] = {}
        self._key = None
        self._layout = pn.Column(pn.Row(self.note, self.reference, sizing_mode="stretch_width"),
                                 self.plots, sizing_mode="stretch_width")
        state.param.watch(self._rebuild, ["variables", "runs"])
        state.param.watch(self._show_basin, "site")
        self.reference.param.watch(self._show_reference, "value")
        self.param.watch(self._show, "shown")
        self._rebuild()

    def _deferred(self) -> bool:
        """True (and the view marked stale) when hidden: the caller skips its work."""
        if not self.shown:
            self._stale = True
        return not self.shown

    def _show(self, *_events) -> None:
        if self.shown and self._stale:
            self._stale = False
            self._key = None
            self._rebuild()

    def dynamic_names(self) -> list[str]:
        """The run's dynamic parameters (from parameters.nc attributes)."""
        return [v.name for v in self.state.variables
                if v.kind == "parameter" and v.parameter_type == "dynamic"]

    def _reference_options(self, names: list[str]) -> dict[str, str]:
        opts = {"none": ""}
        for info in self.state.runs:
            if info.problem or info.run_id == self.state.run_id or info.state != "done":
                continue
            try:
                run = self.state.store.get(info.run_id)
                static = {v.name for v in run.variables()
                          if v.kind == "parameter" and v.parameter_type == "static"}
            except Exception:  # noqa: BLE001 - unreadable or unevaluated: not a reference
                continue
            if static & set(names):
                opts[f"{info.run_id} · {info.variant}"] = info.run_id
        return opts

    def _rebuild(self, *_events) -> None:
        if self._deferred():
            return
        names = self.dynamic_names()
        key = (self.state.run_id, tuple(names), len(self.state.runs))
        if key == self._key:
            return
        self._key = key
        self.spans = {}
        if not names:
            self.plots.objects = []
            self.reference.visible = False
            static = [v.name for v in self.state.variables if v.kind == "parameter"]
            self.note.object = (
                '<div class="hl-placeholder"><b>No dynamic parameters in this run.</b> '
                f"Its parameters are static ({escape(', '.join(static) or 'none')}); map them "
                "with the map quantity selector. Train δn(βᵗ), δn(γᵗ) or δn(γᵗ,βᵗ) for βᵗ/γᵗ traces "
                "(Feng et al. 2022, Fig. 4).</div>" if self.state.metrics is not None else "")
            return
        self.reference.visible = True
        # the site's data first: figures that reach the page before their columns draw nothing
        # and warn ("nonexistent field", "could not set initial ranges")
        series = self._load_site()
        opts = self._reference_options(names)
        self.reference.options = opts
        if self.reference.value not in opts.values():
            self.reference.value = next(iter([v for v in opts.values() if v]), "")
        figs = []
        for i, n in enumerate(names):
            v = self.state.variable(n)
            fig = _figure(f"hydrolens-trace-{n}", f"{n}ᵗ: {v.long_name}", self.x_range, 190,
                          f"{n} ({units_label(v.units)})", kit=self.kit)
            # the axis follows the data (βᵗ moves within a small part of its bounds); the
            # ParamSpec bounds are in the legend
            fig.y_range.range_padding = 0.3
            bounds = f", bounds {v.bounds[0]:g}–{v.bounds[1]:g}" if v.bounds else ""
            r = fig.line("time", n, source=self.source, color=color_of(n, i), line_width=1.4,
                         legend_label=f"{n}ᵗ (daily, mean of the components{bounds})")
            span = Span(dimension="width", location=float("nan"), line_dash="dashed",
                        line_color="#111827", line_width=1.5)
            fig.add_layout(span)
            self.spans[n] = span
            fig.add_tools(HoverTool(renderers=[r], mode="vline", formatters={"@time": "datetime"},
                                    tooltips=[("date", "@time{%F}"), (n, f"@{n}{{0.000}}")]))
            fig.legend.location = "top_left"
            fig.legend.label_text_font_size = "11px"
            figs.append(fig)
        ctx = _figure("hydrolens-trace-context", "Context: soil moisture SM and precipitation P",
                      self.x_range, 190, "SM (mm)", kit=self.kit)
        have = {v.name for v in self.state.variables}
        if "SM" in have:
            ctx.line("time", "SM", source=self.source, color=color_of("SM", 0), line_width=1.3,
                     legend_label="SM (mm)")
        if "P" in have:
            ctx.extra_y_ranges = {"p": Range1d(0, 1)}
            ctx.add_layout(self.kit.linear_axis("P (mm/d)", y_range_name="p"), "right")
            ctx.vbar(x="time", top="P", width=DAY_MS * 0.9, source=self.source, y_range_name="p",
                     color=color_of("P", 0), alpha=0.5, legend_label="P (mm/d)")
        ctx.legend.location = "top_left"
        ctx.legend.label_text_font_size = "11px"
        self._ctx = ctx
        figs.append(ctx)
        self.figs = figs
        # the P axis, titles and reference lines before the figures reach the page (see
        # SeriesView._rebuild)
        if series is not None:
            self._decorate(series)
        self.plots.objects = [pn.pane.Bokeh(bokeh_column(*figs, sizing_mode="stretch_width"),
                                            sizing_mode="stretch_width")]

    def _show_basin(self, *_events) -> None:
        if self._deferred():
            return
        series = self._load_site()
        if series is not None:
            self._decorate(series)

    def _load_site(self) -> pd.DataFrame | None:
        """Put the shown site's dynamic parameters, SM and P in `source`; the frame, or None
        (no dynamic parameters, or no site: `source` emptied, the note says why)."""
        names = self.dynamic_names()
        if not names:
            self.source.data = {"time": []}
            return None
        have = {v.name for v in self.state.variables}
        cols = names + [c for c in ("SM", "P") if c in have]
        series = self.state.series(names=cols)
        if series is None:
            self.source.data = {"time": []}
            self.note.object = '<div class="hl-muted">Select a site of this run on the map.</div>'
            return None
        self.source.data = {"time": series.index.to_numpy(),
                            **{c: series[c].to_numpy(np.float32) for c in series}}
        return series

    def _decorate(self, series: pd.DataFrame) -> None:
        """The P axis, the note (daily ranges) and the reference run's static values for the
        site whose ``series`` (from `_load_site`) is shown."""
        names = self.dynamic_names()
        if "P" in series and hasattr(self, "_ctx"):
            pmax = float(np.nanmax(series["P"])) if len(series) else 1.0
            self._ctx.extra_y_ranges["p"].update(start=pmax * 3 if pmax > 0 else 1, end=0)  # P from the top
        rng = "; ".join(f"{n}ᵗ {np.nanmin(series[n]):.2f}–{np.nanmax(series[n]):.2f}" for n in names)
        self.note.object = (f'<div class="hl-view-title"><b>{escape(self.state.site)}</b>: daily '
                            f"{escape(rng)} over the test period</div>")
        self._show_reference()

    def _show_reference(self, *_events) -> None:
        ref = self.reference.value
        values = {}
        if ref:
            try:
                table = self.state.store.get(ref).site_parameters()
                if self.state.site in table.index:
                    values = table.loc[self.state.site].to_dict()
            except Exception:  # noqa: BLE001
                values = {}
        for n, span in self.spans.items():
            v = values.get(n)
            span.location = float(v) if v is not None and np.isfinite(v) else float("nan")
            fig = next((f for f in getattr(self, "figs", []) if f.name == f"hydrolens-trace-{n}"), None)
            if fig is not None:
                suffix = (f" — dashed: static {n} of {ref} = {v:.2f}" if v is not None and np.isfinite(v)
                          else "")
                fig.title.text = f"{n}ᵗ: {html.unescape(self.state.variable(n).long_name)}{suffix}"

    def __panel__(self):
        return self._layout
