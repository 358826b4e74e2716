"""The explorer app: served by `panel serve` (HTTP + server log) and built in-process.

Uses the `trained_run` fixture (tests/conftest.py): a real run trained by the CLI, in a store
of its own. The served app is pointed at that store through HYDROLENS_RUNS.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.app

REPO = Path(__file__).resolve().parents[1]
#: Lines in a server log that mean the app failed.
LOG_ERRORS = ("Error running application handler", "Traceback", "ERROR")


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServedApp:
    """A running explorer server: its `url`, `port` and the `log()` it has written so far."""

    def __init__(self, url: str, port: int, log_path: Path, proc: subprocess.Popen):
        self.url, self.port, self.log_path, self.proc = url, port, log_path, proc

    def log(self) -> str:
        """Server stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")

    def assert_clean_log(self) -> None:
        """Fail if the server log shows an error or a traceback."""
        log = self.log()
        for marker in LOG_ERRORS:
            assert marker not in log, f"{marker!r} in the server log:\n{log}"


@contextmanager
def serve_app(runs_root: Path, log_path: Path, command: list[str] | None = None,
              path: str = "/app", timeout: float = 90.0):
    """Start the explorer in a subprocess over the store `runs_root`; yield a `ServedApp`.

    The default command is ``panel serve explorer/app.py`` on a free port; pass `command` (with
    ``{port}`` placeholders) to serve another way. The server is killed on exit, whatever happens.
    """
    port = free_port()
    if command is None:
        command = [
            sys.executable, "-m", "panel", "serve", "explorer/app.py",
            "--port", "{port}", "--address", "127.0.0.1",
            "--allow-websocket-origin=127.0.0.1:{port}",
        ]
    command = [part.replace("{port}", str(port)) for part in command]
    env = dict(os.environ, HYDROLENS_RUNS=str(runs_root))
    # The checkout under test comes first, whatever is installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    url = f"http://127.0.0.1:{port}{path}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    served = ServedApp(url, port, log_path, proc)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{served.log()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"server did not answer within {timeout:.0f} s:\n{served.log()}")
                time.sleep(0.5)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def get(url: str) -> tuple[int, str]:
    """HTTP GET: (status, body)."""
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.status, response.read().decode("utf-8", errors="replace")


@pytest.fixture(scope="module")
def served_app(trained_run, tmp_path_factory):
    """`panel serve explorer/app.py` over the trained run's store."""
    log_path = tmp_path_factory.mktemp("served_app") / "server.log"
    with serve_app(trained_run.path.parent, log_path) as served:
        yield served


@pytest.fixture
def app(trained_run):
    """The explorer built in-process over the trained run's store, showing the trained run."""
    from explorer.app import create_app

    app = create_app(runs_root=trained_run.path.parent)
    app.state.run_id = trained_run.run_id
    return app


# -- served ------------------------------------------------------------------------------------


def test_panel_serve_renders_page_without_errors(served_app):
    status, body = get(served_app.url)
    assert status == 200
    assert "<title>HydroLens</title>" in body
    assert "Bokeh" in body and "docs_json" in body  # the embedded Bokeh document
    time.sleep(1.0)  # let the session finish logging
    served_app.assert_clean_log()


def assert_serves_page(served) -> None:
    """The page answers 200 with the HydroLens title and the server log stays clean."""
    status, body = get(served.url)
    assert status == 200
    assert "<title>HydroLens</title>" in body
    time.sleep(1.0)  # let the session finish logging
    served.assert_clean_log()


def test_hydrolens_serve_command_serves_the_app(trained_run, tmp_path):
    """`hydrolens serve --port P --out STORE` (execs `panel serve explorer/app.py`) serves the page."""
    command = [sys.executable, "-m", "core.cli", "serve", "--port", "{port}", "--address", "127.0.0.1",
               "--out", str(trained_run.path.parent)]
    with serve_app(trained_run.path.parent, tmp_path / "cli_serve.log", command=command) as served:
        assert_serves_page(served)


