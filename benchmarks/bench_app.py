"""Explorer responsiveness benchmark: a real Chromium against the served app, all 432 sites.

Measures, with the same headless Chromium (playwright, Debian's /usr/bin/chromium) driving
``panel serve explorer/app.py`` over a run of every site of the data root (15-year test period):

  ready     navigation -> the map and the hydrograph are drawn (their views have finished),
            in a fresh page of a browser whose HTTP cache is warm (a returning user);
  complete  the same navigation -> every time-series panel of the run is on the page and drawn
            (the panels below the hydrograph follow the first paint; printed, no target);
  click     a real mouse click on a site of the run -> the hydrograph is titled with that site
            and every figure of the open tab (map, time-series panels) has finished drawing;
  quantity  choosing another map quantity in the sidebar select -> the colour bar shows its
            title and the map has finished drawing;
  RSS       resident memory of the server process (and its children) with 0, 1 and 4 sessions
            (pages) open.

"Drawn" also waits two animation frames after the condition holds, so the canvas was painted.
Each figure is repeated ``--repeats`` times (median and every sample printed) and compared with
its target: ready <= 3 s, click <= 1 s, quantity <= 0.5 s, RSS (4 sessions) <= 1.5 GB.

The same measurements are taken on a reference: a trivial Panel page with one Bokeh figure of
432 points and a select, served the same way, where a click retitles the figure from the server
and the select recolours it. The ratio ours / reference separates what Panel, Bokeh, the
browser and this machine cost from what the explorer adds; both run in this one process, one
after the other, under the same conditions.

The run: the newest evaluated run of the bench store with at least 400 sites; when there is
none, one is trained first (``hydrolens train --config <store>/bench-config.yaml --basins all
--epochs 1``: the demo preset, δn(γᵗ,βᵗ), with 5 iterations per epoch, then evaluated on the
test period: about 30 s on 2 cores). Its skill is meaningless; the files are real and full
size (432 sites x 5479 days).

Usage::

    .venv/bin/python benchmarks/bench_app.py                # store runs-bench/ (gitignored)
    .venv/bin/python benchmarks/bench_app.py --store PATH --repeats 7 --data-root PATH
    .venv/bin/python benchmarks/bench_app.py --no-reference   # the explorer only

Options: --chromium PATH (default $HYDROLENS_CHROMIUM or /usr/bin/chromium), --keep-logs.
Not a test: it prints figures and exits 0 (1 when something could not be measured).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGETS = {"ready": 3.0, "click": 1.0, "quantity": 0.5, "rss_4": 1.5 * 1024**3}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 1000}
MIN_SITES = 400

# -- JavaScript: read the Bokeh document of the page --------------------------------------------

JS_LIB = """
const doc = Bokeh.documents[0];
const model = (name) => {  // a model by name; of several (BokehJS keeps removed ones), the shown one
  const all = Array.from(doc._all_models.values()).filter((m) => m.name === name);
  return all.find((m) => Bokeh.index.find_one(m) != null) ?? all[all.length - 1] ?? null;
};
const column = (source, name) => {
  const data = source.data;
  return Array.from(data instanceof Map ? data.get(name) : data[name]);
};
const finished = (m) => { const v = m && Bokeh.index.find_one(m); return v != null && v.has_finished(); };
// every figure with a view on the page (the open tab's, with Panel's dynamic tabs) has finished
const all_drawn = () => {
  let n = 0;
  for (const m of doc._all_models.values()) {
    if (m.type !== "Figure" && m.type !== "Plot") continue;
    const v = Bokeh.index.find_one(m);
    if (v == null) continue;
    if (!v.has_finished()) return false;
    n++;
  }
  return n > 0;
};
const frames = (k) => new Promise((resolve) => {
  const step = (i) => (i <= 0 ? resolve() : requestAnimationFrame(() => step(i - 1)));
  step(k);
});
"""


def js_wait(condition: str) -> str:
    """An async arrow function: poll `condition` (uses `arg`) every animation frame until true
    (or 60 s), then let two more frames be painted; returns whether it held."""
    return f"""async (arg) => {{
      const t0 = performance.now();
      while (performance.now() - t0 < 60000) {{
        let ok = false;
        try {{
          if (window.Bokeh && Bokeh.documents.length) {{ {JS_LIB} ok = (() => {{ {condition} }})(); }}
        }} catch (e) {{ ok = false; }}
        if (ok) {{ await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
                   return true; }}
        await new Promise((r) => requestAnimationFrame(r));
      }}
      return false;
    }}"""


def js_read(body: str) -> str:
    return f"(arg) => {{ {JS_LIB} {body} }}"


POINTS = """
  const fig = model(arg.map), source = model(arg.source);
  const view = Bokeh.index.find_one(fig);
  const canvas = view.canvas_view.el.getBoundingClientRect();
  const {x_scale, y_scale, bbox} = view.frame;
  const ids = column(source, "site"), xs = column(source, "x"), ys = column(source, "y");
  const inRun = source.data instanceof Map ? source.data.get("in_run") : source.data["in_run"];
  const points = ids.map((b, i) => ({site: b, in_run: inRun == null ? true : Boolean(inRun[i]),
    x: canvas.left + x_scale.compute(xs[i]), y: canvas.top + y_scale.compute(ys[i])}));
  return {points, frame: {left: canvas.left + bbox.left, right: canvas.left + bbox.right,
                          top: canvas.top + bbox.top, bottom: canvas.top + bbox.bottom}};
