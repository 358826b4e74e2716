"""The explorer in headless Chromium, over real runs of the real data root.

What a user does, with a real mouse and keyboard: click a site to see its hydrograph;
box-select sites on the map, launch a training job, watch its progress, see the new run coloured
on the map; cancel a job and find it resumable; read the βᵗ/γᵗ traces; colour the map by a
learned parameter; compare two runs; reopen a view from its URL. Every test also checks that the
page logged no error (and no warning outside `HARMLESS_CONSOLE`) and that the server log has no
traceback (`ServedApp.assert_clean_log`).

Needs Debian's Chromium (``apt-get install chromium`` -> /usr/bin/chromium, or the path in
HYDROLENS_CHROMIUM) driven by the playwright Python package; no browser download. The tests
skip, saying why, when Chromium or the data root is absent.

One server and one browser serve most tests of the module (`main_app`, over a copy of the
session's trained run plus a cheap second run), so later tests see the runs earlier ones trained;
every test opens the page with ``?run=<id>`` where the run matters.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import numpy as np
import pandas as pd
import pytest

from core.runs.outputs import panels_of
from test_app import serve_app

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("HYDROLENS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
#: Marker size of a site of the run on the map (px); two points closer than this may hide each other.
POINT_PX = 12
#: Console messages of type warning that are known and harmless (substrings):
HARMLESS_CONSOLE = (
    # Bokeh: the log-scale twin of the hydrograph (hidden until "log scale Q") is laid out
    # before its data arrives; its DataRange1d falls back to 0.1..10 and recomputes later
    "could not determine minimum data value for log axis",
    "could not determine maximum data value for log axis",
    # Choices.js inside Panel's MultiChoice announces a future default; Panel sets the option
    "allowHTML will default to false",
    # Chromium's software WebGL (no GPU here) reports slow pixel read-backs of the map's
    # WebGL glyphs; a performance note of the driver, not a rendering failure
    "GL Driver Message",
    "GPU stall due to ReadPixels",
)
#: Days of the test period (1995-10-01..2010-09-30) of the demo preset.
TEST_DAYS = 5479

if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set HYDROLENS_CHROMIUM)",
                allow_module_level=True)

# -- JavaScript read-outs of the Bokeh document --------------------------------------------------

# Shared helpers, prepended to the snippets below: a model by name, a source column as a plain
# array (NaN -> null, so Python gets None), whether a model's view has finished drawing.
# BokehJS keeps models that left the page in its document (the series panels are rebuilt when a
# run without panels is shown and then one with them), so a name may be found twice: the model
# with a view on the page is the one shown.
JS_LIB = """
const doc = Bokeh.documents[0];
const model = (name) => {
  try {
    return doc.get_model_by_name(name);
  } catch (e) {
    const all = Array.from(doc._all_models.values()).filter((m) => m.name === name);
    return all.find((m) => Bokeh.index.find_one(m) != null) ?? all[all.length - 1];
  }
};
const column = (source, name) => {
  const data = source.data;
  const col = data instanceof Map ? data.get(name) : data[name];
  return col == null ? null
    : Array.from(col, (v) => (typeof v === "number" && !Number.isFinite(v) ? null : v));
};
const finished = (name) => {
  const m = model(name);
  const view = m && Bokeh.index.find_one(m);
  return view != null && view.has_finished();
};
"""


def js(body: str) -> str:
    """An arrow function ``(arg) => {JS_LIB; body}`` for ``page.evaluate``/``wait_for_function``."""
    return f"(arg) => {{ if (!window.Bokeh || !Bokeh.documents.length) return null; {JS_LIB} {body} }}"


# Screen positions of the sites, read from the rendered Bokeh map: the plot view's own scales turn
# data coordinates into canvas pixels; the canvas' page offset makes them clickable.
POINTS_JS = js("""
  const fig = model("hydrolens-map"), source = model("hydrolens-basins");
  const view = Bokeh.index.find_one(fig);
  const canvas = view.canvas_view.el.getBoundingClientRect();
  const {x_scale, y_scale, bbox} = view.frame;
  const basins = column(source, "site"), xs = column(source, "x"), ys = column(source, "y");
  const inRun = column(source, "in_run"), values = column(source, "value");
  const points = [];
  for (let i = 0; i < basins.length; i++) {
    points.push({site: basins[i], in_run: Boolean(inRun[i]), value: values[i],
                 x: canvas.left + x_scale.compute(xs[i]), y: canvas.top + y_scale.compute(ys[i])});
  }
  return {points,
          frame: {left: canvas.left + bbox.left, right: canvas.left + bbox.right,
                  top: canvas.top + bbox.top, bottom: canvas.top + bbox.bottom},
          selected: source.selected.indices.map((i) => basins[i]),
          current: column(model("hydrolens-current"), "x").length};
""")

MAP_READY_JS = js("return finished('hydrolens-map');")

MAP_STATE_JS = js("""
  const source = model("hydrolens-basins");
  return {title: model("hydrolens-colorbar").title, map_title: model("hydrolens-map").title.text,
          site: column(source, "site"), value: column(source, "value"),
          in_run: column(source, "in_run"), finished: finished("hydrolens-map")};
""")

HYDROGRAPH_JS = js("""
  const fig = model("hydrolens-hydrograph"), source = model("hydrolens-series");
  const sum = (a) => a.reduce((acc, v) => (v == null ? acc : acc + v), 0);
  const q = column(source, "Q_obs"), s = column(source, "Q_sim");
  return {title: fig.title.text, n: q.length, obs_sum: sum(q), sim_sum: sum(s)};
""")

# The time-series panels on screen (name -> has finished drawing); the panels below the
# hydrograph follow the first paint (SeriesView._rebuild), so tests wait for them.
SERIES_PANELS_BODY = """
  const out = {};
  for (const m of Bokeh.documents[0]._all_models.values()) {
    const name = m.name || "";
    if (name !== "hydrolens-hydrograph" && !name.startsWith("hydrolens-panel-")) continue;
    const view = Bokeh.index.find_one(m);
    if (view != null) out[name] = view.has_finished() && view.el.getBoundingClientRect().height > 50;
  }
