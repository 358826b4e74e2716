"""HydroLens explorer: entry point for ``panel serve explorer/app.py``.

The run store is `core.runs.RunStore()`: the ``HYDROLENS_RUNS`` environment variable, else
``./runs``. ``create_app`` builds one session's app (state, views, page); the module-level code
at the bottom only runs under ``panel serve``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# `panel serve explorer/app.py` runs this file as a script: make its checkout importable first.
_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

import panel as pn  # noqa: E402
import param  # noqa: E402

from core.runs import RunStore  # noqa: E402
from explorer.state import AppState  # noqa: E402
from explorer.views import CSS, HydrographView, MapView, RunPanel  # noqa: E402

TITLE = "HydroLens"
ACCENT = "#0f4c75"
#: How often a session re-reads the status of a run that is still training (ms).
POLL_MS = 5000

MAP_CAPTION = (
    "Dots are stream gauges, coloured by the test-period NSE of the selected run "
    "(scale clipped to [−0.5, 1]; darkest red below −0.5, grey when NSE is undefined). "
    "Hover for gauge id, name, NSE and KGE; click a gauge to show its hydrograph."
)

pn.extension(raw_css=[CSS], notifications=False)


class HydroLensApp(param.Parameterized):
    """One session of the explorer: the state, the three views and the page that holds them.

    Attributes:
        state: the :class:`~explorer.state.AppState`.
        map, hydrograph, run_panel: the views.
        template: the served page (a Panel BootstrapTemplate titled "HydroLens").
    """

    def __init__(self, runs_root: str | os.PathLike | None = None, **params):
        super().__init__(**params)
        self.state = AppState(store=RunStore(runs_root))
        self.map = MapView(self.state)
        self.hydrograph = HydrographView(self.state)
        self.run_panel = RunPanel(self.state)
        self.alert = pn.pane.Alert(alert_type="warning", sizing_mode="stretch_width")
        self.state.param.watch(self._show_message, "message")
        self._show_message()
        self.template = self._make_template()
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:
            pn.state.add_periodic_callback(self.state.poll, period=POLL_MS)

    def _show_message(self, *_events) -> None:
        self.alert.object = self.state.message
        self.alert.visible = bool(self.state.message)

    def _make_template(self):
        card = ["hl-card"]
        main = pn.Column(
            self.alert,
            pn.Column(
                self.map,
                pn.pane.HTML(
                    f'<div class="hl-caption">{MAP_CAPTION}</div>',
                    sizing_mode="stretch_width",
                    stylesheets=[CSS],
                ),
                css_classes=card,
                stylesheets=[CSS],
                sizing_mode="stretch_width",
            ),
            pn.Column(self.hydrograph, css_classes=card, stylesheets=[CSS],
                      sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
        store = os.fspath(self.state.store.root)
        return pn.template.BootstrapTemplate(
            title=TITLE,
            header_background=ACCENT,
            sidebar=[
                self.run_panel,
                pn.pane.HTML(
                    f'<div class="hl-caption">Run store: <code>{store}</code></div>',
                    sizing_mode="stretch_width",
                    stylesheets=[CSS],
                ),
            ],
            main=[main],
            sidebar_width=340,
        )

    def servable(self):
        """Mark the page servable (for ``panel serve``) and return it."""
        return self.template.servable(title=TITLE)


def create_app(runs_root: str | os.PathLike | None = None) -> HydroLensApp:
    """Build one explorer session over the run store at `runs_root` (default: HYDROLENS_RUNS)."""
    return HydroLensApp(runs_root=runs_root)


if pn.state.served:
    create_app().servable()