def test_serve_function_serves_the_app(trained_run, tmp_path):
    """`explorer.server.serve` (programmatic use, `pn.serve`) serves the same page at /."""
    code = (
        "import os; from explorer.server import serve; "
        "serve(port={port}, runs_root=os.environ['HYDROLENS_RUNS'])"
    )
    with serve_app(trained_run.path.parent, tmp_path / "serve.log",
                   command=[sys.executable, "-c", code], path="/") as served:
        assert_serves_page(served)


# -- in-process ----------------------------------------------------------------------------------


def test_map_shows_every_site_and_colours_the_runs_by_nse(app, trained_run):
    from core.datasets import site_table

    metrics = trained_run.metrics()
    data = app.map.source.data
    sites = site_table(trained_run.config()["data"]["root"])
    assert list(data["site"]) == [str(b) for b in sites.index]  # every site can be picked
    member = dict(zip(data["site"], data["in_run"]))
    assert {b for b, m in member.items() if m} == set(metrics.index)
    values = dict(zip(data["site"], data["value"]))
    for b in metrics.index:
        assert values[b] == pytest.approx(float(metrics.loc[b, "NSE"]), nan_ok=True)
    others = [v for b, v in values.items() if b not in metrics.index]
    assert others and all(math.isnan(v) for v in others)
    assert np.isfinite(data["x"]).all() and np.isfinite(data["y"]).all()  # Albers metres
    assert app.map.color_bar.title == "NSE"


def test_default_basin_is_the_median_nse_basin_and_series_are_filled(app, trained_run):
    nse = trained_run.metrics()["NSE"].astype(float).dropna()
    expected = (nse - nse.median()).abs().idxmin()
    assert app.state.site == expected
    assert app.map.ring.data["x"]  # the shown site is ringed
    data = app.series.source.data
    assert len(data["Q_obs"]) > 0 and len(data["time"]) == len(data["Q_sim"])
    title = app.series.figures["hydrolens-hydrograph"].title.text
    assert title.startswith(expected)
    # every variable of every panel the run declares is drawn
    for panel in trained_run.panels():
        assert all(n in data for n in panel["variables"]), panel
    # T (°C) is drawn on its own right axis beside P (mm/d), and fits its own range
    forcing = app.series.figures["hydrolens-panel-P"]
    t_line = next(r for r in forcing.renderers if r.name == "line-T")
    assert t_line.y_range_name == "right" and forcing.extra_y_ranges["right"].renderers == [t_line]
    assert [a.axis_label for a in forcing.right] == ["°C"] and forcing.left[0].axis_label == "mm/d"
    assert t_line not in forcing.y_range.renderers


def test_log_scale_shows_the_hydrographs_log_twin_titled_beside_the_linear_one(app):
    series = app.series
    linear = series.figures["hydrolens-hydrograph"]
    assert "hydrolens-hydrograph-log" not in series.figures  # built the first time it is asked for
    app.state.log_q = True
    log = series.figures["hydrolens-hydrograph-log"]
    children = list(series._column.children)
    assert children.index(log) == children.index(linear) + 1
    assert log.title.text == linear.title.text != ""
    assert log.visible and not linear.visible
    app.state.log_q = False
    assert linear.visible and not log.visible
    assert list(series._column.children) == children  # the twin is kept, not rebuilt


def test_tapping_a_site_shows_its_series(app, trained_run):
    basins = list(app.map.source.data["site"])
    metrics = trained_run.metrics()
    target = next(b for b in metrics.index if b != app.state.site)
    app.map.source.selected.indices = [basins.index(target)]  # what a tap on the map sets
    assert app.state.site == target and app.state.selection == [target]

    with trained_run.outputs() as ds:
        expected = ds.sel(site=target).load()
    data = app.series.source.data
    for name in ("Q_obs", "Q_sim", "P", "T", "PET", "SWE", "SM", "Q2", "ET"):
        np.testing.assert_allclose(data[name], expected[name].to_numpy(), rtol=1e-6, equal_nan=True)
    assert np.array_equal(np.asarray(data["time"]), expected["time"].to_numpy())
    row = metrics.loc[target]
    title = app.series.figures["hydrolens-hydrograph"].title.text
    assert target in title and str(row["gauge_name"]) in title
    for metric in ("NSE", "KGE"):
        value = float(row[metric])
        assert f"{metric} {'—' if math.isnan(value) else f'{value:.2f}'}" in title
    # a box selection of several sites picks them without changing the shown site
    picks = [basins.index(b) for b in metrics.index[:3]]
    app.map.source.selected.indices = picks
    assert app.state.selection == [basins[i] for i in picks] and app.state.site == target