"""
SERIES_PANELS_JS = js(SERIES_PANELS_BODY + "return out;")
# at least `arg` panels on screen, all drawn
SERIES_PANELS_DRAWN_JS = js(SERIES_PANELS_BODY + """
  const drawn = Object.values(out);
  return drawn.length >= arg && drawn.every(Boolean);
""")

# The hydrograph is titled with `arg` (a site id) and drawn on screen.
HYDROGRAPH_SHOWS_JS = js("""
  const fig = model("hydrolens-hydrograph");
  const view = fig && Bokeh.index.find_one(fig);
  return fig != null && fig.title.text.startsWith(arg) && view != null && view.has_finished()
         && view.el.getBoundingClientRect().height > 100;
""")

TRACES_JS = js("""
  const source = model("hydrolens-traces");
  if (source == null) return null;
  const figs = ["BETA", "GAMMA", "context"].map((n) => "hydrolens-trace-" + n);
  return {time: column(source, "time"), BETA: column(source, "BETA"),
          GAMMA: column(source, "GAMMA"), SM: column(source, "SM"), P: column(source, "P"),
          finished: figs.every(finished)};
""")

# Zoom the map to the sites of the run (as a user would with the wheel), `arg` km... metres of pad.
ZOOM_TO_RUN_JS = js("""
  const fig = model("hydrolens-map"), source = model("hydrolens-basins");
  const inRun = column(source, "in_run");
  const xs = column(source, "x").filter((_, i) => inRun[i]);
  const ys = column(source, "y").filter((_, i) => inRun[i]);
  fig.x_range.setv({start: Math.min(...xs) - arg, end: Math.max(...xs) + arg});
  fig.y_range.setv({start: Math.min(...ys) - arg, end: Math.max(...ys) + arg});
""")

ACTIVE_TOOLS_JS = js("""
  return model("hydrolens-map").toolbar.tools.filter((t) => t.active).map((t) => t.type);
""")


# -- fixtures ------------------------------------------------------------------------------------


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
    """A fresh page; ``page.errors`` collects console errors, unexpected console warnings
    (anything not in `HARMLESS_CONSOLE`) and uncaught page errors."""
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.errors = []

    def on_console(message):
        if message.type == "error" or (message.type == "warning" and not any(
                known in message.text for known in HARMLESS_CONSOLE)):
            page.errors.append(f"console {message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda e: page.errors.append(f"page error: {e}"))
    yield page
    page.close()


def copy_run(run, root: Path, run_id: str | None = None) -> Path:
    """Copy a run directory into the store `root` (under `run_id`, default its own id)."""
    dst = root / (run_id or run.run_id)
    shutil.copytree(run.path, dst, ignore=shutil.ignore_patterns(".lock", "*.lock"))
    return dst


@pytest.fixture(scope="module")
def main_store(trained_run, data_root, tmp_path_factory):
    """A store of the module's own: a copy of the trained run (jobs launched from the page must
    not touch the session's store) and a second evaluated run for the comparison view: the same
    files under another id, with every NSE lowered by 0.1 (the views only read metrics.csv) and
    created earlier, so the trained run stays the newest. Jobs still running at the end are
    cancelled and waited for."""
    from core.jobs import JobRunner

    root = tmp_path_factory.mktemp("browser_store")
    copy_run(trained_run, root)
    other = copy_run(trained_run, root, f"{trained_run.run_id}-b")
    metrics = pd.read_csv(other / "metrics.csv", dtype={"site": str})
    metrics["NSE"] = metrics["NSE"] - 0.1
    metrics.to_csv(other / "metrics.csv", index=False)
    status = json.loads((other / "status.json").read_text())
    status["created"] = "2000-01-01T00:00:00+00:00"
    (other / "status.json").write_text(json.dumps(status))
    yield root
    runner = JobRunner(root)
    live = [j for j in runner.jobs(pump=False) if not j.final]
    for job in live:
        try:
            runner.cancel(job.job_id)
        except Exception:  # noqa: BLE001 - it ended meanwhile
            pass
    if live:
        runner.wait([j.job_id for j in live], poll=0.5, timeout=120)


@pytest.fixture(scope="module")
def main_app(main_store, data_root, tmp_path_factory):
    """`panel serve explorer/app.py` over `main_store`, with HYDROLENS_DATA_ROOT set (the map's
    sites and the jobs' training data)."""
    log_path = tmp_path_factory.mktemp("browser_app") / "server.log"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HYDROLENS_DATA_ROOT", str(data_root))
        with serve_app(main_store, log_path) as served:
            yield served


@pytest.fixture(scope="module")
def seconds_per_iteration(trained_run) -> float:
    """Seconds of one training iteration of the demo preset on 5 sites on this machine (from the
    trained run's log), to size jobs that run long enough to be watched but no longer."""
    log = trained_run.train_log()
    return float(log["seconds"].iloc[-1]) / int(trained_run.status()["iters_per_epoch"])


# -- page helpers ----------------------------------------------------------------------------------


def url_with(served, **query) -> str:
    return f"{served.url}?{urlencode(query)}" if query else served.url


def open_app(page, url: str) -> None:
    """Load the explorer and wait until the map has rendered."""
    page.goto(url, wait_until="load")
    page.wait_for_function(MAP_READY_JS, timeout=60_000)
    assert page.title() == "HydroLens"


def assert_clean(page, served) -> None:
    """No page error or unexpected console message; no error in the server log."""
    assert not page.errors, "\n".join(page.errors)
    served.assert_clean_log()


def hydrograph_shows(page, basin: str, timeout: float = 20_000) -> None:
    """Wait until the hydrograph is titled with `basin` and drawn on screen."""
    page.wait_for_function(HYDROGRAPH_SHOWS_JS, arg=basin, timeout=timeout)


def open_tab(page, label: str) -> None:
    """Click a tab (main or workbench) by its label."""
    tab = page.locator(".bk-tab", has_text=label)
    tab.click()
    page.wait_for_function("(t) => t.classList.contains('bk-active')", arg=tab.element_handle(),
                           timeout=10_000)


def labelled(page, label: str):
    """The input group (label + widget) of a Panel widget named `label`."""
    return page.locator(".bk-input-group").filter(has=page.get_by_text(label, exact=True))


def quantity_select(page):
    return labelled(page, "Colour the map by").locator("select")


def run_select(page):
    return labelled(page, "Run").locator("select")


def chosen(select) -> str:
    """The text of a select's chosen option, up to the first " · " (a run or site id)."""
    return select.evaluate("s => s.options[s.selectedIndex].text").split(" · ")[0]


def pick_count(page) -> int:
    return int(page.locator("b[data-count]").get_attribute("data-count"))


def wait_pick_count(page, n: int, timeout: float = 45_000) -> None:
    """Wait until the workbench says `n` sites are picked.

    The server may still be busy with a previous test's session (a finished job's run being
    loaded), hence the generous timeout; on a timeout the message names what the page showed.
    """
    try:
        page.locator(f'b[data-count="{n}"]').wait_for(timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - re-raised with what the page showed
        def read(fn):  # Playwright's locators see into Panel's shadow roots
            try:
                return fn()
            except Exception as e:  # noqa: BLE001
                return f"<{type(e).__name__}>"
        shown = {"count": read(lambda: page.locator("b[data-count]").first.get_attribute("data-count",
                                                                                        timeout=2000)),
                 "ids": read(lambda: page.locator("textarea").first.input_value(timeout=2000)),
                 "feedback": read(lambda: page.locator(".hl-muted").all_inner_texts()[:6]),
                 "tabs": read(lambda: page.locator(".bk-tab.bk-active").all_inner_texts())}
        raise AssertionError(f"pick count never became {n} within {timeout / 1000:.0f} s; "
                             f"the page showed {shown}") from exc


def set_number(page, label: str, value: int) -> None:
    """Type a number into a Panel IntInput and commit it (Enter)."""
    box = labelled(page, label).locator("input")
    box.fill(str(value))
    box.press("Enter")
    box.blur()


def query(page) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlparse(page.url).query).items()}


