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


def test_map_has_one_point_per_basin_with_its_nse(app, trained_run):
    metrics = trained_run.metrics()
    data = app.map.source.data
    assert list(data["basin"]) == [str(b) for b in metrics.index]
    np.testing.assert_allclose(data["NSE"], metrics["NSE"].to_numpy(float), equal_nan=True)
    np.testing.assert_allclose(data["KGE"], metrics["KGE"].to_numpy(float), equal_nan=True)
    np.testing.assert_allclose(data["gauge_lon"], metrics["gauge_lon"].to_numpy(float))
    assert list(data["gauge_name"]) == metrics["gauge_name"].astype(str).tolist()
    assert np.isfinite(data["x"]).all() and np.isfinite(data["y"]).all()


def test_default_basin_is_the_median_nse_basin_and_hydrograph_is_filled(app, trained_run):
    nse = trained_run.metrics()["NSE"].astype(float).dropna()
    expected = (nse - nse.median()).abs().idxmin()
    assert app.state.basin == expected
    assert app.map.source.selected.indices == [list(app.map.source.data["basin"]).index(expected)]
    assert len(app.hydrograph.source.data["Q_obs"]) > 0
    assert expected in app.hydrograph.figure.title.text


def test_clicking_a_basin_shows_its_streamflow(app, trained_run):
    basins = list(app.map.source.data["basin"])
    target = next(b for b in reversed(basins) if b != app.state.basin)
    app.map.source.selected.indices = [basins.index(target)]  # what a tap on the map sets
    assert app.state.basin == target

    with trained_run.outputs() as ds:
        expected = ds[["Q_obs", "Q_sim"]].sel(basin=target).load()
    data = app.hydrograph.source.data
    np.testing.assert_allclose(data["Q_obs"], expected["Q_obs"].to_numpy(), equal_nan=True)
    np.testing.assert_allclose(data["Q_sim"], expected["Q_sim"].to_numpy(), equal_nan=True)
    assert np.array_equal(np.asarray(data["time"]), expected["time"].to_numpy())

    row = trained_run.metrics().loc[target]
    title = app.hydrograph.figure.title.text
    assert target in title and str(row["gauge_name"]) in title
    for metric in ("NSE", "KGE"):
        value = float(row[metric])
        assert f"{metric} {'—' if math.isnan(value) else f'{value:.2f}'}" in title


def test_a_click_beside_the_points_keeps_the_basin(app):
    basin = app.state.basin
    app.map.source.selected.indices = []
    assert app.state.basin == basin
    assert app.map.source.selected.indices == [list(app.map.source.data["basin"]).index(basin)]


def test_run_panel_lists_runs_newest_first_with_summary(app, trained_run):
    from core.runs import RunStore

    infos = RunStore(trained_run.path.parent).list()
    panel = app.run_panel
    assert list(panel.run_select.options.values()) == [i.run_id for i in infos]
    assert panel.run_select.value == trained_run.run_id
    label = next(k for k, v in panel.run_select.options.items() if v == trained_run.run_id)
    info = trained_run.info()
    assert trained_run.run_id in label and info.variant in label and str(info.n_basins) in label
    html = panel.summary.object
    assert info.state in html and f"{info.median_nse:.2f}" in html
    assert f"{info.epochs_done} / {info.epochs}" in html
    assert set(panel.basin_select.options.values()) == set(app.map.source.data["basin"])
    assert app.state.message == "" and not app.alert.visible


def test_empty_store_shows_a_message(tmp_path):
    from explorer.app import create_app

    app = create_app(runs_root=tmp_path)
    assert app.state.run_id is None
    assert "No runs" in app.state.message and app.alert.visible
    assert len(app.map.source.data["basin"]) == 0
    assert len(app.hydrograph.source.data["Q_obs"]) == 0
    assert app.run_panel.run_select.disabled


# -- a run that is still training -------------------------------------------------------------


def test_run_without_evaluation_shows_its_status(tmp_path):
    from core.runs import RunStore
    from explorer.state import AppState
    from explorer.views import HydrographView, MapView, RunPanel

    store = RunStore(tmp_path)
    run = store.create("training")
    run.update_status(state="training", epoch=2, epochs=10, message="training")
    state = AppState(store=store)
    assert state.run_id == run.run_id
    assert state.metrics is None and state.basin is None
    assert "training" in state.message and "epoch 2/10" in state.message
    assert "no evaluation" in state.message

    map_view, hydrograph, panel = MapView(state), HydrographView(state), RunPanel(state)
    assert len(map_view.source.data["basin"]) == 0
    assert "not evaluated" in map_view.figure.title.text
    assert len(hydrograph.source.data["Q_obs"]) == 0
    assert "training" in panel.summary.object and "2 / 10" in panel.summary.object
    assert panel.basin_select.disabled

    run.update_status(epoch=3)  # the app's periodic poll picks up progress
    state.poll()
    assert "epoch 3/10" in state.message and "3 / 10" in panel.summary.object


def test_conus_outlines_are_offline_and_contiguous():
    from explorer.geometry import albers, conus_states

    states = conus_states()
    assert len(states["name"]) == 49  # 48 contiguous states and DC
    assert "Alaska" not in states["name"] and "Hawaii" not in states["name"]
    x, y = albers([-96.0, -124.7, -67.0], [23.0, 48.4, 44.8])
    assert abs(x[0]) < 1e-6 and abs(y[0]) < 1e-6  # projection origin
    assert x[1] < -2000 and x[2] > 2000  # west and east coasts, km