"""


class Target:
    """One served page to measure: the explorer or the reference."""

    def __init__(self, name: str, url: str, *, map_name: str, source_name: str, colorbar: str,
                 ready: str, titled: str, clicked: str, select_label: str, proc: subprocess.Popen,
                 complete: str | None = None, n_panels: int = 0):
        self.name, self.url, self.proc = name, url, proc
        self.complete, self.n_panels = complete or ready, n_panels
        self.map_name, self.source_name, self.colorbar = map_name, source_name, colorbar
        self.ready, self.titled, self.clicked = ready, titled, clicked
        self.select_label = select_label


EXPLORER_READY = """
  const fig = model("hydrolens-hydrograph");
  return finished(model("hydrolens-map")) && fig != null && fig.title.text.length > 0
         && finished(fig);
"""
EXPLORER_COMPLETE = """
  // arg: the number of time-series panels of the run; each has a view that has finished
  let k = 0;
  for (const m of doc._all_models.values()) {
    const name = m.name || "";
    if (name !== "hydrolens-hydrograph" && !name.startsWith("hydrolens-panel-")) continue;
    if (!finished(m)) return false;
    k++;
  }
  return k >= arg && all_drawn();
"""
EXPLORER_CLICKED = """
  const fig = model("hydrolens-hydrograph");
  return fig != null && fig.title.text.startsWith(arg) && all_drawn();
"""
EXPLORER_TITLED = """
  const fig = model("hydrolens-hydrograph");
  return fig != null && fig.title.text.startsWith(arg);