def test_map_quantity_switch_to_a_parameter_changes_colours_and_title(app, trained_run):
    q = app.state.quantities()
    assert {"NSE", "KGE", "BFI_sim", "BFI_diff", "ET_mean", "P_minus_Q", "param:FC", "param:BETA"} <= set(q)
    app.state.quantity = "param:FC"
    assert app.map.color_bar.title == "FC (mm)"
    table = trained_run.site_parameters()
    values = dict(zip(app.map.source.data["site"], app.map.source.data["value"]))
    for b in table.index:
        assert values[b] == pytest.approx(float(table.loc[b, "FC"]), rel=1e-6)
    assert 50 <= app.map.mapper.low < app.map.mapper.high <= 1000  # within FC's bounds (mm)
    app.state.quantity = "param:BETA"
    assert app.map.color_bar.title == "BETA (time mean)"
    # a bare parameter name (a hand-written link's q=FC) is that parameter; an unknown key is NSE
    app.state.quantity = "FC"
    assert app.state.quantity == "param:FC" and app.map.color_bar.title == "FC (mm)"
    assert app.quantity.select.value == "param:FC"
    app.state.quantity = "infiltr"            # a VIC parameter: not in this HBV run
    assert app.state.quantity == "NSE" and app.map.color_bar.title == "NSE"


def test_traces_hold_the_daily_dynamic_parameters_of_parameters_nc(app, trained_run):
    import xarray as xr

    assert app.traces.dynamic_names() == ["BETA", "GAMMA"]  # δn(γᵗ,βᵗ), from parameters.nc
    # a hidden tab reads nothing; opening it brings the traces of the shown site
    assert not app.traces.shown and len(app.traces.source.data["time"]) == 0
    app.tab = "traces"
    assert app.traces.shown and app.tabs.active == 1
    data = app.traces.source.data
    with xr.open_dataset(trained_run.parameters_path) as p:
        for name in ("BETA", "GAMMA"):
            expected = p[name].sel(site=app.state.site).to_numpy()
            np.testing.assert_allclose(data[name], expected, rtol=1e-6)
            assert np.std(data[name]) > 0  # daily values that vary
            lo, hi = p[name].attrs["valid_min"], p[name].attrs["valid_max"]
            assert lo <= np.min(data[name]) and np.max(data[name]) <= hi


def test_csv_download_has_the_sites_series_with_units(app):
    text = app.series._csv().getvalue().decode()
    lines = text.splitlines()
    assert app.state.site in lines[0]
    header = lines[1].split(",")
    assert header[0] == "time" and "Q_sim [mm d-1]" in header and "T [degC]" in header
    assert len(lines) == 2 + len(app.series.source.data["time"])


def test_signatures_and_selection_panels_follow_the_run(app, trained_run):
    metrics = trained_run.metrics()
    picker = app.picker
    picker.ids.value = f"{metrics.index[0]}, 99999999 {int(metrics.index[1])}"
    picker._add_ids()
    assert set(app.state.selection) >= {metrics.index[0], metrics.index[1]}
    assert "99999999" in picker.feedback.object  # unknown ids are named
    assert f'data-count="{len(app.state.selection)}"' in picker.count.object
    assert app.launcher.launch.disabled is False
    cfg = app.launcher.config()
    assert cfg["data"]["sites"] == app.state.selection and cfg["model"]["variant"] == "delta_n_gamma_beta"
    picker.clear.clicks += 1
    assert app.state.selection == [] and app.launcher.launch.disabled
    # the signature scatters: no figures while their tab is hidden, built and titled when opened
    assert app.signatures.bfi_figure is None
    assert list(app.signatures.source.data["site"]) == list(app.map.source.data["site"])
    app.tab = "signatures"
    title = app.signatures.bfi_figure.title.text
    assert title.startswith("Baseflow index: simulated vs CAMELS · r = ") and f"n = {len(metrics)}" in title


