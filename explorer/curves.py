"""Learning curves of the selected run: what training did, epoch by epoch, while it runs.

The training loss (the loss the optimiser minimised: eq. 1-2 of Feng et al. 2022 for the δ
models, the masked RMSE plus the range-boundary loss of Li & Lu 2023 for the parameter
learners), the validation loss and the validation sites' median NSE, against optimiser updates,
read from the run's ``train_log.csv`` through :meth:`core.runs.Run.train_log`. While the run
trains the view follows its status (polled by :class:`explorer.state.AppState`) and redraws when
an epoch has been logged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, FixedTicker, HoverTool, LinearAxis, LinearScale, Range1d
from bokeh.plotting import figure
from panel.viewable import Viewer

from explorer.state import AppState, escape_html as escape, fmt
from explorer.style import html_pane

#: Name of the curves' ColumnDataSource in the Bokeh document (browser tests read it).
CURVES_NAME = "hydrolens-curves"
COLUMNS = ("epoch", "updates", "loss", "val_loss", "val_NSE", "seconds")


def curve_table(log: pd.DataFrame, iters_per_epoch: int | None = None) -> pd.DataFrame:
    """One row per logged epoch with every column of :data:`COLUMNS` (NaN where the run has
    none): ``updates`` from the log, else epoch × ``iters_per_epoch`` (older logs), else the
    epoch number; ``seconds`` is the epoch's wall time in s.

    Args:
        log: a run's training log (:meth:`core.runs.Run.train_log`).
        iters_per_epoch: optimiser updates per epoch (status.json), for logs without ``updates``.
    """
    out = pd.DataFrame({c: pd.to_numeric(log[c], errors="coerce") if c in log else np.nan for c in COLUMNS},
                       index=range(len(log)))
    if "updates" not in log:
        out["updates"] = out["epoch"] * (iters_per_epoch or 1)
    return out.astype(float)


def curve_summary(table: pd.DataFrame, status: dict) -> str:
    """One line on the run's training: epochs and updates done, wall time, updates per second,
    the best validated epoch and why training stopped (HTML)."""
    if table.empty:
        state = status.get("state", "")
        return f"No epoch finished yet{f' (state: {escape(state)})' if state else ''}."
    epochs, updates = int(table["epoch"].iloc[-1]), int(table["updates"].iloc[-1])
    wall = float(np.nansum(table["seconds"]))
    parts = [f"{epochs} epoch(s) of {status.get('epochs', '?')}", f"{updates:,} updates",
             f"wall {_duration(wall)}"]
    if wall > 0:
        parts.append(f"{updates / wall:.2f} updates/s")
    if table["val_NSE"].notna().any():
        best = status.get("best_epoch")
        if best:
            row = table.loc[table["epoch"] == float(best)]
            nse = f", validation median NSE {fmt(float(row['val_NSE'].iloc[0]), 3)}" if len(row) else ""
            parts.append(f"best epoch {int(best)}{nse} (the run's model)")
    if status.get("stopped_early"):
        parts.append("stopped early")
    elif status.get("state") == "training":
        parts.append("training…")
    return " · ".join(parts)


def loss_ticks(lo: float, hi: float) -> list[float]:
    """Ticks of the log loss axis over ``lo..hi`` (> 0): 1-2-5 in every decade, or, where fewer
    than three of those fall inside (a δ model's loss moving between 1.2 and 1.6), five evenly
    spaced values rounded to two significant digits."""
    decades = range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
    ticks = [m * 10.0 ** k for k in decades for m in (1, 2, 5) if lo <= m * 10.0 ** k <= hi]
    if len(ticks) >= 3:
        return ticks
    return sorted({float(f"{v:.2g}") for v in np.linspace(lo, hi, 7)[1:-1]})


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s" if m else f"{s} s"


class LearningCurveView(Viewer):
    """Training loss, validation loss (left axis) and validation median NSE (right axis) of the
    selected run against optimiser updates, updated while the run trains.

    Attributes:
        source: ColumnDataSource (``hydrolens-curves``): the columns of :func:`curve_table`.
        figure: the Bokeh figure; note: the summary line above it (:func:`curve_summary`).
    """

    state = param.ClassSelector(class_=AppState, doc="The explorer state.")
    shown = param.Boolean(default=True, doc=(
        "Whether the view is on screen. While False (a hidden tab) changes are only noted; the "
        "curves are read when it becomes True."))

    def __init__(self, state: AppState, **params):
        super().__init__(state=state, **params)
        self._stale = False
        self._key = None
        self.source = ColumnDataSource({c: [] for c in COLUMNS}, name=CURVES_NAME)
        # loss on a log axis: a first epoch's loss (a range-boundary loss of 5) and a converged
        # 0.06 both stay readable
        fig = figure(height=320, sizing_mode="stretch_width", x_axis_label="optimiser updates",
                     y_axis_label="loss (log scale)", y_axis_type="log",
                     tools="pan,wheel_zoom,box_zoom,reset,save", toolbar_location="above")
        # ranges set from the data here: a data range over an empty or hidden line makes BokehJS
        # warn "could not set initial ranges" (a run before its first epoch, one without validation)
        fig.x_range = Range1d(0, 1)
        fig.y_range = Range1d(0.1, 1)
        self.lines = {
            "loss": fig.line("updates", "loss", source=self.source, color="#1f77b4", line_width=2,
                             legend_label="training loss"),
            "val_loss": fig.line("updates", "val_loss", source=self.source, color="#ff7f0e", line_width=2,
                                 line_dash="dashed", legend_label="validation loss"),
        }
        fig.extra_y_ranges = {"nse": Range1d(-1, 1)}
        fig.extra_y_scales = {"nse": LinearScale()}  # not the loss axis's log scale
        self.nse_axis = LinearAxis(y_range_name="nse", axis_label="validation median NSE")
        fig.add_layout(self.nse_axis, "right")
        self.lines["val_NSE"] = fig.line("updates", "val_NSE", source=self.source, y_range_name="nse",
                                         color="#2ca02c", line_width=2, legend_label="validation median NSE")
        fig.add_tools(HoverTool(tooltips=[("epoch", "@epoch{0}"), ("updates", "@updates{0,0}"),
                                          ("loss", "@loss{0.0000}"), ("validation loss", "@val_loss{0.0000}"),
                                          ("validation NSE", "@val_NSE{0.000}"), ("epoch wall", "@seconds{0.0} s")],
                                renderers=[self.lines["loss"]], mode="vline"))
        fig.yaxis[0].ticker = FixedTicker(ticks=[0.1, 0.2, 0.5, 1.0])  # 1-2-5 in every decade shown
        fig.legend.location = "top_center"
        fig.legend.orientation = "horizontal"
        fig.legend.background_fill_alpha = 0.7
        fig.legend.click_policy = "hide"
        self.figure = fig
        self.note = html_pane(sizing_mode="stretch_width")
        self._layout = pn.Column(self.note, pn.pane.Bokeh(fig, sizing_mode="stretch_width"),
                                 sizing_mode="stretch_width")
        state.param.watch(self._refresh, ["run_id", "status"])
        self.param.watch(self._show, "shown")
        self._refresh()

    def _show(self, *_events) -> None:
        if self.shown and self._stale:
            self._stale = False
            self._refresh()

    def _refresh(self, *_events) -> None:
        """Re-read the log when the run or its logged epoch changed (status polls arrive about
        every second while a run trains; the log grows once per epoch)."""
        if not self.shown:
            self._stale = True
            return
        status = self.state.status or {}
        run_id = self.state.run_id
        key = (run_id, status.get("epoch"), status.get("state"), status.get("best_epoch"))
        if key == self._key:
            return
        self._key = key
        table = pd.DataFrame({c: [] for c in COLUMNS}, dtype=float)
        if run_id is None:
            self.note.object = '<div class="hl-muted">No run selected.</div>'
        else:
            try:
                log = self.state.store.get(run_id).train_log()
                table = curve_table(log, status.get("iters_per_epoch"))
                self.note.object = (f'<div class="hl-curves-note" data-epochs="{len(table)}">'
                                    f'<b>{escape(run_id)}</b>: {curve_summary(table, status)}</div>')
            except Exception as e:  # noqa: BLE001 - a broken log is named, the page stays up
                self.note.object = f'<div class="hl-muted">Run {escape(run_id)}: {escape(e)}</div>'
        # a run without validation shows neither its lines nor their legend entries
        for name in ("val_loss", "val_NSE"):
            self.lines[name].visible = bool(table[name].notna().any())
        for item in self.figure.legend.items:
            item.visible = all(r.visible for r in item.renderers)
        self.nse_axis.visible = self.lines["val_NSE"].visible
        self.source.data = {c: table[c].to_numpy() for c in COLUMNS}
        self._fit_ranges(table)

    def _fit_ranges(self, table: pd.DataFrame) -> None:
        """x: 0 .. the last update; loss axis (log): around the smallest and largest loss shown;
        NSE axis: from below the lowest validation NSE (at least -1) to 1."""
        fig = self.figure
        last = table["updates"].max()  # NaN for an empty log
        fig.x_range.update(start=0, end=float(last) if last > 1 else 1.0)
        losses = table[["loss", "val_loss"]].to_numpy(float)
        losses = losses[np.isfinite(losses) & (losses > 0)]
        lo, hi = (float(losses.min()), float(losses.max())) if losses.size else (0.1, 1.0)
        fig.y_range.update(start=lo / 1.15, end=hi * 1.15)
        fig.yaxis[0].ticker.ticks = loss_ticks(lo / 1.15, hi * 1.15)
        nse = table["val_NSE"].to_numpy(float)
        low = min(-1.0, float(np.nanmin(nse)) - 0.05) if np.isfinite(nse).any() else -1.0
        fig.extra_y_ranges["nse"].update(start=low, end=1.0)

    def __panel__(self):
        return self._layout