"""
REFERENCE_READY = "return finished(model('ref-map'));"
REFERENCE_TITLED = "return model('ref-map').title.text === arg;"
REFERENCE_CLICKED = "const fig = model('ref-map'); return fig.title.text === arg && all_drawn();"

REFERENCE_APP = '''
"""A trivial Panel page: one Bokeh figure of 432 points and a select (bench_app reference)."""
import numpy as np
import panel as pn
from bokeh.models import ColorBar, ColumnDataSource, LinearColorMapper
from bokeh.palettes import Viridis256
from bokeh.plotting import figure

pn.extension()
n = 432
rng = np.random.default_rng(0)
data = {"site": [f"{i:08d}" for i in range(n)], "x": rng.uniform(0, 1, n), "y": rng.uniform(0, 1, n),
        "a": rng.uniform(0, 1, n), "b": rng.uniform(0, 1, n)}
source = ColumnDataSource({**data, "value": data["a"]}, name="ref-points")
mapper = LinearColorMapper(palette=Viridis256, low=0, high=1)
fig = figure(name="ref-map", height=520, sizing_mode="stretch_width", tools="tap,pan,wheel_zoom",
             title="click a point")
fig.scatter("x", "y", source=source, size=10, fill_color={"field": "value", "transform": mapper})
colorbar = ColorBar(color_mapper=mapper, name="ref-colorbar", title="a")
fig.add_layout(colorbar, "right")
select = pn.widgets.Select(name="Colour by", options=["a", "b"], width=200)


def picked(_attr, _old, new):
    if len(new) == 1:
        fig.title.text = source.data["site"][new[0]]


def recolour(event):
    source.patch({"value": [(slice(0, n), data[event.new])]})
    colorbar.title = event.new


source.selected.on_change("indices", picked)
select.param.watch(recolour, "value")
pn.Row(select, pn.pane.Bokeh(fig, sizing_mode="stretch_width"),
       sizing_mode="stretch_width").servable(title="reference")
'''


# -- helpers --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(script: Path, env: dict, log_path: Path, timeout: float = 120.0) -> tuple[str, subprocess.Popen]:
    """`panel serve SCRIPT` on a free port; (url, process) once it answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "panel", "serve", str(script), "--port", str(port),
           "--address", "127.0.0.1", f"--allow-websocket-origin=127.0.0.1:{port}"]
    env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5):
                break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not up after {timeout} s:\n{log_path.read_text()}")
            time.sleep(0.5)
    return f"http://127.0.0.1:{port}/{script.stem}", proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def rss_bytes(pid: int) -> int:
    """Resident memory of `pid` and all its descendants (psutil if present, else /proc)."""
    try:
        import psutil

        p = psutil.Process(pid)
        return sum(q.memory_info().rss for q in [p, *p.children(recursive=True)])
    except ImportError:
        pass
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
        todo += children.get(p, [])
    return total


def bench_run(store: Path, data_root: str | None) -> str:
    """The id of an evaluated run of `store` with >= MIN_SITES sites; trains one if needed."""
    from core.runs import RunStore
    from core.training.config import PRESETS

    rs = RunStore(store)
    for info in rs.list():
        if not info.problem and info.state == "done" and info.n_sites >= MIN_SITES:
            return info.run_id
    store.mkdir(parents=True, exist_ok=True)
    import yaml

    cfg = json.loads(json.dumps(PRESETS["demo"]))
    cfg["name"] = "bench432"
    cfg["data"]["sites"] = None
    cfg["train"].update(epochs=1, iters_per_epoch=5)
    config = store / "bench-config.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = [sys.executable, "-m", "core.cli", "train", "--config", str(config), "--basins", "all",
           "--epochs", "1", "--out", str(store), "--no-progress"]
    if data_root:
        cmd += ["--data-root", data_root]
    print(f"no evaluated run of >= {MIN_SITES} sites in {store}: training one\n  $ {' '.join(cmd)}",
          flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True)
    print(f"  trained and evaluated in {time.perf_counter() - t0:.0f} s", flush=True)
    for info in rs.list():
        if not info.problem and info.state == "done" and info.n_sites >= MIN_SITES:
            return info.run_id
    raise RuntimeError(f"hydrolens train left no evaluated run of >= {MIN_SITES} sites in {store}")


def clickable(points: list[dict], frame: dict, gap_px: float = 14.0) -> list[dict]:
    """Sites of the run inside the frame whose nearest other point is farther than `gap_px`,
    so a click hits that site alone; most isolated first."""
    out = []
    for p in points:
        if not p["in_run"] or not (frame["left"] + 10 < p["x"] < frame["right"] - 10
                                   and frame["top"] + 10 < p["y"] < frame["bottom"] - 10):
            continue
        gap = min(math.dist((p["x"], p["y"]), (q["x"], q["y"])) for q in points if q is not p)
        if gap > gap_px:
            out.append((gap, p))
    return [p for _, p in sorted(out, key=lambda t: -t[0])]


