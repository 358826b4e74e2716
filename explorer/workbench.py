"""The workbench: pick sites, launch training jobs, watch them.

`SelectionPanel` filters the data root's sites on CAMELS attributes and on the selected run's
metric, takes a typed list of gauge ids and shows the picked sites with their count (the map's
tap/box/lasso tools pick too). `LaunchPanel` trains a variant on the picked sites through the
one job runner of ``core.jobs`` (the one ``hydrolens jobs`` and ``hydrolens benchmark`` use),
and `JobsPanel` shows every job of the store with a live progress bar (epoch, iteration, loss,
ETA), its log tail, cancel and resume. Jobs are processes with their state on disk, so they
outlive the tab and the server.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import panel as pn
import param
from panel.viewable import Viewer

from core.cluster import ClusterError, require_cluster, scheduler_address
from core.jobs import FINAL_STATES, JobError, JobRunner
from core.models.registry import VARIANTS
from core.training.config import PRESETS, SET_NONE, compose_config, preset_config
from explorer.mapview import describe_selection
from explorer.style import html_pane, stylesheets
from explorer.state import AppState, escape_html as escape, on_click, parse_ids

#: Attribute filters: column of the site table -> (label, units).
FILTERS = {
    "aridity": ("aridity PET/P", "–"),
    "frac_snow": ("snow fraction of P", "–"),
    "area": ("area", "km²"),
    "elev_mean": ("mean elevation", "m"),
}


def _bounds(values: pd.Series) -> tuple[float, float] | None:
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return None
    lo, hi = float(v.min()), float(v.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


class SelectionPanel(Viewer):
    """Site picking: attribute filters, a run-metric filter, typed ids, the picked list.

    Attributes:
        sliders: column -> RangeSlider over the site table's range.
        huc: MultiChoice of HUC-02 regions.
        metric: RangeSlider on the selected run's NSE (sites outside the run never pass it
            when it is narrowed).
        ids: TextAreaInput for site ids (gauge or grid-cell ids); ``add_ids`` adds them to the picks.
        matching: the sites passing every filter (bool per row of ``state.sites``).
    """

    state = param.ClassSelector(class_=AppState, doc="The explorer state.")

    def __init__(self, state: AppState, map_view=None, **params):
        super().__init__(state=state, **params)
        self.map_view = map_view
        sites = state.sites
        self.sliders = {}
        for col, (label, units) in FILTERS.items():
            b = _bounds(sites[col]) if col in sites else None
            if b is None:
                continue
            step = 1.0 if b[1] - b[0] > 50 else 0.01
            self.sliders[col] = pn.widgets.RangeSlider(
                label=f"{label} ({units})", start=b[0], end=b[1], value=b, step=step,
                sizing_mode="stretch_width")
        regions = sorted(str(h) for h in sites["huc_02"].dropna().unique()) if "huc_02" in sites else []
        self.huc = pn.widgets.MultiChoice(label="HUC-02 regions (empty: all)", options=regions,
                                          sizing_mode="stretch_width")
        self.metric = pn.widgets.RangeSlider(label="NSE of the selected run", start=-1.0, end=1.0,
                                             value=(-1.0, 1.0), step=0.05, sizing_mode="stretch_width")
        self.select_matching = pn.widgets.Button(label="Pick all matching sites", color="primary",
                                                 sizing_mode="stretch_width")
        self.ids = pn.widgets.TextAreaInput(label="Gauge or SMAP cell ids (comma or space separated)",
                                            placeholder="01022500, 01031500", height=70,
                                            sizing_mode="stretch_width")
        self.add_ids = pn.widgets.Button(label="Add ids", color="light", width=90)
        self.clear = pn.widgets.Button(label="Clear picks", color="light", width=110)
        self.count = html_pane(sizing_mode="stretch_width", css_classes=["hl-pick-count"])
        self.listing = html_pane(sizing_mode="stretch_width", max_height=180,
                                    styles={"overflow-y": "auto"})
        self.feedback = html_pane(sizing_mode="stretch_width")
        for w in (*self.sliders.values(), self.huc, self.metric):
            w.param.watch(self._filter_changed, "value")
        on_click(self.select_matching, self._pick_matching)
        on_click(self.add_ids, self._add_ids)
        on_click(self.clear, lambda _e: setattr(self.state, "selection", []))
        state.param.watch(self._show_selection, "selection")
        state.param.watch(self._filter_changed, "metrics")
        self._layout = pn.Column(
            html_pane('<div class="hl-section">Filter sites</div>'),
            *self.sliders.values(), self.huc, self.metric, self.select_matching,
            html_pane('<div class="hl-section">Or type site ids</div>'),
            self.ids, pn.Row(self.add_ids, self.clear),
            self.feedback, self.count, self.listing,
            sizing_mode="stretch_width",
        )
        self._filter_changed()
        self._show_selection()

    @property
    def matching(self) -> np.ndarray:
        """Bool per row of ``state.sites``: the site passes every filter."""
        sites = self.state.sites
        ok = np.ones(len(sites), bool)
        for col, w in self.sliders.items():
            v = pd.to_numeric(sites[col], errors="coerce").to_numpy(float)
            lo, hi = w.value
            if (lo, hi) != (w.start, w.end):
                ok &= (v >= lo - 1e-9) & (v <= hi + 1e-9)
        if self.huc.value:
            ok &= sites["huc_02"].astype(str).isin(self.huc.value).to_numpy()
        lo, hi = self.metric.value
        if (lo, hi) != (self.metric.start, self.metric.end) and self.state.metrics is not None:
            nse = pd.to_numeric(self.state.metrics["NSE"], errors="coerce").reindex(sites.index)
            ok &= ((nse >= lo) & (nse <= hi)).fillna(False).to_numpy()
        return ok

    def _filter_changed(self, *_events) -> None:
        ok = self.matching
        if self.map_view is not None:
            self.map_view.set_filter(ok)
        self.select_matching.label = f"Pick all {int(ok.sum())} matching sites"

    def _pick_matching(self, _event=None) -> None:
        sites = self.state.sites
        self.state.selection = [str(b) for b in sites.index[self.matching]]

    def _add_ids(self, _event=None) -> None:
        known = set(self.state.sites.index)
        typed = parse_ids(self.ids.value_input or self.ids.value, known)
        good = [b for b in typed if b in known]
        bad = [b for b in typed if b not in known]
        self.state.selection = list(dict.fromkeys([*self.state.selection, *good]))
        msg = f"added {len(good)} site(s)" if good else ""
        if bad:
            msg += ("; " if msg else "") + (f"not in the data root: {escape(', '.join(bad[:10]))}"
                                            + (" …" if len(bad) > 10 else ""))
        self.feedback.object = f'<div class="hl-muted">{msg}</div>' if msg else ""

    def _show_selection(self, *_events) -> None:
        n = len(self.state.selection)
        # the list first: a page (or a test) that sees the new count finds the list already there
        self.listing.object = describe_selection(self.state)
        self.count.object = (f'<div class="hl-count"><b data-count="{n}">{n}</b> site(s) picked'
                             f'{" — launch a job below" if n else ": tap, box- or lasso-select on the map"}</div>')

    def __panel__(self):
        return self._layout


def _where(job) -> str:
    """Where a job runs: nothing for this machine; the Dask scheduler (and the worker once one
    has it) with a link to the cluster's dashboard for a job on a cluster (HTML)."""
    if job.info.get("executor") != "dask":
        return ""
    address = str(job.info.get("scheduler", "?"))
    link = str(job.info.get("dashboard") or "")
    dash = (f' · <a href="{escape(link)}" target="_blank">dashboard</a>'
            if link.startswith(("http://", "https://")) else "")
    detail = job.message if not job.final and job.message else ""
    return (f'<br><span class="hl-where" data-executor="dask">on Dask {escape(address)}'
            f'{" · " + escape(detail) if detail else ""}{dash}</span>')


