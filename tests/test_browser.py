"""The explorer in headless Chromium: the map renders, a click on a basin shows its hydrograph.

Needs Debian's Chromium (``apt-get install chromium`` -> /usr/bin/chromium, or the path in
HYDROLENS_CHROMIUM) driven by the playwright Python package; no browser download.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from test_app import serve_app

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("HYDROLENS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
#: Marker size of a basin on the map (px); two points closer than this may hide each other.
POINT_PX = 12

if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set HYDROLENS_CHROMIUM)",
                allow_module_level=True)

# Screen positions of the basin points, read from the rendered Bokeh map: the plot view's own
# scales turn data coordinates into canvas pixels; the canvas' page offset makes them clickable.
POINTS_JS = """
() => {
  const doc = Bokeh.documents[0];
  const fig = doc.get_model_by_name("hydrolens-map");
  const source = doc.get_model_by_name("hydrolens-basins");
  const view = Bokeh.index.find_one(fig);
  const canvas = view.canvas_view.el.getBoundingClientRect();
  const {x_scale, y_scale, bbox} = view.frame;
  const data = source.data;
  const column = (name) => (data instanceof Map ? data.get(name) : data[name]);
  const basins = column("basin"), xs = column("x"), ys = column("y");
  const points = [];
  for (let i = 0; i < basins.length; i++) {
    points.push({basin: basins[i],
                 x: canvas.left + x_scale.compute(xs[i]),
                 y: canvas.top + y_scale.compute(ys[i])});
  }
  return {points,
          frame: {left: canvas.left + bbox.left, right: canvas.left + bbox.right,
                  top: canvas.top + bbox.top, bottom: canvas.top + bbox.bottom},
          selected: source.selected.indices.map((i) => basins[i])};
}
"""

MAP_READY_JS = """
() => {
  if (!window.Bokeh || !Bokeh.documents.length) return false;
  const fig = Bokeh.documents[0].get_model_by_name("hydrolens-map");
  const view = fig && Bokeh.index.find_one(fig);
  return view != null && view.has_finished();
}
"""

HYDROGRAPH_JS = """
() => {
  const doc = Bokeh.documents[0];
  const fig = doc.get_model_by_name("hydrolens-hydrograph");
  const data = doc.get_model_by_name("hydrolens-series").data;
  const column = (name) => (data instanceof Map ? data.get(name) : data[name]);
  const q = Array.from(column("Q_obs"), (v) => (v == null ? NaN : Number(v)));
  const s = Array.from(column("Q_sim"), (v) => (v == null ? NaN : Number(v)));
  const sum = (a) => a.reduce((acc, v) => (Number.isFinite(v) ? acc + v : acc), 0);
  return {title: fig.title.text, n: q.length, obs_sum: sum(q), sim_sum: sum(s)};
}
"""


@pytest.fixture(scope="module")
def served_app(trained_run, tmp_path_factory):
    """`panel serve explorer/app.py` over the trained run's store."""
    log_path = tmp_path_factory.mktemp("browser_app") / "server.log"
    with serve_app(trained_run.path.parent, log_path) as served:
        yield served