# -- measurements ---------------------------------------------------------------------------------


def new_page(context, errors: list[str]):
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


def measure_ready(context, target: Target, repeats: int, errors: list[str]) -> tuple[list[float], list[float]]:
    """(ready, complete) seconds after navigation, one of each per repeat."""
    ready, complete = [], []
    for _ in range(repeats):
        page = new_page(context, errors)
        t0 = time.perf_counter()
        page.goto(target.url, wait_until="commit")
        if not page.evaluate(js_wait(target.ready)):
            raise RuntimeError(f"{target.name}: page not ready within 60 s")
        ready.append(time.perf_counter() - t0)
        if not page.evaluate(js_wait(target.complete), target.n_panels):
            raise RuntimeError(f"{target.name}: page not complete within 60 s")
        complete.append(time.perf_counter() - t0)
        page.close()
    return ready, complete


def open_ready(context, target: Target, errors: list[str]):
    """A new page of `target`, complete (every panel drawn)."""
    page = new_page(context, errors)
    page.goto(target.url, wait_until="commit")
    if not page.evaluate(js_wait(target.ready)) or not page.evaluate(
            js_wait(target.complete), target.n_panels):
        raise RuntimeError(f"{target.name}: page not ready within 60 s")
    return page


def measure_click(page, target: Target, repeats: int) -> list[float]:
    layout = page.evaluate(js_read(POINTS), {"map": target.map_name, "source": target.source_name})
    spots = clickable(layout["points"], layout["frame"])
    if len(spots) < 2:
        raise RuntimeError(f"{target.name}: fewer than 2 sites can be clicked unambiguously")
    spots = spots[:max(2, min(len(spots), repeats))]
    samples, shown = [], []
    for i in range(repeats):
        p = spots[i % len(spots)]
        page.mouse.move(p["x"], p["y"])
        page.wait_for_timeout(150)  # the hover tooltip has come and gone before the clock starts
        t0 = time.perf_counter()
        page.mouse.click(p["x"], p["y"])
        # first the server's answer reaches the page (the title names the site), then all drawn
        if not page.evaluate(js_wait(target.titled), p["site"]):
            raise RuntimeError(f"{target.name}: click on {p['site']} not answered within 60 s")
        shown.append(time.perf_counter() - t0)
        if not page.evaluate(js_wait(target.clicked), p["site"]):
            raise RuntimeError(f"{target.name}: click on {p['site']} not shown within 60 s")
        samples.append(time.perf_counter() - t0)
        page.wait_for_timeout(300)
    return samples, shown


def measure_quantity(page, target: Target, repeats: int) -> list[float]:
    select = page.locator(".bk-input-group").filter(
        has=page.get_by_text(target.select_label, exact=True)).locator("select")
    labels = select.evaluate("s => Array.from(s.options, (o) => o.text)")
    current = select.evaluate("s => s.options[s.selectedIndex].text")
    # go round quantities of different kinds (skill score, parameter, signature) and back
    kinds = ("KGE", "FC", "BETA", "BFI_sim", "b")
    others = sorted((lab for lab in labels if lab != current),
                    key=lambda lab: (lab.split()[0] not in kinds, labels.index(lab)))
    cycle = others[:3] + [current]
    samples = []
    for i in range(repeats):
        label = cycle[i % len(cycle)]
        # the colour bar title the app gives this option (explorer: the option text itself)
        t0 = time.perf_counter()
        select.select_option(label=label)
        cond = (f"const cb = model('{target.colorbar}'); return cb.title === arg "
                f"&& finished(model('{target.map_name}'));")
        if not page.evaluate(js_wait(cond), label):
            raise RuntimeError(f"{target.name}: quantity {label!r} not shown within 60 s")
        samples.append(time.perf_counter() - t0)
        page.wait_for_timeout(300)
    return samples