def wait_map_values(page, expected: dict[str, float], title: str, timeout: float = 30_000) -> dict:
    """Wait until the map's colour bar reads `title` and its `value` column holds `expected`
    (site -> value; NaN elsewhere); return the map state."""
    deadline = time.monotonic() + timeout / 1000
    while True:
        state = page.evaluate(MAP_STATE_JS)
        values = dict(zip(state["site"], state["value"]))
        ok = state["title"] == title and state["finished"] and all(
            values.get(b) is not None and math.isclose(values[b], v, rel_tol=1e-5, abs_tol=1e-6)
            for b, v in expected.items() if np.isfinite(v))
        ok = ok and all(v is None for b, v in values.items() if b not in expected)
        if ok:
            return state
        if time.monotonic() > deadline:
            got = {b: values.get(b) for b in expected}
            raise AssertionError(f"map shows {state['title']!r} {got}; expected {title!r} {expected}")
        page.wait_for_timeout(200)


def pick_target(points: list[dict], frame: dict, current: str | None) -> dict | None:
    """A site of the run to click: not `current`, inside the plot frame, farthest from every
    other point (of the run or not). None when each lies within `POINT_PX` of another."""
    def inside(p):
        return frame["left"] + 8 < p["x"] < frame["right"] - 8 and \
            frame["top"] + 8 < p["y"] < frame["bottom"] - 8

    best, best_gap = None, -1.0
    for p in points:
        if not p["in_run"] or p["site"] == current or not inside(p):
            continue
        gap = min((math.dist((p["x"], p["y"]), (q["x"], q["y"]))
                   for q in points if q is not p), default=math.inf)
        if gap > best_gap:
            best, best_gap = p, gap
    return best if best is not None and best_gap > POINT_PX else None


def box_around_sites(points: list[dict], frame: dict, want: tuple[int, int] = (5, 15),
                     margin: float = 6.0) -> tuple[dict, list[str]] | None:
    """A screen rectangle holding between want[0] and want[1] sites, none of them within
    `margin` px of its edges (so the selection does not hinge on a pixel), inside the frame.
    Fewest sites first (a small training job). Returns (rect, sites inside) or None."""
    inner = [p for p in points if frame["left"] + 20 < p["x"] < frame["right"] - 20
             and frame["top"] + 20 < p["y"] < frame["bottom"] - 20]
    best = None
    for c in inner:
        for half in (12, 16, 20, 25, 30, 36, 44, 52, 60):
            r = {"left": c["x"] - half, "right": c["x"] + half,
                 "top": c["y"] - half, "bottom": c["y"] + half}
            if r["left"] < frame["left"] + 4 or r["right"] > frame["right"] - 4 or \
                    r["top"] < frame["top"] + 4 or r["bottom"] > frame["bottom"] - 4:
                break
            near_edge = any(
                (r["left"] - margin < p["x"] < r["right"] + margin
                 and r["top"] - margin < p["y"] < r["bottom"] + margin)
                and not (r["left"] + margin < p["x"] < r["right"] - margin
                         and r["top"] + margin < p["y"] < r["bottom"] - margin)
                for p in points)
            if near_edge:
                continue
            inside = [p["site"] for p in points
                      if r["left"] < p["x"] < r["right"] and r["top"] < p["y"] < r["bottom"]]
            if want[0] <= len(inside) <= want[1] and (best is None or len(inside) < len(best[1])):
                best = (r, inside)
            if len(inside) > want[1]:
                break
        if best is not None and len(best[1]) == want[0]:
            break
    return best


def drag(page, rect: dict) -> None:
    """Drag the mouse from the rectangle's top-left corner to its bottom-right one."""
    page.mouse.move(rect["left"], rect["top"])
    page.mouse.down()
    page.mouse.move((rect["left"] + rect["right"]) / 2, (rect["top"] + rect["bottom"]) / 2, steps=5)
    page.mouse.move(rect["right"], rect["bottom"], steps=5)
    page.mouse.up()


def type_ids(page, ids: list[str]) -> None:
    """Type gauge ids into the workbench's id box and press "Add ids"."""
    box = page.locator("textarea")
    box.fill(", ".join(ids))
    box.blur()
    page.get_by_role("button", name="Add ids").click()