def device_options() -> tuple[list[str], str]:
    """Devices a job can run on here (auto, cpu and cuda when torch sees a GPU) and a note."""
    try:
        import torch

        if torch.cuda.is_available():
            return ["auto", "cpu", "cuda"], f"CUDA: {torch.cuda.get_device_name(0)}"
    except Exception:  # noqa: BLE001
        pass
    return ["auto", "cpu"], "CUDA: not available on this server (CPU only)"


class LaunchPanel(Viewer):
    """Train a variant on the picked sites: variant, preset, epochs, learner size, n, seed, device.

    Submits through :class:`core.jobs.JobRunner`; the run is created at once (state created)
    and trained and evaluated by the job.
    """

    state = param.ClassSelector(class_=AppState, doc="The explorer state.")

    def __init__(self, state: AppState, runner: JobRunner, on_launch=None, **params):
        super().__init__(state=state, **params)
        self.runner = runner
        self.on_launch = on_launch
        self.variant = pn.widgets.Select(
            label="Variant", options={f"{v.label} ({k})": k for k, v in VARIANTS.items()},
            value="delta_n_gamma_beta", sizing_mode="stretch_width")
        presets = [p for p in PRESETS if p != "camels432"]
        self.preset = pn.widgets.Select(label="Preset (settings below override it)", options=presets,
                                        value="demo", sizing_mode="stretch_width")
        self.epochs = pn.widgets.IntInput(label="Epochs", start=1, end=1000, width=90)
        # 0: the dPL rule (each site-day drawn with p = 0.99 per epoch; the smap preset's)
        self.iters = pn.widgets.IntInput(label="Iterations/epoch", start=0, end=100000, width=120,
                                         description="0: the dPL rule (each training site-day drawn with "
                                         "probability 0.99 per epoch)")
        self.hidden = pn.widgets.IntInput(label="LSTM hidden", start=4, end=1024, width=100)
        self.nmul = pn.widgets.IntInput(label="Components n", start=1, end=64, width=110)
        self.seed = pn.widgets.IntInput(label="Seed", start=0, end=2**31 - 1, value=0, width=90)
        devices, note = device_options()
        self.device = pn.widgets.RadioButtonGroup(label="Device", options=devices, value="auto",
                                                  color="light")
        self.device_note = html_pane(f'<div class="hl-muted">{html.escape(note)}</div>')
        # where the job runs: this machine, or a Dask cluster the user operates (core.cluster)
        self.run_on = pn.widgets.RadioButtonGroup(label="Run on", options=["this machine", "Dask cluster"],
                                                  value="this machine", color="light")
        self.scheduler = pn.widgets.TextInput(label="Dask scheduler", value=scheduler_address() or "",
                                              placeholder="tcp://HOST:8786", sizing_mode="stretch_width",
                                              visible=False)
        self.cluster_note = html_pane(sizing_mode="stretch_width")
        self.run_on.param.watch(self._check_cluster, "value")
        self.scheduler.param.watch(self._check_cluster, "value")
        self.launch = pn.widgets.Button(label="Launch training", color="success",
                                        sizing_mode="stretch_width")
        self.feedback = html_pane(sizing_mode="stretch_width")
        self.preset.param.watch(self._preset_changed, "value")
        self.variant.param.watch(self._preset_changed, "value")
        on_click(self.launch, self._launch)
        state.param.watch(self._enable, "selection")
        state.param.watch(self._follow_run, "info")
        self._follow_run()
        self._preset_changed()
        self._enable()
        self._layout = pn.Column(
            self.variant, self.preset,
            pn.Row(self.epochs, self.iters, self.hidden), pn.Row(self.nmul, self.seed),
            html_pane('<div class="hl-label">Device</div>'), self.device, self.device_note,
            html_pane('<div class="hl-label">Run on</div>'), self.run_on, self.scheduler, self.cluster_note,
            self.launch, self.feedback, sizing_mode="stretch_width")

    def _check_cluster(self, *_events) -> str | None:
        """Show the cluster's workers, threads and GPUs (or why it cannot be used); returns the
        scheduler address to launch on, None for this machine or an unusable cluster."""
        dask = self.run_on.value == "Dask cluster"
        self.scheduler.visible = dask
        if not dask:
            self.cluster_note.object = ""
            return None
        address = self.scheduler.value.strip()
        if not address:
            self.cluster_note.object = ('<div class="hl-muted">Give the scheduler address (`hydrolens cluster '
                                        'local` prints it).</div>')
            return None
        try:
            info = require_cluster(address, timeout=3)
        except ClusterError as e:
            self.cluster_note.object = f'<div class="hl-error" data-cluster="unreachable">{escape(e)}</div>'
            return None
        self.cluster_note.object = (f'<div class="hl-muted" data-cluster="ok" data-workers="{info.workers}">'
                                    f"{escape(info.describe())}</div>")
        return address

    def _preset_changed(self, *_events) -> None:
        # the preset follows the variant's task: SMAP soil moisture or streamflow
        grid = VARIANTS[self.variant.value].task == "soil_moisture"
        if grid != (self.preset.value == "smap"):
            if _events and _events[0].obj is self.preset:  # a preset of the other task: its variant
                self.variant.value = preset_config(self.preset.value).model.variant
            else:
                self.preset.value = "smap" if grid else "demo"
            return  # the change above calls back here
        cfg = preset_config(self.preset.value)
        self.epochs.value = cfg.train.epochs
        self.iters.value = cfg.train.iters_per_epoch or 0
        self.hidden.value = cfg.model.hidden
        self.nmul.value = cfg.model.nmul or max(1, VARIANTS[self.variant.value].nmul)
        self.seed.value = cfg.train.seed

    def _follow_run(self, *_events) -> None:
        """The shown run's sites are basins or grid cells: offer a variant of that task (the
        run's own variant), so the sites picked on its map fit what is launched."""
        info = self.state.info
        if info is None or info.variant not in VARIANTS:
            return
        if VARIANTS[info.variant].task != VARIANTS[self.variant.value].task:
            self.variant.value = info.variant

    def _enable(self, *_events) -> None:
        n = len(self.state.selection)
        self.launch.disabled = n == 0
        self.launch.label = f"Launch training on {n} site(s)" if n else "Pick sites to launch"

    def config(self) -> dict:
        """The RunConfig dict this panel would launch."""
        n = len(self.state.selection)
        return compose_config(self.preset.value, overrides={
            "data.sites": list(self.state.selection),
            "data.root": str(self.state.data_root) if self.state.data_root else None,
            # unseen cells: those of the set not picked for training
            "data.test_sites": SET_NONE,
            "model.variant": self.variant.value, "model.hidden": int(self.hidden.value),
            "model.nmul": int(self.nmul.value), "train.epochs": int(self.epochs.value),
            "train.iters_per_epoch": int(self.iters.value) or SET_NONE, "train.seed": int(self.seed.value),
            "train.device": self.device.value,
            "train.batch_size": min(preset_config(self.preset.value).train.batch_size, n),
            "name": f"{self.variant.value}-{n}sites"}, source="Launch panel").to_dict()

    def _launch(self, _event=None) -> None:
        if not self.state.selection:
            return
        address = ""  # this machine
        if self.run_on.value == "Dask cluster":
            address = self._check_cluster()
            if address is None:
                self.feedback.object = ('<div class="hl-error">Cannot launch: no usable Dask cluster (see '
                                        'above); choose "this machine" or fix the address</div>')
                return
        runner = JobRunner(self.runner.store, scheduler=address)
        try:
            job = runner.submit_train(self.config(), label=f"{self.variant.value} on "
                                      f"{len(self.state.selection)} sites")
        except (JobError, ValueError, OSError) as e:
            self.feedback.object = f'<div class="hl-error">Cannot launch: {escape(e)}</div>'
            return
        self.feedback.object = (f'<div class="hl-muted">Job <code>{escape(job.job_id)}</code> '
                                f"{escape(job.state)}: run <code>{escape(job.run_id)}</code></div>")
        if self.on_launch:
            self.on_launch(job)

    def __panel__(self):
        return self._layout


