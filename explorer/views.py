"""The explorer's sidebar views: the run panel and the map-quantity picker.

Each view is a `panel.viewable.Viewer` around one :class:`~explorer.state.AppState`; views only
read the state and set its parameters. The map is in :mod:`explorer.mapview`, the time series
and traces in :mod:`explorer.series`, signatures and run comparison in :mod:`explorer.analysis`,
site picking, launching and jobs in :mod:`explorer.workbench`.
"""

from __future__ import annotations

import html
import os

import panel as pn
import param
from panel.viewable import Viewer

from explorer.state import AppState, fmt, on_click, readable, run_label
from explorer.style import html_pane

GROUP_TITLES = {"metric": "Skill (test period)", "signature": "Signatures", "parameter": "Learned parameters"}


class QuantityPicker(Viewer):
    """A select of everything the map can show for the run (metrics, signatures, parameters),
    grouped, with units; bound to ``state.quantity``."""

    state = param.ClassSelector(class_=AppState, doc="The explorer state.")

    def __init__(self, state: AppState, **params):
        super().__init__(state=state, **params)
        self.select = pn.widgets.Select(label="Colour the map by", sizing_mode="stretch_width")
        self._options()
        self.select.param.watch(lambda e: setattr(self.state, "quantity", e.new) if e.new else None,
                                "value")
        state.param.watch(self._options, ["metrics", "params_table", "variables", "quantity"])

    def _options(self, *_events) -> None:
        groups: dict[str, dict[str, str]] = {}
        for key, q in self.state.quantities().items():
            groups.setdefault(GROUP_TITLES.get(q.group, q.group), {})[q.title] = key
        flat = [k for g in groups.values() for k in g.values()]
        value = self.state.resolve_quantity(self.state.quantity)
        value = value if value in flat else (flat[0] if flat else None)
        self.select.param.update(groups=groups or {"": {"—": ""}}, value=value or "",
                                 disabled=not flat)

    def __panel__(self):
        return self.select


class RunPanel(Viewer):
    """Sidebar: the run selector, a refresh button, the run summary and the basin selector."""

    state = param.ClassSelector(class_=AppState, doc="The explorer state.")

    def __init__(self, state: AppState, **params):
        super().__init__(state=state, **params)
        self.run_select = pn.widgets.Select(label="Run", sizing_mode="stretch_width")
        self.refresh_button = pn.widgets.Button(
            label="↻ Refresh runs", color="light", sizing_mode="stretch_width"
        )
        self.basin_select = pn.widgets.Select(label="Site", sizing_mode="stretch_width")
        self.summary = html_pane()
        #: runs whose files cannot be read, named with the reason (they never hide the others)
        self.corrupt = html_pane(sizing_mode="stretch_width", visible=False)
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
        on_click(self.refresh_button, lambda _event: state.refresh())
        state.param.watch(self._show_runs, ["runs", "run_id"])
        state.param.watch(self._show_basins, ["metrics", "site"])
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
            options=options, value=self.state.site, disabled=not options
        )

    def _pick_basin(self, event) -> None:
        if event.new is not None:
            self.state.site = event.new

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
                (("median RMSE", fmt(info.median_rmse)) if info.site_kind == "grid_cell"
                 else ("median NSE", fmt(info.median_nse))),
                (("median NSE", fmt(info.median_nse)) if info.site_kind == "grid_cell"
                 else ("median KGE", fmt(info.median_kge))),
                (info.site_noun, info.n_sites),
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