def add_ids(page, served, ids: list[str], attempts: int = 3) -> None:
    """Type ``ids`` and press "Add ids" until the workbench counts them (adding is idempotent:
    the picks are a set), as a user would press again; fails with what the page and the server
    log showed after ``attempts``. CI saw the count stay put (and "added 5 site(s)" shown) when
    the click arrived while the text's change was pending: Panel ran the handler without the
    document lock and the map's Bokeh selection raised in the middle of the state's watchers;
    ``explorer.state.on_click`` now runs every handler under the lock. A press the page drops
    before it is connected is still retried."""
    for attempt in range(attempts):
        type_ids(page, ids)
        try:
            wait_pick_count(page, len(ids), timeout=20_000)
            if attempt:
                print(f"the ids were counted after {attempt + 1} presses of Add ids")
            return
        except AssertionError as e:
            last = e
    raise AssertionError(f"{last}\nserver log tail:\n{served.log()[-3000:]}")


def job_ids(page) -> list[str]:
    return [h.get_attribute("data-job") for h in page.locator(".hl-job-head").all()]


def job_head(page, job_id: str):
    return page.locator(f'.hl-job-head[data-job="{job_id}"]')


def job_card(page, job_id: str):
    return page.locator(".hl-job").filter(has=job_head(page, job_id))


def job_progress(page, job_id: str) -> tuple[str, float]:
    """(state, fraction) of a job as its card shows them."""
    state = job_head(page, job_id).get_attribute("data-state")
    fraction = job_card(page, job_id).locator(".hl-job-progress").get_attribute("data-fraction")
    return state, float(fraction)


def wait_job_state(page, job_id: str, states: tuple[str, ...], timeout: float) -> str:
    """Wait until the job's card shows one of `states`; fail early on another final state."""
    deadline = time.monotonic() + timeout
    while True:
        state = job_head(page, job_id).get_attribute("data-state")
        if state in states:
            return state
        if state in ("done", "failed", "cancelled"):
            log = job_card(page, job_id).locator("pre, .bk-pane").all_inner_texts()
            raise AssertionError(f"job {job_id} ended {state}, expected {states}: {log}")
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {state} after {timeout:.0f} s")
        page.wait_for_timeout(500)


def launch_job(page, sites_shown: int, epochs: int, iterations: int) -> str:
    """Set epochs and iterations in the Launch tab, press Launch; return the new job's id."""
    open_tab(page, "Launch")
    set_number(page, "Epochs", epochs)
    set_number(page, "Iterations/epoch", iterations)
    before = set(job_ids(page))
    button = page.get_by_role("button", name=f"Launch training on {sites_shown} site(s)")
    button.click()
    # the app switches to the Jobs tab, where the new job is listed first
    deadline = time.monotonic() + 30
    while True:
        new = [j for j in job_ids(page) if j not in before]
        if new:
            assert page.locator(".bk-tab.bk-active", has_text="Jobs").count() == 1
            return new[0]
        assert time.monotonic() < deadline, "no new job card after Launch"
        page.wait_for_timeout(250)


# -- tests -----------------------------------------------------------------------------------------


def test_click_on_a_site_shows_its_hydrograph(main_app, app_page, trained_run):
    page = app_page
    open_app(page, url_with(main_app, run=trained_run.run_id))
    metrics = trained_run.metrics()
    layout = page.evaluate(POINTS_JS)
    assert len(layout["points"]) >= 400  # every site of the data root (432 CAMELS basins)
    assert sorted(p["site"] for p in layout["points"] if p["in_run"]) == sorted(metrics.index)
    assert layout["current"] == 1  # the default site is ringed ...
    default = chosen(labelled(page, "Site").locator("select"))
    hydrograph_shows(page, default)  # ... and shown below

    target = pick_target(layout["points"], layout["frame"], default)
    if target is None:  # sites too close at CONUS scale: zoom to the run's, as a user would
        page.evaluate(ZOOM_TO_RUN_JS, 60_000)
        page.wait_for_function(MAP_READY_JS)
        page.wait_for_timeout(500)
        layout = page.evaluate(POINTS_JS)
        target = pick_target(layout["points"], layout["frame"], default)
    assert target is not None, f"no site of the run can be clicked unambiguously: {layout['frame']}"

    page.mouse.move(target["x"], target["y"])
    page.mouse.click(target["x"], target["y"])
    basin = target["site"]
    hydrograph_shows(page, basin)

    shown = page.evaluate(HYDROGRAPH_JS)
    assert str(metrics.loc[basin, "gauge_name"]) in shown["title"]
    # every panel of the run is on the page and drawn, those held back from the first paint too
    with trained_run.outputs() as ds:
        names = {"hydrolens-hydrograph" if "Q_sim" in p["variables"]
                 else f"hydrolens-panel-{p['variables'][0]}" for p in panels_of(ds)}
    page.wait_for_function(SERIES_PANELS_DRAWN_JS, arg=len(names), timeout=20_000)
    assert set(page.evaluate(SERIES_PANELS_JS)) == names
    assert f"NSE {float(metrics.loc[basin, 'NSE']):.2f}" in shown["title"]
    with trained_run.outputs() as ds:
        expected = ds[["Q_obs", "Q_sim"]].sel(site=basin).load()
    assert shown["n"] == expected.sizes["time"] == TEST_DAYS
    np.testing.assert_allclose(shown["obs_sum"], float(expected["Q_obs"].sum()), rtol=1e-5)
    np.testing.assert_allclose(shown["sim_sum"], float(expected["Q_sim"].sum()), rtol=1e-5)
    assert page.evaluate(POINTS_JS)["selected"] == [basin]
    page.wait_for_function("(b) => window.location.search.includes('site=' + b)", arg=basin,
                           timeout=10_000)
    assert_clean(page, main_app)