def measure_rss(context, target: Target, errors: list[str]) -> dict[str, int]:
    """Server RSS before any session, with 1 and with 4 sessions (pages) open and drawn; the
    first page also warms the browser's HTTP cache for the timings that follow."""
    out = {"rss_0": rss_bytes(target.proc.pid)}
    pages = []
    for k in range(4):
        pages.append(open_ready(context, target, errors))
        if k == 0:
            time.sleep(1.0)
            out["rss_1"] = rss_bytes(target.proc.pid)
    time.sleep(2.0)
    out["rss_4"] = rss_bytes(target.proc.pid)
    for p in pages:
        p.close()
    time.sleep(1.0)
    return out


def measure(browser, target: Target, repeats: int) -> dict:
    errors: list[str] = []
    context = browser.new_context(viewport=VIEWPORT)
    try:
        # memory first, from a server that has served no session yet
        result = measure_rss(context, target, errors)
        result["ready"], result["complete"] = measure_ready(context, target, repeats, errors)
        page = open_ready(context, target, errors)
        result["click"], result["click_shown"] = measure_click(page, target, repeats)
        result["quantity"] = measure_quantity(page, target, repeats)
        page.close()
    finally:
        context.close()
    result["errors"] = errors
    return result


# -- report ---------------------------------------------------------------------------------------


def fmt_s(v: float) -> str:
    return f"{v:.3f} s"


def fmt_mb(v: float) -> str:
    return f"{v / 1024**2:.0f} MB"