class _JobRow:
    """The widgets of one job, updated in place."""

    def __init__(self, panel: "JobsPanel", job_id: str):
        self.job_id = job_id
        self.head = html_pane(sizing_mode="stretch_width")
        self.bar = pn.indicators.Progress(value=0, max=1000, sizing_mode="stretch_width", height=14,
                                          bar_color="primary")
        self.detail = html_pane(sizing_mode="stretch_width")
        self.log = pn.pane.Str("", sizing_mode="stretch_width", styles={
            "font-size": "11px", "max-height": "140px", "overflow-y": "auto", "background": "#f8fafc"})
        self.cancel = pn.widgets.Button(label="Cancel", color="warning", width=80, height=30)
        self.resume = pn.widgets.Button(label="Resume", color="primary", width=80, height=30)
        self.show = pn.widgets.Button(label="Show run", color="light", width=90, height=30)
        on_click(self.cancel, lambda _e: panel.cancel(job_id))
        on_click(self.resume, lambda _e: panel.resume(job_id))
        on_click(self.show, lambda _e: panel.show_run(job_id))
        self.card = pn.Column(self.head, self.bar, self.detail,
                              pn.Row(self.cancel, self.resume, self.show),
                              pn.Card(self.log, title="log", collapsed=True, sizing_mode="stretch_width",
                                      header_background="#f1f5f9"),
                              css_classes=["hl-job"], stylesheets=stylesheets(), sizing_mode="stretch_width",
                              styles={"border-bottom": "1px solid #e5e7eb", "padding-bottom": "6px"})

    def update(self, job, progress) -> None:
        state = job.state
        self.card.css_classes = ["hl-job", f"hl-job-{state}"]
        self.head.object = (
            f'<div class="hl-job-head" data-job="{escape(job.job_id)}" data-state="{escape(state)}">'
            f'<span class="hl-badge hl-badge-{escape(state)}">{escape(state)}</span> '
            f"<b>{escape(job.label)}</b><br><span class=\"hl-muted\">run <code>{escape(job.run_id)}</code>"
            f" · job {escape(job.job_id)}{_where(job)}</span></div>")
        self.bar.value = int(round(progress.fraction * 1000))
        self.bar.bar_color = {"done": "success", "failed": "danger", "cancelled": "secondary",
                              "cancelling": "warning"}.get(state, "primary")
        loss = f" · loss {progress.loss:.4f}" if progress.loss is not None else ""
        eta = f" · {progress.eta_text()}" if progress.eta_s is not None else ""
        what = (f"epoch {progress.epoch}/{progress.epochs} · iteration {progress.iteration}/"
                f"{progress.iters}{loss}{eta}" if progress.epochs
                else progress.message if progress.run_state == "running" else "waiting to start")
        if progress.run_state == "evaluating":
            what = "evaluating on the test period"
        msg = job.message if job.final else ""
        self.detail.object = (f'<div class="hl-job-progress" data-fraction="{progress.fraction:.4f}" '
                              f'data-iteration="{progress.epoch * max(progress.iters, 1) + progress.iteration}">'
                              f"{escape(what)}{'<br>' + escape(msg) if msg else ''}</div>")
        self.cancel.visible = not job.final
        self.resume.visible = job.final and state in ("cancelled", "failed")
        self.show.visible = state == "done"
        tail = job.log_tail(12)
        if tail != self.log.object:
            self.log.object = tail