def test_traces_show_the_daily_beta_and_gamma_of_the_site(main_app, app_page, trained_run):
    import xarray as xr

    page = app_page
    open_app(page, url_with(main_app, run=trained_run.run_id))
    open_tab(page, "βᵗ/γᵗ traces")
    page.wait_for_function(js("const t = model('hydrolens-traces'); return t != null && "
                              "column(t, 'time').length > 0 && ['BETA', 'GAMMA', 'context']"
                              ".every((n) => finished('hydrolens-trace-' + n));"), timeout=30_000)
    traces = page.evaluate(TRACES_JS)
    site = chosen(labelled(page, "Site").locator("select"))
    assert len(traces["time"]) == TEST_DAYS
    with xr.open_dataset(trained_run.path / "parameters.nc") as ds:
        expected = {n: ds[n].sel(site=site).to_numpy() for n in ("BETA", "GAMMA")}
        times = ds["time"].to_numpy()
    for name in ("BETA", "GAMMA"):
        shown = np.array(traces[name], dtype=float)
        assert shown.shape == (TEST_DAYS,), name
        assert np.isfinite(shown).all() and shown.std() > 0, f"{name}ᵗ does not vary: {shown[:5]}"
        for i in (0, 1, 365, 2000, TEST_DAYS - 1):
            assert abs(shown[i] - float(expected[name][i])) <= 1e-5, (name, i)
    # days in ms since the epoch, as Bokeh's datetime axis has them
    assert traces["time"][0] == pytest.approx(times[0].astype("datetime64[ms]").astype(float))
    assert traces["time"][-1] == pytest.approx(times[-1].astype("datetime64[ms]").astype(float))
    assert traces["SM"] is not None and traces["P"] is not None  # context panel
    assert site in page.locator(".hl-view-title").first.inner_text()
    assert query(page).get("view") == "traces"
    assert_clean(page, main_app)


# Title text of a scatter and the height its title takes on the page (0: not laid out).
_SCATTER_TITLE = """
  const fig = model(arg), view = fig == null ? null : Bokeh.index.find_one(fig);
  const tv = view == null ? null : view.views.find_one(fig.title);
  const r = {text: fig == null ? "" : fig.title.text, height: tv == null ? 0 : tv.bbox.height,
             finished: finished(arg)};
"""
SCATTER_TITLE_JS = js(_SCATTER_TITLE + "return r;")
SCATTER_TITLED_JS = js(_SCATTER_TITLE + "return r.finished && r.text.includes(' r = ') && r.height > 10;")


def test_signature_scatters_are_titled_with_pearson_r(main_app, app_page, trained_run):
    """The BFI and ET scatters (built when their tab first opens) show r and n in a title that
    is laid out on the page."""
    from core.metrics import pcc

    page = app_page
    open_app(page, url_with(main_app, run=trained_run.run_id))
    open_tab(page, "Signatures: BFI and ET")
    m = trained_run.metrics()
    for name, (x, y) in {"hydrolens-bfi-scatter": ("BFI_camels", "BFI_sim"),
                         "hydrolens-et-scatter": ("P_minus_Q", "ET_mean")}.items():
        page.wait_for_function(SCATTER_TITLED_JS, arg=name, timeout=20_000)
        shown = page.evaluate(SCATTER_TITLE_JS, name)
        n = int((m[x].notna() & m[y].notna()).sum())
        assert f"r = {pcc(m[x], m[y], min_pairs=3):.2f}" in shown["text"] and f"n = {n}" in shown["text"], shown
    assert_clean(page, main_app)


def test_map_quantity_switch_to_a_learned_parameter(main_app, app_page, trained_run):
    import xarray as xr

    page = app_page
    open_app(page, url_with(main_app, run=trained_run.run_id))
    metrics = trained_run.metrics()
    wait_map_values(page, metrics["NSE"].astype(float).to_dict(), "NSE")
    select = quantity_select(page)
    labels = select.evaluate("s => Array.from(s.options, (o) => o.text)")
    fc = next(label for label in labels if label.startswith("FC"))
    select.select_option(label=fc)
    with xr.open_dataset(trained_run.path / "parameters.nc") as ds:
        expected = {str(b): float(v) for b, v in zip(ds["site"].values, ds["FC"].values)}
        units = ds["FC"].attrs.get("units")
    state = wait_map_values(page, expected, fc)
    assert "FC" in state["title"] and "mm" in state["title"] and units == "mm"
    assert state["map_title"].startswith(fc)
    page.wait_for_function("() => window.location.search.includes('q=param')", timeout=10_000)
    assert query(page)["q"] == "param:FC"
    assert_clean(page, main_app)


def test_comparison_of_two_runs(main_app, main_store, app_page, trained_run):
    from core.runs import RunStore

    page = app_page
    other = f"{trained_run.run_id}-b"
    open_app(page, url_with(main_app, run=trained_run.run_id))
    open_tab(page, "Compare runs")
    picker = labelled(page, "Runs to compare")
    for rid in (trained_run.run_id, other):  # open the picker's list, click the run
        picker.locator(".choices input[type=search]").click()
        picker.locator(".choices__list--dropdown .choices__item--choice").filter(
            has_text=rid + " ").first.click()
        page.keyboard.press("Escape")
    names = [f"cdf-{trained_run.run_id}", f"cdf-{other}"]
    page.wait_for_function(js("""
      const fig = model("hydrolens-nse-cdf");
      const have = fig.renderers.map((r) => r.name);
      return arg.every((n) => have.includes(n)) && finished("hydrolens-nse-cdf");"""),
                           arg=names, timeout=30_000)
    rows = page.locator(".hl-compare-table tbody tr")
    rows.nth(1).wait_for(timeout=10_000)
    assert rows.count() == 2
    text = rows.all_inner_texts()
    store = RunStore(main_store)
    for row, rid in zip(text, (trained_run.run_id, other)):
        median = float(np.nanmedian(store.get(rid).metrics()["NSE"].astype(float)))
        assert rid in row and f"{median:.2f}" in row, (row, median)
    # the ΔNSE map of the two runs: run 2 − run 1 = −0.1 everywhere
    page.wait_for_function(js("return finished('hydrolens-dnse-map');"), timeout=30_000)
    dnse = page.evaluate(js("return column(model('hydrolens-dnse-sites'), 'dNSE');"))
    assert len(dnse) == len(trained_run.metrics())
    finite = [v for v in dnse if v is not None]
    assert finite and np.allclose(finite, -0.1, atol=1e-5), dnse
    for name in ("hydrolens-nse-cdf", "hydrolens-dnse-map"):  # titles laid out on the page
        page.wait_for_function(js(_SCATTER_TITLE + "return r.finished && r.height > 10;"), arg=name,
                               timeout=10_000)
    assert "median -0.100" in page.evaluate(SCATTER_TITLE_JS, "hydrolens-dnse-map")["text"]
    page.wait_for_function("() => window.location.search.includes('compare=')", timeout=10_000)
    assert_clean(page, main_app)