@pytest.fixture(scope="module")
def chromium():
    """Headless Debian Chromium through playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                     headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def app_page(chromium):
    """A fresh page; ``page.errors`` collects console errors and uncaught page errors."""
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.errors = []
    page.on("console",
            lambda m: page.errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(f"page error: {e}"))
    yield page
    page.close()


def open_app(page, url: str) -> None:
    """Load the explorer and wait until the map has rendered."""
    page.goto(url, wait_until="load")
    page.wait_for_function(MAP_READY_JS, timeout=60_000)
    assert page.title() == "HydroLens"


def hydrograph_shows(page, basin: str) -> None:
    """Wait until the hydrograph is titled with `basin` and drawn on screen."""
    page.wait_for_function(
        """(b) => {
          const fig = Bokeh.documents[0].get_model_by_name('hydrolens-hydrograph');
          const view = Bokeh.index.find_one(fig);
          return fig.title.text.startsWith(b) && view != null && view.has_finished()
                 && view.el.getBoundingClientRect().height > 100;
        }""", arg=basin, timeout=20_000)


def screenshot(page, path: Path) -> None:
    """Save a full-page PNG without hover tooltip or focus ring."""
    page.mouse.move(5, 5)
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.wait_for_timeout(500)
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 20_000
    print(f"screenshot: {path}")


def pick_target(points: list[dict], frame: dict, current: list[str]) -> dict | None:
    """The basin to click: not the selected one, inside the plot frame, farthest from the others.

    Returns None when every candidate lies within `POINT_PX` of another point (too crowded).
    """
    def inside(p):
        return frame["left"] + 5 < p["x"] < frame["right"] - 5 and \
            frame["top"] + 5 < p["y"] < frame["bottom"] - 5

    best, best_gap = None, -1.0
    for p in points:
        if p["basin"] in current or not inside(p):
            continue
        gap = min((math.dist((p["x"], p["y"]), (q["x"], q["y"]))
                   for q in points if q is not p), default=math.inf)
        if gap > best_gap:
            best, best_gap = p, gap
    return best if best is not None and best_gap > POINT_PX else None


ZOOM_TO_BASINS_JS = """
() => {
  const doc = Bokeh.documents[0];
  const fig = doc.get_model_by_name("hydrolens-map");
  const data = doc.get_model_by_name("hydrolens-basins").data;
  const column = (name) => (data instanceof Map ? data.get(name) : data[name]);
  const xs = Array.from(column("x")), ys = Array.from(column("y"));
  const pad = 30;  // km
  fig.x_range.setv({start: Math.min(...xs) - pad, end: Math.max(...xs) + pad});
  fig.y_range.setv({start: Math.min(...ys) - pad, end: Math.max(...ys) + pad});
}
"""


def test_click_on_a_basin_shows_its_hydrograph(served_app, app_page, trained_run, tmp_path):
    page = app_page
    open_app(page, served_app.url)
    metrics = trained_run.metrics()
    layout = page.evaluate(POINTS_JS)
    assert sorted(p["basin"] for p in layout["points"]) == sorted(metrics.index)
    assert len(layout["selected"]) == 1  # a default basin is shown on load
    hydrograph_shows(page, layout["selected"][0])

    target = pick_target(layout["points"], layout["frame"], layout["selected"])
    if target is None:  # gauges too close at CONUS scale: zoom to them, as a user would
        page.evaluate(ZOOM_TO_BASINS_JS)
        page.wait_for_function(MAP_READY_JS)
        page.wait_for_timeout(500)
        layout = page.evaluate(POINTS_JS)
        target = pick_target(layout["points"], layout["frame"], layout["selected"])
    assert target is not None, f"no basin point can be clicked unambiguously: {layout}"

    page.mouse.move(target["x"], target["y"])
    page.mouse.click(target["x"], target["y"])
    basin = target["basin"]
    hydrograph_shows(page, basin)

    shown = page.evaluate(HYDROGRAPH_JS)
    assert str(metrics.loc[basin, "gauge_name"]) in shown["title"]
    assert f"NSE {float(metrics.loc[basin, 'NSE']):.2f}" in shown["title"]
    with trained_run.outputs() as ds:
        expected = ds[["Q_obs", "Q_sim"]].sel(basin=basin).load()
    assert shown["n"] == expected.sizes["time"]
    np.testing.assert_allclose(shown["obs_sum"], float(expected["Q_obs"].sum()), rtol=1e-6)
    np.testing.assert_allclose(shown["sim_sum"], float(expected["Q_sim"].sum()), rtol=1e-6)
    assert page.evaluate(POINTS_JS)["selected"] == [basin]

    screenshot(page, tmp_path / "explorer.png")
    assert not page.errors, "\n".join(page.errors)
    served_app.assert_clean_log()


@pytest.fixture(scope="module")
def two_run_store(trained_run, tmp_path_factory):
    """A store holding a copy of the trained run and a newer run that is still training."""
    from core.runs import RunStore

    root = tmp_path_factory.mktemp("two_runs")
    shutil.copytree(trained_run.path, root / trained_run.run_id)
    training = RunStore(root).create("still-training")
    training.update_status(state="training", epoch=0, epochs=3, message="epoch 0/3")
    return root, training


def test_switching_to_an_unevaluated_run_and_back(two_run_store, trained_run, app_page, tmp_path):
    page = app_page
    root, training = two_run_store
    training_id = training.run_id
    with serve_app(root, tmp_path / "server.log") as served:
        open_app(page, served.url)
        run_select = page.locator("select").first
        labels = run_select.evaluate("s => Array.from(s.options, (o) => o.text)")
        assert [label.split(" · ")[0] for label in labels] == [training_id, trained_run.run_id]
        default_basin = page.evaluate(POINTS_JS)["selected"][0]
        hydrograph_shows(page, default_basin)  # the evaluated run is shown first

        run_select.select_option(label=labels[0])
        page.get_by_text("no evaluated run selected").wait_for(timeout=20_000)
        page.get_by_text("has no evaluation yet").wait_for()
        assert page.evaluate(POINTS_JS)["points"] == []
        training.update_status(epoch=1, message="epoch 1/3")  # the page polls the status
        page.get_by_text("(epoch 1/3)").wait_for(timeout=20_000)
        screenshot(page, tmp_path / "training.png")

        run_select.select_option(label=labels[1])
        hydrograph_shows(page, default_basin)
        assert len(page.evaluate(POINTS_JS)["points"]) == len(trained_run.metrics())
        assert not page.errors, "\n".join(page.errors)
        served.assert_clean_log()


def test_corrupt_runs_are_named_and_the_good_run_is_shown(trained_run, app_page, tmp_path):
    """A store with one unreadable run of every kind (bad JSON/YAML, malformed metrics.csv,
    truncated outputs.nc, missing files, ...), all newer than the one good run: the page shows
    the good run's map and hydrograph, lists it alone in the selector, and names every broken run
    with its reason; no page error, no traceback in the server log."""
    from test_reliability import make_store_with_corrupt_runs

    root = tmp_path / "store"
    root.mkdir()
    kinds = make_store_with_corrupt_runs(trained_run, root)
    page = app_page
    with serve_app(root, tmp_path / "server.log") as served:
        open_app(page, served.url)
        labels = page.locator("select").first.evaluate("s => Array.from(s.options, (o) => o.text)")
        assert [label.split(" · ")[0] for label in labels] == [trained_run.run_id]
        layout = page.evaluate(POINTS_JS)
        assert sorted(p["basin"] for p in layout["points"]) == sorted(trained_run.metrics().index)
        hydrograph_shows(page, layout["selected"][0])
        box = page.locator(".hl-corrupt")
        box.wait_for(timeout=20_000)
        text = box.inner_text()
        assert f"{len(kinds) - 1} run(s) cannot be read" in text
        for rid, kind in kinds.items():
            assert (rid + ":" in text) == (kind != "good"), (rid, text)
        assert "\noutputs.nc: not a readable netCDF file" not in text  # paths relative to the run
        assert ": outputs.nc: not a readable netCDF file" in text and ": status.json: not valid JSON" in text
        assert page.evaluate("() => window.__pwned") is None  # the planted <img onerror> stayed text
        assert page.locator(".hl-corrupt img").count() == 0
        screenshot(page, tmp_path / "corrupt_store.png")
        assert not page.errors, "\n".join(page.errors)
        served.assert_clean_log()
