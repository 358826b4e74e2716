"""HydroLens explorer: entry point for ``panel serve explorer/app.py``.

The run store is `core.runs.RunStore()`: the ``HYDROLENS_RUNS`` environment variable, else
``./runs``; the data root (sites to pick) is core's default (``HYDROLENS_DATA_ROOT``,
``../shared/data``, ...). ``create_app`` builds one session's app (state, views, page); the
module-level code at the bottom only runs under ``panel serve``.

Page: the sidebar holds the run panel and the map-quantity picker; the main area the site map
beside the workbench (pick, launch, jobs), and below them the views of the selected run: time
series, βᵗ/γᵗ traces, signatures, run comparison. The view state (run, site, map quantity,
period, compared runs, tab) is kept in the URL, so a link reopens the same view.
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
from bokeh.models import Range1d  # noqa: E402

from core.jobs import JobRunner  # noqa: E402
from core.datasets.schema import pad_gauge_id  # noqa: E402
from core.runs import RunStore  # noqa: E402
from explorer.analysis import CompareView, SignatureView  # noqa: E402
from explorer.closed_pages import quiet_closed_pages  # noqa: E402
from explorer.curves import LearningCurveView  # noqa: E402
from explorer.mapview import MapView  # noqa: E402
from explorer.series import SeriesView, TraceView  # noqa: E402
from explorer.state import AppState  # noqa: E402
from explorer.style import CSS, html_pane, stylesheets  # noqa: E402
from explorer.views import QuantityPicker, RunPanel  # noqa: E402
from explorer.workbench import JobsPanel, LaunchPanel, SelectionPanel  # noqa: E402

TITLE = "HydroLens"
ACCENT = "#0f4c75"
#: How often a session re-reads the status of a run that is still training (ms).
POLL_MS = 5000
#: How often the jobs panel re-reads the job queue (ms).
JOBS_MS = 1000
#: Main tabs, in order (the URL keeps the active one by name).
TABS = ("series", "traces", "signatures", "compare", "curves")
#: What the URL keeps: state parameter -> query key.
URL_KEYS = {"run_id": "run", "site": "site", "quantity": "q", "period": "period", "compare": "compare"}

MAP_CAPTION = (
    "Sites of the data root on a CONUS Albers equal-area map (shaded relief: Natural Earth). "
    "Large markers are the selected run's sites, coloured by the quantity picked in the sidebar; "
    "small grey ones are the other sites you can train on. Click a site to show it below; use "
    "the box or lasso tool (toolbar) to pick sites for a training job."
)

pn.extension(notifications=False)


class HydroLensApp(param.Parameterized):
    """One session of the explorer: the state, the views and the page that holds them.

    Attributes:
        state: the :class:`~explorer.state.AppState`.
        runner: the :class:`core.jobs.JobRunner` of the run store.
        map, series, traces, signatures, compare, curves, run_panel, picker, launcher, jobs: the views.
        tabs: the main tabs (``TABS``); workbench: the pick/launch/jobs tabs.
        template: the served page (a Panel BootstrapTemplate titled "HydroLens").
    """

    tab = param.Selector(default="series", objects=list(TABS), doc="Active main tab.")

    def __init__(self, runs_root: str | os.PathLike | None = None, **params):
        super().__init__(**params)
        store = RunStore(runs_root)
        self.state = AppState(store=store)
        self.runner = JobRunner(store)
        self.map = MapView(self.state)
        x_range = Range1d(start=0, end=1, name="hydrolens-x-range")
        self.series = SeriesView(self.state, x_range=x_range)
        # views of hidden tabs build their figures and read their data when first shown
        self.traces = TraceView(self.state, x_range=x_range, shown=self.tab == "traces")
        self.signatures = SignatureView(self.state, self.map.source, shown=self.tab == "signatures")
        self.compare = CompareView(self.state)
        self.curves = LearningCurveView(self.state, shown=self.tab == "curves")
        self.run_panel = RunPanel(self.state)
        self.quantity = QuantityPicker(self.state)
        self.picker = SelectionPanel(self.state, map_view=self.map)
        self.jobs = JobsPanel(self.state, self.runner)
        self.launcher = LaunchPanel(self.state, self.runner, on_launch=self._launched)
        self.alert = pn.pane.Alert(alert_type="warning", sizing_mode="stretch_width")
        self.state.param.watch(self._show_message, "message")
        self._show_message()
        self.template = self._make_template()
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:
            for callback, period in ((self.state.poll, POLL_MS), (self.jobs.refresh, JOBS_MS)):
                cb = pn.state.add_periodic_callback(callback, period=period, start=False)
                # background: these polls must not flash the page's busy indicator every second
                cb._background = True
                cb.start()
            if pn.state.location is not None:
                pn.state.location.sync(self.state, URL_KEYS, on_error=self._url_values)
                pn.state.location.sync(self, {"tab": "view"})
                self.state.param.watch(self._canonical_query, "quantity")

    def _canonical_query(self, _event) -> None:
        """Write the resolved map quantity back to the URL on the next tick. A link's ``q=FC``
        resolves to ``param:FC`` while Panel applies the URL, but the watcher events of that
        update arrive after the resolution, the last one carrying the bare name, so the address
        bar would keep ``q=FC``; on a later tick the state holds its final value."""
        location = pn.state.location
        if location is None:
            return

        def write() -> None:
            if location.query_params.get(URL_KEYS["quantity"]) != self.state.quantity:
                location.update_query(**{URL_KEYS["quantity"]: self.state.quantity})

        pn.state.execute(write, schedule=True)

    def _url_values(self, values: dict) -> None:
        """Apply the URL values Panel could not: it reads digit-only strings as numbers (gauge id
        01022500 -> 1022500), which a String parameter refuses; restore them as ids."""
        fixed = {k: str(v) if isinstance(v, (int, float)) and isinstance(self.state.param[k], param.String) else v
                 for k, v in values.items()}
        site = fixed.pop("site", None)
        try:
            self.state.param.update(**fixed)  # the run first: its sites decide how an id reads
            if site is not None:
                if isinstance(values["site"], (int, float)):
                    m = self.state.metrics
                    # a grid-cell id is kept as it is; a gauge id gets its leading zeros back
                    site = site if m is not None and site in m.index else pad_gauge_id(site)
                self.state.site = site
        except (ValueError, TypeError):  # a malformed URL value: keep the current view
            pass

    def _tab_shown(self, event) -> None:
        """The views of hidden tabs wait (no figures or data) until their tab is opened."""
        self.traces.shown = event.new == "traces"
        self.signatures.shown = event.new == "signatures"
        self.curves.shown = event.new == "curves"

    def _launched(self, job) -> None:
        self.jobs.track(job)
        self.workbench.active = 2  # show the jobs

    def _show_message(self, *_events) -> None:
        self.alert.object = self.state.message
        self.alert.visible = bool(self.state.message)

    def _make_template(self):
        card = dict(css_classes=["hl-card"], stylesheets=stylesheets(), sizing_mode="stretch_width")
        self.workbench = pn.Tabs(
            ("Pick sites", self.picker), ("Launch", self.launcher), ("Jobs", self.jobs),
            sizing_mode="stretch_width", dynamic=True)  # hidden tabs are sent when opened
        top = pn.Row(
            pn.Column(self.map, html_pane(f'<div class="hl-caption">{MAP_CAPTION}</div>'), **card),
            pn.Column(self.workbench, css_classes=["hl-card"], stylesheets=stylesheets(), width=390,
                      min_width=390, styles={"max-height": "640px", "overflow-y": "auto"}),
            sizing_mode="stretch_width",
        )
        self.tabs = pn.Tabs(
            ("Time series", self.series), ("βᵗ/γᵗ traces", self.traces),
            ("Signatures: BFI and ET", self.signatures), ("Compare runs", self.compare),
            ("Learning curves", self.curves),
            sizing_mode="stretch_width", dynamic=True,  # only the open tab is sent and drawn
        )
        self.tabs.active = TABS.index(self.tab)
        self.tabs.param.watch(lambda e: setattr(self, "tab", TABS[e.new]), "active")
        self.param.watch(lambda e: setattr(self.tabs, "active", TABS.index(e.new)), "tab")
        self.param.watch(self._tab_shown, "tab")
        main = pn.Column(self.alert, top, pn.Column(self.tabs, **card), sizing_mode="stretch_width")
        store = os.fspath(self.state.store.root)
        template = pn.template.BootstrapTemplate(
            title=TITLE,
            header_background=ACCENT,
            sidebar=[
                self.run_panel,
                self.quantity,
                html_pane(f'<div class="hl-caption">Run store: <code>{store}</code></div>'),
            ],
            main=[main],
            sidebar_width=340,
            raw_css=[CSS],  # page CSS; components get it by URL (explorer.style)
        )
        _batch_document_updates(template)
        return template

    def servable(self):
        """Mark the page servable (for ``panel serve``) and return it."""
        return self.template.servable(title=TITLE)


def _batch_document_updates(template) -> None:
    """Make ``template`` attach its roots to a session's document in one batch.

    The template adds its nine roots (main, sidebar, header, ...) one by one, and after each
    ``add_root`` Bokeh re-walks every model of the document (``recompute``): with ~500 models
    that is ~0.2 s of each page's start. Freezing the document's model set while the template
    attaches defers that to one walk at the end (Bokeh's own ``doc.models.freeze()``).
    """
    init_doc = template._init_doc

    def _init_doc(doc=None, *args, **kwargs):
        target = doc if doc is not None else pn.state.curdoc
        if target is None:
            return init_doc(doc, *args, **kwargs)
        with target.models.freeze():
            return init_doc(doc, *args, **kwargs)

    template._init_doc = _init_doc


def create_app(runs_root: str | os.PathLike | None = None) -> HydroLensApp:
    """Build one explorer session over the run store at `runs_root` (default: HYDROLENS_RUNS)."""
    quiet_closed_pages()
    return HydroLensApp(runs_root=runs_root)


if pn.state.served:
    create_app().servable()