CURVES_JS = js("""
  const src = model("hydrolens-curves");
  if (src == null) return null;
  const loss = column(src, "loss");
  return loss && loss.length ? {epoch: column(src, "epoch"), loss: loss, updates: column(src, "updates")} : null;
""")


def test_learning_curves_tab_draws_the_runs_training_log(main_app, app_page, trained_run):
    page = app_page
    open_app(page, url_with(main_app, run=trained_run.run_id))
    open_tab(page, "Learning curves")
    # generous, like wait_pick_count: the server may still be busy with a previous test's session
    got = page.wait_for_function(CURVES_JS, timeout=45_000).json_value()
    log = trained_run.train_log()
    assert got["epoch"] == [float(e) for e in log["epoch"]]
    np.testing.assert_allclose(got["loss"], log["loss"].to_numpy(float), rtol=1e-6)
    assert all(u > 0 for u in got["updates"])
    note = page.locator(".hl-curves-note")
    assert note.get_attribute("data-epochs") == str(len(log))
    assert "updates/s" in note.inner_text() and trained_run.run_id in note.inner_text()
    assert "view=curves" in page.url  # the link opens this tab
    assert_clean(page, main_app)


def test_url_state_opens_the_same_view(main_app, app_page, trained_run):
    """A link with run, site, map quantity and tab reopens that view; changing the view in the
    page updates the link; reloading it shows the same again. The site has a leading zero (all
    gauge ids are 8 digits): Panel reads digit-only query values as numbers."""
    from explorer.state import default_basin

    page = app_page
    metrics = trained_run.metrics()
    default = default_basin(metrics)
    site = next(b for b in sorted(metrics.index) if b.startswith("0") and b != default)
    open_app(page, url_with(main_app, run=trained_run.run_id, site=site, q="KGE", view="traces"))
    assert chosen(run_select(page)) == trained_run.run_id
    assert chosen(labelled(page, "Site").locator("select")) == site
    assert chosen(quantity_select(page)) == "KGE"
    wait_map_values(page, metrics["KGE"].astype(float).to_dict(), "KGE")
    assert page.locator(".bk-tab.bk-active", has_text="βᵗ/γᵗ traces").count() == 1
    page.locator(".hl-view-title", has_text=site).first.wait_for(timeout=20_000)
    with _open_parameters(trained_run) as ds:
        beta = ds["BETA"].sel(site=site).to_numpy()
    page.wait_for_function(js("const t = model('hydrolens-traces'); return t != null && "
                              "column(t, 'BETA').length > 0;"), timeout=20_000)
    shown = np.array(page.evaluate(TRACES_JS)["BETA"], dtype=float)
    np.testing.assert_allclose(shown[:50], beta[:50], atol=1e-5)  # the site's own traces
    # the ringed site on the map is this one
    ring = page.evaluate(js("return column(model('hydrolens-current'), 'x');"))
    state = page.evaluate(js("const s = model('hydrolens-basins'); "
                             "return column(s, 'x')[column(s, 'site').indexOf(arg)];"), site)
    assert ring == [pytest.approx(state)]

    open_tab(page, "Time series")
    hydrograph_shows(page, site)
    page.wait_for_function("() => window.location.search.includes('view=series')", timeout=10_000)
    quantity_select(page).select_option(label="NSE")
    wait_map_values(page, metrics["NSE"].astype(float).to_dict(), "NSE")
    page.wait_for_function("() => new URLSearchParams(window.location.search).get('q') === 'NSE'",
                           timeout=10_000)
    q = query(page)
    assert q["run"] == trained_run.run_id and q["view"] == "series"
    # Panel rewrites the untouched keys of the query from their parsed values, so the site may
    # read 1022500 for 01022500 by now; the app restores the id when the link is opened
    assert q["site"].zfill(8) == site

    page.reload(wait_until="load")
    page.wait_for_function(MAP_READY_JS, timeout=60_000)
    hydrograph_shows(page, site)
    assert chosen(labelled(page, "Site").locator("select")) == site
    assert chosen(quantity_select(page)) == "NSE"
    assert page.locator(".bk-tab.bk-active", has_text="Time series").count() == 1
    # a link with a parameter's bare name (q=FC, as a user types it) maps that parameter
    open_app(page, url_with(main_app, run=trained_run.run_id, site=site, q="FC"))
    wait_map_values(page, trained_run.site_parameters()["FC"].astype(float).to_dict(), "FC (mm)")
    assert chosen(quantity_select(page)) == "FC (mm)"
    page.wait_for_function("() => new URLSearchParams(window.location.search).get('q') === 'param:FC'",
                           timeout=10_000)
    assert_clean(page, main_app)


def _open_parameters(run):
    import xarray as xr

    return xr.open_dataset(run.path / "parameters.nc")