def report(ours: dict, ref: dict | None, info: str) -> None:
    print()
    print(info)
    print(f"{'measure':<10} {'median':>10} {'target':>10} {'ok':>4} {'reference':>10} {'ratio':>7}   samples")
    for key in ("ready", "click", "quantity"):
        med = statistics.median(ours[key])
        rmed = statistics.median(ref[key]) if ref else None
        ok = "yes" if med <= TARGETS[key] else "NO"
        ratio = f"{med / rmed:6.1f}x" if rmed else ""
        samples = " ".join(f"{v:.3f}" for v in ours[key])
        rtext = fmt_s(rmed) if rmed is not None else ""
        limit = "<= " + fmt_s(TARGETS[key])
        print(f"{key:<10} {fmt_s(med):>10} {limit:>10} {ok:>4} {rtext:>10} {ratio:>7}   {samples}")
        if ref:
            print(f"{'':<10} {'':>10} {'':>10} {'':>4} {'':>10} {'':>7}   reference: "
                  + " ".join(f"{v:.3f}" for v in ref[key]))
    print(f"complete: every time-series panel drawn after {fmt_s(statistics.median(ours['complete']))} "
          f"(median; samples {' '.join(f'{v:.3f}' for v in ours['complete'])})")
    print(f"click: the hydrograph's new title (the server's last update) was on the page after "
          f"{fmt_s(statistics.median(ours['click_shown']))} (median; samples "
          f"{' '.join(f'{v:.3f}' for v in ours['click_shown'])}); the rest is drawing"
          + (f"; reference {fmt_s(statistics.median(ref['click_shown']))}" if ref else ""))
    for key, label in (("rss_0", "RSS, 0 sessions"), ("rss_1", "RSS, 1 session"),
                       ("rss_4", "RSS, 4 sessions")):
        target = TARGETS.get(key)
        ok = ("yes" if ours[key] <= target else "NO") if target else ""
        rtext = fmt_mb(ref[key]) if ref else ""
        ratio = f"{ours[key] / ref[key]:6.1f}x" if ref else ""
        ttext = "<= " + fmt_mb(target) if target else ""
        print(f"{label:<18} {fmt_mb(ours[key]):>10} {ttext:>10} {ok:>4} {rtext:>10} {ratio:>7}")
    if ours["rss_4"] > ours["rss_0"]:
        print(f"per session (explorer): {fmt_mb((ours['rss_4'] - ours['rss_0']) / 4)}")
    for name, res in (("explorer", ours), ("reference", ref)):
        if res and res["errors"]:
            print(f"page errors ({name}): {res['errors'][:5]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, default=REPO / "runs-bench", help="bench run store")
    ap.add_argument("--data-root", default=os.environ.get("HYDROLENS_DATA_ROOT"),
                    help="data root (default: $HYDROLENS_DATA_ROOT or ../shared/data)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--chromium", default=os.environ.get("HYDROLENS_CHROMIUM", "/usr/bin/chromium"))
    ap.add_argument("--no-reference", action="store_true", help="skip the trivial reference page")
    ap.add_argument("--keep-logs", action="store_true", help="keep the servers' logs (printed path)")
    a = ap.parse_args(argv)
    if not Path(a.chromium).exists():
        print(f"no Chromium at {a.chromium} (apt-get install chromium, or --chromium PATH)")
        return 1
    store = a.store.resolve()
    run_id = bench_run(store, a.data_root)
    from core.runs import RunStore

    from core.runs.outputs import panels_of

    run = RunStore(store).get(run_id)
    n_sites = len(run.metrics())
    with run.outputs() as ds:
        n_days = ds.sizes["time"]
        n_panels = len(panels_of(ds))

    tmp = Path(tempfile.mkdtemp(prefix="bench_app_"))
    ref_script = tmp / "reference.py"
    ref_script.write_text(textwrap.dedent(REFERENCE_APP))
    env = {"HYDROLENS_RUNS": str(store)}
    if a.data_root:
        env["HYDROLENS_DATA_ROOT"] = a.data_root
    from playwright.sync_api import sync_playwright

    ours = ref = None
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=a.chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            url, proc = serve(REPO / "explorer" / "app.py", env, tmp / "explorer.log")
            try:
                target = Target("explorer", f"{url}?run={run_id}", map_name="hydrolens-map",
                                source_name="hydrolens-basins", colorbar="hydrolens-colorbar",
                                ready=EXPLORER_READY, titled=EXPLORER_TITLED,
                                clicked=EXPLORER_CLICKED, complete=EXPLORER_COMPLETE,
                                n_panels=n_panels, select_label="Colour the map by", proc=proc)
                ours = measure(browser, target, a.repeats)
            finally:
                stop(proc)
            if not a.no_reference:
                url, proc = serve(ref_script, {}, tmp / "reference.log")
                try:
                    target = Target("reference", url, map_name="ref-map", source_name="ref-points",
                                    colorbar="ref-colorbar", ready=REFERENCE_READY,
                                    titled=REFERENCE_TITLED, clicked=REFERENCE_CLICKED,
                                    select_label="Colour by", proc=proc)
                    ref = measure(browser, target, a.repeats)
                finally:
                    stop(proc)
        finally:
            browser.close()
    info = (f"explorer over run {run_id} ({n_sites} sites x {n_days} days) in {store}; "
            f"{a.repeats} repeats; {os.cpu_count()} CPU cores; Chromium {a.chromium}")
    report(ours, ref, info)
    log = (tmp / "explorer.log").read_text(errors="replace")
    bad = [m for m in ("Traceback", "Error running application handler", "ERROR") if m in log]
    if bad:
        # tornado's WebSocketClosedError when a page closes while the server writes to it
        benign = log.count("Traceback") == 2 * log.count("tornado.websocket.WebSocketClosedError")
        print(f"server log has {bad}" + (" (only tornado's WebSocketClosedError of a page closed "
                                         "mid-message)" if benign else "") + f": {tmp / 'explorer.log'}")
    if a.keep_logs or bad:
        print(f"logs in {tmp}")
    else:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