def test_run_panel_lists_runs_newest_first_with_summary(app, trained_run):
    from core.runs import RunStore

    infos = RunStore(trained_run.path.parent).list()
    panel = app.run_panel
    assert list(panel.run_select.options.values()) == [i.run_id for i in infos]
    assert panel.run_select.value == trained_run.run_id
    label = next(k for k, v in panel.run_select.options.items() if v == trained_run.run_id)
    info = trained_run.info()
    assert trained_run.run_id in label and info.variant in label and str(info.n_sites) in label
    html = panel.summary.object
    assert info.state in html and f"{info.median_nse:.2f}" in html
    assert f"{info.epochs_done} / {info.epochs}" in html
    assert set(panel.basin_select.options.values()) == set(trained_run.metrics().index)
    assert app.state.message == "" and not app.alert.visible


def test_empty_store_shows_a_message(tmp_path):
    from explorer.app import create_app

    app = create_app(runs_root=tmp_path)
    assert app.state.run_id is None
    assert "No runs" in app.state.message and app.alert.visible
    assert not any(app.map.source.data["in_run"])
    assert len(app.series.source.data["time"]) == 0
    assert app.run_panel.run_select.disabled


# -- a run that is still training -------------------------------------------------------------


def test_run_without_evaluation_shows_its_status(tmp_path):
    from core.runs import RunStore
    from explorer.mapview import MapView
    from explorer.series import SeriesView
    from explorer.state import AppState
    from explorer.views import RunPanel

    store = RunStore(tmp_path)
    run = store.create("training")
    run.update_status(state="training", epoch=2, epochs=10, message="training")
    state = AppState(store=store)
    assert state.run_id == run.run_id
    assert state.metrics is None and state.site is None
    assert "training" in state.message and "epoch 2/10" in state.message
    assert "no evaluation" in state.message

    map_view, series, panel = MapView(state), SeriesView(state), RunPanel(state)
    assert not any(map_view.source.data["in_run"])
    assert "not evaluated" in map_view.figure.title.text
    assert map_view.color_bar.title == "run not evaluated yet"  # a run is selected: say why no colours
    assert len(series.source.data["time"]) == 0
    assert "training" in panel.summary.object and "2 / 10" in panel.summary.object
    assert panel.basin_select.disabled

    run.update_status(epoch=3)  # the app's periodic poll picks up progress
    state.poll()
    assert "epoch 3/10" in state.message and "3 / 10" in panel.summary.object


def test_a_training_run_is_shown_before_a_newer_queued_one(tmp_path):
    """With no evaluated run, the app opens on the run in training (its curves move), not on the
    newer run queued behind it (nothing to show yet); with only a queued run, that one."""
    from core.runs import RunStore
    from explorer.state import AppState

    store = RunStore(tmp_path)
    training = store.create("a-training")
    training.update_status(state="training", epoch=2, epochs=50, message="training")
    queued = store.create("b-queued")
    queued.update_status(state="created", epoch=0, epochs=50, message="queued for training")
    assert store.list()[0].run_id == queued.run_id  # newest first
    assert AppState(store=store).run_id == training.run_id
    fresh = RunStore(tmp_path / "fresh")
    only_queued = fresh.create("queued")
    assert AppState(store=fresh).run_id == only_queued.run_id