def test_box_select_launch_progress_and_the_new_run_on_the_map(
        main_app, main_store, app_page, trained_run, seconds_per_iteration):
    from core.runs import RunStore

    page = app_page
    open_app(page, url_with(main_app, run=trained_run.run_id))
    assert pick_count(page) == 0

    # box-select sites with the map's own tool
    page.locator(".bk-tool-icon-box-select").click()
    assert "BoxSelectTool" in page.evaluate(ACTIVE_TOOLS_JS)
    layout = page.evaluate(POINTS_JS)
    found = box_around_sites(layout["points"], layout["frame"])
    assert found is not None, "no map region with 5-15 well separated sites"
    rect, inside = found
    drag(page, rect)
    wait_pick_count(page, len(inside))
    assert sorted(page.evaluate(POINTS_JS)["selected"]) == sorted(inside)
    # the list and the count are two updates of the page: wait for the whole list too
    page.locator(".hl-picklist li").nth(len(inside) - 1).wait_for(timeout=15_000)
    picked = page.locator(".hl-picklist li").all_inner_texts()
    assert sorted(t.split()[0] for t in picked) == sorted(inside)

    sites = inside
    if len(inside) > 5:  # keep the job small: the first five of them, typed
        page.get_by_role("button", name="Clear picks").click()
        wait_pick_count(page, 0)
        sites = sorted(inside)[:5]
        add_ids(page, main_app, sites)

    # a job long enough to watch (~25 s of training at the trained run's pace; that run may
    # have been timed on a busier machine than this job gets, so with a margin) but no longer
    iterations = int(min(300, max(10, math.ceil(25 / seconds_per_iteration * 5 / len(sites)))))
    job = launch_job(page, len(sites), epochs=1, iterations=iterations)
    wait_job_state(page, job, ("running",), timeout=60)
    fractions = []
    deadline = time.monotonic() + 240
    while True:
        state, fraction = job_progress(page, job)
        if state != "running" or time.monotonic() > deadline:
            break
        if 0 < fraction < 1 and (not fractions or fraction != fractions[-1]):
            fractions.append(fraction)
        page.wait_for_timeout(400)
    print(f"job {job}: {len(sites)} sites x {iterations} iterations; progress seen {fractions}")
    assert len(fractions) >= 2 and fractions == sorted(fractions), \
        f"progress not seen increasing while running: {fractions}"
    wait_job_state(page, job, ("done",), timeout=240)
    assert job_progress(page, job)[1] == 1.0
    assert job_card(page, job).get_by_role("button", name="Show run").is_visible()

    run_id = job_head(page, job).locator("code").first.inner_text()
    store = RunStore(main_store)
    new = store.get(run_id)
    assert new.status()["state"] == "done"
    metrics = new.metrics()
    assert sorted(metrics.index) == sorted(sites)
    # the page selects the run its job trained, and colours the map by its NSE
    page.wait_for_function("(r) => new URLSearchParams(window.location.search).get('run') === r",
                           arg=run_id, timeout=30_000)
    labels = run_select(page).evaluate("s => Array.from(s.options, (o) => o.text)")
    assert run_id in [label.split(" · ")[0] for label in labels]
    assert chosen(run_select(page)) == run_id
    state = wait_map_values(page, metrics["NSE"].astype(float).to_dict(), "NSE")
    assert sorted(b for b, m in zip(state["site"], state["in_run"]) if m) == sorted(sites)
    assert run_id in state["map_title"]
    assert_clean(page, main_app)


def test_add_ids_pressed_while_the_typed_text_is_still_pending(main_app, app_page, trained_run):
    """The text's change and the click sent back to back (as a fast user, or a busy server, does):
    Panel gets the click while the change is still pending and runs the handler off the document
    lock; the picks must still be counted, shown on the map and the scatters, with no server
    error (the map's Bokeh selection raised there before ``explorer.state.on_click``)."""
    page = app_page
    open_app(page, url_with(main_app, run=trained_run.run_id))
    open_tab(page, "Signatures: BFI and ET")  # the scatters (and their source) reach the page
    page.wait_for_function(SCATTER_TITLED_JS, arg="hydrolens-bfi-scatter", timeout=20_000)
    sites = sorted(trained_run.metrics().index)[:3]
    box = page.locator("textarea").element_handle()
    button = page.get_by_role("button", name="Add ids").element_handle()
    page.evaluate("""([box, button, text]) => {
        box.value = text;
        box.dispatchEvent(new Event("change"));  // BokehJS sends the text's change ...
        button.click();                          // ... and the click in the same task
    }""", [box, button, ", ".join(sites)])
    wait_pick_count(page, len(sites), timeout=20_000)
    assert sorted(page.evaluate(POINTS_JS)["selected"]) == sites
    page.wait_for_function(js("""const s = model("hydrolens-signatures");
                                  return s != null && s.selected.indices.length === arg;"""),
                           arg=len(sites), timeout=10_000)
    assert_clean(page, main_app)


def test_cancel_leaves_a_resumable_run(main_app, main_store, app_page, trained_run,
                                       seconds_per_iteration):
    from core.runs import RunStore

    page = app_page
    open_app(page, url_with(main_app, run=trained_run.run_id))
    sites = sorted(trained_run.metrics().index)
    add_ids(page, main_app, sites)
    iterations = int(min(300, max(10, math.ceil(12 / seconds_per_iteration))))
    job = launch_job(page, len(sites), epochs=3, iterations=iterations)
    wait_job_state(page, job, ("running",), timeout=60)
    deadline = time.monotonic() + 120
    while job_progress(page, job)[1] <= 0:
        assert time.monotonic() < deadline, "no progress within 120 s"
        page.wait_for_timeout(300)
    card = job_card(page, job)
    card.get_by_role("button", name="Cancel").click()
    wait_job_state(page, job, ("cancelled",), timeout=90)
    resume = card.get_by_role("button", name="Resume")
    resume.wait_for(state="visible", timeout=10_000)
    assert not card.get_by_role("button", name="Cancel").is_visible()

    run_id = card.locator(".hl-job-head code").first.inner_text()
    run = RunStore(main_store).get(run_id)
    status = run.status()
    assert status["state"] == "failed", status
    assert "stopped" in status["message"] and f"--resume {run_id}" in status["message"], status
    epochs_done = int(status.get("epoch") or 0)
    print(f"job {job} cancelled after {epochs_done} epoch(s) of 3 x {iterations} iterations")
    assert epochs_done < 3
    if epochs_done:  # an epoch finished before the cancel: its checkpoint survives
        assert (run.path / "checkpoints").is_dir() and any((run.path / "checkpoints").iterdir())
        assert len(run.train_log()) == epochs_done

    # resume: a new job for the same run is queued or running; cancel it again
    before = set(job_ids(page))
    resume.click()
    deadline = time.monotonic() + 30
    while not (new := [j for j in job_ids(page) if j not in before]):
        assert time.monotonic() < deadline, "no job after Resume"
        page.wait_for_timeout(250)
    again = new[0]
    assert job_head(page, again).get_attribute("data-state") in ("queued", "running")
    assert job_card(page, again).locator(".hl-job-head code").first.inner_text() == run_id
    job_card(page, again).get_by_role("button", name="Cancel").click()
    wait_job_state(page, again, ("cancelled",), timeout=90)
    assert_clean(page, main_app)