class JobsPanel(Viewer):
    """Every job of the run store, newest first, refreshed by :meth:`refresh` (the app calls it
    every second); a job launched here selects its run when it is done."""

    state = param.ClassSelector(class_=AppState, doc="The explorer state.")

    def __init__(self, state: AppState, runner: JobRunner, limit: int = 8, **params):
        super().__init__(state=state, **params)
        self.runner = runner
        self.limit = limit
        self.rows: dict[str, _JobRow] = {}
        self.mine: set[str] = set()
        self._seen: dict[str, str] = {}  # job id -> state at the last refresh
        self.header = html_pane(sizing_mode="stretch_width")
        self.list = pn.Column(sizing_mode="stretch_width")
        self._layout = pn.Column(self.header, self.list, sizing_mode="stretch_width")
        self.refresh()

    def track(self, job) -> None:
        """Remember a job launched from this session (its run is shown when done)."""
        self.mine.add(job.job_id)
        self.refresh()

    def refresh(self) -> None:
        """Re-read the jobs (and start queued ones where slots are free); update the rows."""
        try:
            jobs = self.runner.jobs(pump=False)
            if any(j.state == "queued" for j in jobs):  # start them where slots are free
                self.runner.pump()
                jobs = self.runner.jobs(pump=False)
            jobs = jobs[: self.limit]
        except OSError as e:
            self.header.object = f'<div class="hl-error">Jobs cannot be read: {escape(e)}</div>'
            return
        running = sum(j.state in ("running", "cancelling") for j in jobs)
        queued = sum(j.state == "queued" for j in jobs)
        self.header.object = (
            f'<div class="hl-muted">{running} running · {queued} queued · at most '
            f"{self.runner.max_running} at a time · state in <code>{escape(self.runner.root)}</code></div>"
            if jobs else '<div class="hl-muted">No jobs yet: pick sites and launch one.</div>')
        ended_now = []
        for job in jobs:
            row = self.rows.get(job.job_id) or _JobRow(self, job.job_id)
            self.rows[job.job_id] = row
            before = self._seen.get(job.job_id)
            if not (job.final and before == job.state):  # an ended job shown as such stays put
                row.update(job, self.runner.progress(job))
            if job.final and before is not None and before not in FINAL_STATES:
                ended_now.append(job)  # ended while this page watched it
            self._seen[job.job_id] = job.state
        cards = [self.rows[j.job_id].card for j in jobs]
        if [id(c) for c in self.list.objects] != [id(c) for c in cards]:
            self.list.objects = cards
        if ended_now:
            self.state.refresh()
            for job in ended_now:
                if job.state == "done" and job.job_id in self.mine:
                    self.state.run_id = job.run_id

    def cancel(self, job_id: str) -> None:
        try:
            self.runner.cancel(job_id)
        except JobError as e:
            self.header.object = f'<div class="hl-error">{escape(e)}</div>'
        self.refresh()

    def resume(self, job_id: str) -> None:
        try:
            job = self.runner.resume(job_id)
            self.mine.add(job.job_id)
        except (JobError, KeyError) as e:
            self.header.object = f'<div class="hl-error">{escape(e)}</div>'
        self.refresh()

    def show_run(self, job_id: str) -> None:
        job = self.runner.get(job_id)
        self.state.refresh()
        if job.run_id:
            self.state.run_id = job.run_id

    def __panel__(self):
        return self._layout


__all__ = ["JobsPanel", "LaunchPanel", "SelectionPanel", "device_options"]