def test_learning_curves_follow_a_training_run_epoch_by_epoch(tmp_path):
    """The curves tab reads train_log.csv through core.runs and redraws when the polled status
    says an epoch was logged; wall time, updates/s and the best epoch are summarised."""
    from core.runs import RunStore
    from explorer.curves import LearningCurveView
    from explorer.state import AppState

    store = RunStore(tmp_path)
    run = store.create("training")
    run.update_status(state="training", epoch=0, epochs=5, iters_per_epoch=57, message="training")
    state = AppState(store=store)
    view = LearningCurveView(state)
    assert len(view.source.data["loss"]) == 0 and "No epoch finished yet" in view.note.object
    rows = [{"epoch": 1, "updates": 57, "loss": 0.080, "val_loss": 0.082, "val_NSE": -0.20, "seconds": 10.0},
            {"epoch": 2, "updates": 114, "loss": 0.070, "val_loss": 0.081, "val_NSE": -0.05, "seconds": 9.0}]
    for row in rows:
        run.append_train_log(row)
        run.update_status(epoch=row["epoch"], best_epoch=2 if row["epoch"] == 2 else 1)
        state.poll()  # the app's periodic poll
        assert list(view.source.data["epoch"]) == [r["epoch"] for r in rows[:row["epoch"]]]
    assert list(view.source.data["updates"]) == [57, 114]
    np.testing.assert_allclose(view.source.data["val_NSE"], [-0.20, -0.05])
    assert view.lines["val_NSE"].visible and view.lines["val_loss"].visible
    note = view.note.object
    assert "2 epoch(s) of 5" in note and "114 updates" in note and "wall 19 s" in note
    assert "6.00 updates/s" in note and "best epoch 2, validation median NSE -0.050" in note
    assert "training…" in note

    # a hidden view defers; a δ run's log without validation or updates columns still draws
    view.shown = False
    other = store.create("delta")
    other.append_train_log({"epoch": 1, "loss": 1.5, "seconds": 3.0})
    other.update_status(state="training", epoch=1, epochs=3, iters_per_epoch=100)
    state.runs = store.list()
    state.run_id = other.run_id
    assert list(view.source.data["epoch"]) == [1, 2]  # not read while hidden
    view.shown = True
    assert list(view.source.data["updates"]) == [100]
    assert not view.lines["val_NSE"].visible and not view.lines["val_loss"].visible
    assert [i.visible for i in view.figure.legend.items] == [True, False, False]
    # a loss inside one decade still gets labelled ticks
    from explorer.curves import loss_ticks

    assert len([t for t in loss_ticks(1.08, 1.75) if 1.08 <= t <= 1.75]) >= 3
    assert loss_ticks(0.05, 5.0) == [0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0]


def test_a_write_to_a_closed_page_is_one_warning_not_a_traceback(caplog):
    """A tab closed while an update to it is in flight: Panel leaves the failed write's
    exception unretrieved and asyncio would log a traceback; the server loop's handler logs one
    warning instead, and passes every other exception on."""
    import asyncio
    import logging

    from tornado.iostream import StreamClosedError
    from tornado.websocket import WebSocketClosedError

    from explorer.closed_pages import closed_page_handler, quiet_closed_pages

    passed_on = []
    handler = closed_page_handler(lambda loop, context: passed_on.append(context))
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.WARNING, logger="hydrolens.explorer"):
            for exc in (WebSocketClosedError(), StreamClosedError()):
                handler(loop, {"message": "Task exception was never retrieved", "exception": exc})
        assert caplog.text.count("a message to a page that had closed was dropped") == 2
        assert "Traceback" not in caplog.text and passed_on == []
        other = {"message": "Task exception was never retrieved", "exception": ValueError("bug")}
        handler(loop, other)
        assert passed_on == [other]  # a real error still reaches the default handling
    finally:
        loop.close()

    async def install_twice():
        quiet_closed_pages()
        first = asyncio.get_running_loop().get_exception_handler()
        quiet_closed_pages()
        return first, asyncio.get_running_loop().get_exception_handler()

    first, second = asyncio.run(install_twice())
    assert first is not None and second is first  # installed once per loop
    quiet_closed_pages()  # outside a running loop: nothing to do, no error