# -- other stores ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_run_store(trained_run, tmp_path_factory):
    """A store holding a copy of the trained run and a newer run that is still training."""
    from core.runs import RunStore

    root = tmp_path_factory.mktemp("two_runs")
    copy_run(trained_run, root)
    training = RunStore(root).create("still-training")
    training.update_status(state="training", epoch=0, epochs=3, message="epoch 0/3")
    return root, training


def test_switching_to_an_unevaluated_run_and_back(two_run_store, trained_run, app_page, tmp_path):
    page = app_page
    root, training = two_run_store
    training_id = training.run_id
    n_run = len(trained_run.metrics())
    with serve_app(root, tmp_path / "server.log") as served:
        open_app(page, served.url)
        select = run_select(page)
        labels = select.evaluate("s => Array.from(s.options, (o) => o.text)")
        assert [label.split(" · ")[0] for label in labels] == [training_id, trained_run.run_id]
        assert chosen(select) == trained_run.run_id  # the evaluated run is shown first
        layout = page.evaluate(POINTS_JS)
        assert sum(p["in_run"] for p in layout["points"]) == n_run
        default = page.evaluate(js("return model('hydrolens-hydrograph').title.text.split(' ')[0];"))
        hydrograph_shows(page, default)

        select.select_option(label=labels[0])
        page.get_by_text("no evaluated run selected").wait_for(timeout=20_000)
        page.get_by_text("has no evaluation yet").wait_for()
        page.wait_for_function(js("return model('hydrolens-map').title.text.includes('not evaluated');"),
                               timeout=10_000)
        layout = page.evaluate(POINTS_JS)
        assert layout["points"] and not any(p["in_run"] for p in layout["points"])
        assert all(p["value"] is None for p in layout["points"])
        training.update_status(epoch=1, message="epoch 1/3")  # the page polls the status
        page.get_by_text("(epoch 1/3)").wait_for(timeout=20_000)

        select.select_option(label=labels[1])
        hydrograph_shows(page, default)
        assert sum(p["in_run"] for p in page.evaluate(POINTS_JS)["points"]) == n_run
        assert_clean(page, served)


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
        labels = run_select(page).evaluate("s => Array.from(s.options, (o) => o.text)")
        assert [label.split(" · ")[0] for label in labels] == [trained_run.run_id]
        layout = page.evaluate(POINTS_JS)
        assert sorted(p["site"] for p in layout["points"] if p["in_run"]) == \
            sorted(trained_run.metrics().index)
        default = page.evaluate(js("return model('hydrolens-hydrograph').title.text.split(' ')[0];"))
        hydrograph_shows(page, default)
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
        assert_clean(page, served)


# -- a SMAP soil-moisture run -----------------------------------------------------------------------

SM_PANEL_JS = js("""
  const fig = model("hydrolens-panel-SM_obs"), source = model("hydrolens-series");
  if (fig == null || source == null) return null;
  const view = Bokeh.index.find_one(fig);
  const obs = column(source, "SM_obs"), sim = column(source, "SM");
  const finite = (a) => a.filter((v) => v != null && Number.isFinite(v));
  return {drawn: view != null && view.has_finished() && view.el.getBoundingClientRect().height > 50,
          glyphs: fig.renderers.map((r) => r.name), n: sim.length, n_obs: finite(obs).length,
          sim_sum: finite(sim).reduce((a, v) => a + v, 0)};
""")


@pytest.fixture(scope="module")
def smap_run(tmp_path_factory, data_root):
    """An FFN_A run trained (2 epochs) through the CLI on SMAP cells 0, 2, 14, scored on 7."""
    from conftest import run_cli
    from core.runs import RunStore

    root = tmp_path_factory.mktemp("smap_browser")
    proc = run_cli("train", "--variant", "ffn_a", "--sites", "0,2,14", "--test-sites", "7", "--epochs", "2",
                   "--out", str(root), "--data-root", str(data_root), "--no-progress", "--threads", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    store = RunStore(root)
    return root, store.get(store.list()[0].run_id)


def test_a_smap_run_maps_cells_by_infiltr_and_shows_a_cells_soil_moisture(smap_run, data_root, app_page, tmp_path):
    import xarray as xr

    root, run = smap_run
    page = app_page
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HYDROLENS_DATA_ROOT", str(data_root))
        with serve_app(root, tmp_path / "server.log") as served:
            open_app(page, url_with(served, run=run.run_id))
            layout = page.evaluate(POINTS_JS)
            # every usable SMAP cell is on the map; the run's four are coloured
            assert len(layout["points"]) == 407
            assert sorted(p["site"] for p in layout["points"] if p["in_run"]) == ["0", "14", "2", "7"]
            select = quantity_select(page)
            labels = select.evaluate("s => Array.from(s.options, (o) => o.text)")
            label = next(x for x in labels if x.startswith("infiltr"))
            select.select_option(label=label)
            with xr.open_dataset(run.parameters_path) as ds:
                expected = {str(c): float(v) for c, v in zip(ds["site"].values, ds["infiltr"].values)}
            state = wait_map_values(page, expected, "infiltr")
            assert state["map_title"].startswith(label)
            # a click on an unseen cell (7, never trained on) shows SMAP vs simulated soil moisture
            target = next(p for p in layout["points"] if p["site"] == "7")
            page.mouse.click(target["x"], target["y"])
            with run.outputs() as ds:
                sm = ds["SM"].sel(site="7").values
                n_obs = int(np.isfinite(ds["SM_obs"].sel(site="7").values).sum())
            deadline = time.monotonic() + 30
            while True:  # the series of cell 7 loaded and its soil-moisture panel drawn
                shown = page.evaluate(SM_PANEL_JS)
                if shown and shown["drawn"] and math.isclose(shown["sim_sum"], float(np.nansum(sm)), rel_tol=1e-5):
                    break
                assert time.monotonic() < deadline, f"soil-moisture panel of cell 7 not shown: {shown}"
                page.wait_for_timeout(200)
            assert "dots-SM_obs" in shown["glyphs"] and "line-SM" in shown["glyphs"]
            assert shown["n"] == sm.size == 365 and shown["n_obs"] == n_obs > 50
            assert page.evaluate(POINTS_JS)["selected"] == ["7"]
            assert_clean(page, served)
