"""Guarantees of docs/reliability.md: untrusted checkpoints run no code, kill -9 loses at most the
running epoch and no result file, resume is bit-identical (also from a fallback checkpoint), one
corrupt run never hides the others, temporaries of interrupted writes are cleaned up."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from core.runs import RunStore
from tests.conftest import REPO, needs_data, run_cli
from tests.test_bad_input import BASINS, digest

TINY_CONFIG = (
    "data: {basins: [%s], train_start: 1990-10-01, train_end: 1992-09-30, test_start: 1992-10-01, "
    "test_end: 1993-09-30}\n"
    "model: {variant: delta_n, nmul: 2, hidden: 8, dropout: 0.5}\n"
    "train: {epochs: %d, batch_size: 3, iters_per_epoch: %d, warmup: 60, rho: 120, optimizer: adam, "
    "lr: 0.01, threads: 1, keep_checkpoints: 100}\n")


def tiny_config(tmp: Path, epochs: int, iters: int = 4) -> Path:
    path = tmp / f"tiny_{epochs}_{iters}.yaml"
    path.write_text(TINY_CONFIG % (", ".join(BASINS), epochs, iters))
    return path


def train_tiny(store: Path, data_root: Path, epochs: int, iters: int = 4, *extra: str):
    proc = run_cli("train", "--config", str(tiny_config(store.parent, epochs, iters)), "--out", str(store),
                   "--data-root", str(data_root), "--no-progress", "--no-evaluate", *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return RunStore(store).list()[0]


def model_state(run_path: Path, name: str = "last.pt") -> dict:
    return torch.load(run_path / "checkpoints" / name, weights_only=True)["model"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


class _Plant:
    """An object whose unpickling touches a marker file: stands in for arbitrary code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# ------------------------------------------------------------------------ untrusted checkpoints
def test_load_checkpoint_refuses_a_pickle_that_runs_code(tmp_path):
    from core.runs.checkpoint import CheckpointError, load_checkpoint

    marker = tmp_path / "pwned"
    evil = tmp_path / "last.pt"
    torch.save({"model": _Plant(marker), "epoch": 1}, evil)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(evil)
    assert not marker.exists()
    # the same bytes through plain pickle do run it: the test's payload is real
    import zipfile

    with zipfile.ZipFile(evil) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    pickle.loads(data)
    assert marker.exists()


@needs_data
@pytest.mark.data
def test_planted_checkpoint_runs_nothing_on_resume_or_evaluate(tmp_path, data_root):
    store = tmp_path / "runs"
    info = train_tiny(store, data_root, epochs=2)
    ck = info.path / "checkpoints"
    marker = tmp_path / "pwned"
    torch.save({"model": _Plant(marker), "optimizer": {}, "sampler_rng": "", "torch_rng": _Plant(marker),
                "epoch": 2}, ck / "last.pt")
    proc = run_cli("evaluate", info.run_id, "--out", str(store))
    assert proc.returncode == 2 and "refused to load" in proc.stderr and "last.pt" in proc.stderr
    assert not marker.exists()
    # resume skips the planted file (says so) and continues from the newest intact epoch file
    proc = run_cli("train", "--resume", info.run_id, "--epochs", "3", "--out", str(store), "--no-progress",
                   "--no-evaluate")
    assert proc.returncode == 0, proc.stderr
    assert "resuming after epoch 2 from epoch_002.pt" in proc.stdout and "refused to load" in proc.stdout
    assert not marker.exists()
    # with every checkpoint planted, resume refuses and runs nothing
    for p in ck.glob("*.pt"):
        torch.save({"model": _Plant(marker), "epoch": 1}, p)
    proc = run_cli("train", "--resume", info.run_id, "--epochs", "4", "--out", str(store), "--no-progress")
    assert proc.returncode == 2 and "no intact checkpoint" in proc.stderr
    assert not marker.exists() and "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- resume, kill -9
@needs_data
@pytest.mark.data
@pytest.mark.slow
def test_resume_is_bit_identical_after_kill_and_after_fallback(tmp_path, data_root):
    """kill -9 mid-epoch loses only that epoch; resuming (from last.pt, or from the newest intact
    epoch file when last.pt is truncated) gives the weights of an uninterrupted run, bit for bit."""
    iters = 40
    store_b = tmp_path / "b" / "runs"
    store_b.parent.mkdir()
    cfg = tiny_config(store_b.parent, epochs=50, iters=iters)
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "train", "--config", str(cfg), "--out",
                             str(store_b), "--data-root", str(data_root), "--no-progress", "--no-evaluate"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list(store_b.glob("*/checkpoints/epoch_002.pt")):
        time.sleep(0.05)
    time.sleep(0.3)  # into the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    info = RunStore(store_b).list()[0]
    assert info.state == "interrupted", info
    done = torch.load(info.path / "checkpoints" / "last.pt", weights_only=True)["epoch"]
    assert done >= 2

    target = done + 1
    res = run_cli("train", "--resume", info.run_id, "--epochs", str(target), "--out", str(store_b),
                  "--no-progress", "--no-evaluate")
    assert res.returncode == 0, res.stderr
    assert f"resuming after epoch {done} from last.pt" in res.stdout
    run_b = RunStore(store_b).get(info.run_id)
    assert list(run_b.train_log()["epoch"]) == list(range(1, target + 1))
    assert not list(run_b.path.rglob(".*.tmp"))

    # the uninterrupted reference
    store_a = tmp_path / "a" / "runs"
    store_a.parent.mkdir()
    ref = train_tiny(store_a, data_root, target, iters)
    assert_same_weights(model_state(ref.path), model_state(run_b.path))

    # fallback: last.pt truncated and the last epoch file gone -> resume from epoch target-1
    ck = run_b.path / "checkpoints"
    data = (ck / "last.pt").read_bytes()
    (ck / "last.pt").write_bytes(data[: len(data) // 3])
    (ck / f"epoch_{target:03d}.pt").unlink()
    res = run_cli("train", "--resume", info.run_id, "--out", str(store_b), "--no-progress", "--no-evaluate")
    assert res.returncode == 0, res.stderr
    assert f"resuming after epoch {target - 1} from epoch_{target - 1:03d}.pt" in res.stdout
    assert "last.pt: not a readable checkpoint" in res.stdout
    assert_same_weights(model_state(ref.path), model_state(run_b.path))
    assert list(run_b.train_log()["epoch"]) == list(range(1, target + 1))
    assert RunStore(store_b).get(info.run_id).status()["epoch"] == target


SLOW_RENAME = """
import os, sys, time
real = os.replace
def slow(src, dst, *a, **k):
    if str(dst).endswith("outputs.nc"):
        print("RENAMING", flush=True)
        time.sleep(120)
    return real(src, dst, *a, **k)
os.replace = slow
from core.cli import main
sys.argv = ["hydrolens", "evaluate", sys.argv[1], "--out", sys.argv[2]]
main()
"""


@needs_data
@pytest.mark.data
def test_kill_during_evaluation_keeps_the_previous_results(tmp_path, trained_run):
    """kill -9 after the new outputs.nc and metrics.csv are written in full but before they replace
    the old ones: both old files stay intact and readable; the next evaluate removes the leftover
    temporaries and completes."""
    import shutil

    store = tmp_path / "runs"
    shutil.copytree(trained_run.path, store / trained_run.run_id, ignore=shutil.ignore_patterns(".lock"))
    run = RunStore(store).get(trained_run.run_id)
    before = digest(run.outputs_path, run.metrics_path)
    proc = subprocess.Popen([sys.executable, "-c", SLOW_RENAME, run.run_id, str(store)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline().strip() == "RENAMING"
        temps = sorted(p.name for p in run.path.glob(".*.tmp"))
        assert any(t.startswith(".outputs.nc.") for t in temps) and any(t.startswith(".metrics.csv.") for t in temps)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert digest(run.outputs_path, run.metrics_path) == before
    assert run.metrics()["NSE"].notna().all()
    with run.outputs() as ds:
        assert "Q_sim" in ds
    info = RunStore(store).get(run.run_id).info()
    assert info.state == "interrupted" and info.problem is None
    res = run_cli("evaluate", run.run_id, "--out", str(store))
    assert res.returncode == 0, res.stderr
    assert not list(run.path.glob(".*.tmp"))
    assert RunStore(store).get(run.run_id).info().state == "done"


def test_stale_temporaries_are_removed_when_a_process_takes_the_run(tmp_path):
    store = RunStore(tmp_path)
    run = store.create("x")
    (run.path / "checkpoints").mkdir()
    leftovers = [run.path / ".status.json.abc.tmp", run.path / "checkpoints" / ".last.pt.x1.tmp"]
    for p in leftovers:
        p.write_text("partial")
    keep = run.path / "notes.tmp"  # not an atomic-write temporary: kept
    keep.write_text("mine")
    with run.lock("evaluating") as lock:
        assert sorted(lock.removed) == sorted(leftovers)
        assert run.busy() is not None
        with run.lock("evaluating"):  # re-entrant in one process
            pass
        assert run.busy() is not None
    assert run.busy() is None and keep.exists() and not any(p.exists() for p in leftovers)


# ---------------------------------------------------------------------------- store isolation
def make_store_with_corrupt_runs(trained_run, root: Path) -> dict[str, str]:
    """Copies of the trained run, one good and one broken per kind; returns id -> kind."""
    import shutil

    kinds = {}

    def copy(kind: str) -> Path:
        rid = f"{trained_run.run_id}-{kind}"
        dst = root / rid
        shutil.copytree(trained_run.path, dst, ignore=shutil.ignore_patterns(".lock"))
        st = json.loads((dst / "status.json").read_text())
        st["created"] = "2099-01-01T00:00:00+00:00"  # newer than the good run: must not hide it
        (dst / "status.json").write_text(json.dumps(st))
        kinds[rid] = kind
        return dst

    good = root / trained_run.run_id
    shutil.copytree(trained_run.path, good, ignore=shutil.ignore_patterns(".lock"))
    kinds[good.name] = "good"
    copy("status-json").joinpath("status.json").write_text("{\"state\": ")
    copy("status-state").joinpath("status.json").write_text('{"state": "exploded", "created": "2099"}')
    copy("status-missing").joinpath("status.json").unlink()
    # YAML errors quote the line: markup there must reach the page as text, never as HTML
    copy("config-yaml").joinpath("config.yaml").write_text(
        "model: [\n  <img src=x onerror=\"window.__pwned=1\">: {\n")
    copy("config-list").joinpath("config.yaml").write_text("- a\n- b\n")
    copy("metrics-csv").joinpath("metrics.csv").write_text("basin,NSE\n\"unclosed\n")
    copy("metrics-columns").joinpath("metrics.csv").write_text("a,b\n1,2\n")
    d = copy("outputs-truncated")
    data = (d / "outputs.nc").read_bytes()
    (d / "outputs.nc").write_bytes(data[: len(data) // 2])
    copy("outputs-missing").joinpath("outputs.nc").unlink()
    copy("train-log").joinpath("train_log.csv").write_bytes(b"\x00\xff\xfe garbage")
    copy("normalization").joinpath("normalization.json").write_text("[1, 2")
    return kinds


@needs_data
@pytest.mark.data
def test_one_corrupt_run_of_each_kind_hides_nothing(tmp_path, trained_run):
    kinds = make_store_with_corrupt_runs(trained_run, tmp_path)
    infos = {i.run_id: i for i in RunStore(tmp_path).list()}
    assert set(infos) == set(kinds)
    for rid, kind in kinds.items():
        if kind == "good":
            assert infos[rid].state == "done" and infos[rid].problem is None
        else:
            assert infos[rid].state == "corrupt", kind
            assert infos[rid].problem and str(tmp_path) in infos[rid].problem, kind
    res = run_cli("runs", "--out", str(tmp_path))
    assert res.returncode == 0 and "Traceback" not in res.stderr
    assert f"{len(kinds) - 1} run(s) cannot be read" in res.stdout
    for rid in kinds:
        assert rid in res.stdout

    from explorer.app import create_app

    app = create_app(runs_root=tmp_path)
    assert app.state.run_id == trained_run.run_id and app.state.metrics is not None
    assert list(app.run_panel.run_select.options.values()) == [trained_run.run_id]
    assert app.run_panel.corrupt.visible
    for rid, kind in kinds.items():
        assert (f"<b>{rid}</b>" in app.run_panel.corrupt.object) == (kind != "good")
    # a corrupt run selected by id (e.g. from a link) says why, and the page keeps working
    app.state.run_id = f"{trained_run.run_id}-metrics-csv"
    assert "cannot be shown" in app.state.message and "metrics.csv" in app.state.message
    app.state.run_id = trained_run.run_id
    assert app.state.message == "" and app.state.series() is not None


def test_run_ids_and_names_are_validated(tmp_path):
    from core.runs import InvalidNameError, RunNotFoundError

    store = RunStore(tmp_path / "store")
    for bad in ("..", ".", "../x", "a/b", "/abs", "", ".hidden", "a\\b", "x" * 129, "a b"):
        with pytest.raises(InvalidNameError):
            store.get(bad)
        with pytest.raises(InvalidNameError):
            store.create(bad or "/")
    with pytest.raises(RunNotFoundError):
        store.get("no-such-run")
    assert not (tmp_path / "x").exists() and not (tmp_path / "abs").exists()
    # a run name leaves room for the timestamp: every id create() makes can be got again
    long = store.create("n" * 100)
    assert store.get(long.run_id).path == long.path
    with pytest.raises(InvalidNameError):
        store.create("n" * 101)
    # names are checked where runs are made, not when an existing run's config is read
    from core.training import RunConfig

    assert RunConfig.from_dict({"name": "old name with spaces"}).name == "old name with spaces"
    from core.benchmarks.runs import preset_label

    assert preset_label("my configs/bench 2 (final).yaml") == "bench-2-final"


def test_text_from_a_run_cannot_inject_markup(tmp_path):
    """A status message planted in a run reaches the page as text: no image, no link with hidden
    text, no raw HTML (rendered through the Alert's own Markdown renderer)."""
    from explorer.app import create_app

    run = RunStore(tmp_path).create("x")
    run.update_status(state="training", epoch=0, epochs=2,
                      message='[click here](https://evil.example) ![i](http://e/i.png) <img src=x onerror="1">')
    app = create_app(runs_root=tmp_path)
    assert app.alert.visible
    html = app.alert._transform_object(app.alert.object)["object"]
    assert "&lt;img" not in html.replace("&amp;lt;img", "")  # only as escaped text
    assert "click here" in html and "&gt;click here&lt;" not in html  # not a link's text
    assert "&lt;img src=&quot;http://e/i.png" not in html


def test_planted_links_and_fifos_are_refused(tmp_path):
    """Run files that are symlinks or FIFOs make a run corrupt instead of being followed or
    blocking a reader; a planted `.lock` link cannot make the lock write through it."""
    import threading

    from core.runs import RunLock

    outside = tmp_path / "victim.txt"
    outside.write_text("precious\n")
    store = RunStore(tmp_path / "store")
    fifo_run = store.create("fifo")
    fifo_run.status_path.unlink()
    os.mkfifo(fifo_run.status_path)
    link_run = store.create("link")
    link_run.config_path.symlink_to(outside)
    lock_run = store.create("lock")
    (lock_run.path / ".lock").symlink_to(outside)
    fifo_lock = store.create("fifolock")
    os.mkfifo(fifo_lock.path / ".lock")
    fifo_lock.update_status(state="training")

    result = {}
    t = threading.Thread(target=lambda: result.update(infos=store.list()), daemon=True)
    t.start()
    t.join(20)
    assert not t.is_alive(), "listing blocked on a FIFO"
    infos = {i.run_id: i for i in result["infos"]}
    assert "not a regular file" in infos[fifo_run.run_id].problem
    assert "symbolic link" in infos[link_run.run_id].problem
    assert "precious" not in infos[link_run.run_id].problem
    with pytest.raises(OSError, match="symbolic link"):
        with RunLock(lock_run.path, "training"):
            pass
    assert outside.read_text() == "precious\n"
    with pytest.raises(OSError, match="not a regular file"):
        with RunLock(fifo_lock.path, "training"):
            pass


def test_process_liveness_sees_zombies_and_reused_pids():
    """core.runs.safety.process_alive (psutil): an exited child that is not reaped yet (a
    zombie) is not alive, nor is a live pid whose start time differs from the recorded one (the
    system reused the pid) or whose command line lacks the marker; this process is alive."""
    import subprocess
    import time

    from core.runs.safety import process_alive, this_process

    me = this_process()
    assert process_alive(me["pid"], host=me["host"], started=me["pid_started"])
    assert not process_alive(me["pid"], started=me["pid_started"] - 100.0)  # another process's pid
    assert not process_alive(me["pid"], cmdline_has="core.jobs")           # not a job worker
    assert process_alive(me["pid"], host="another-host.example", started=0.0)  # can't check: alive
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process_alive(child.pid):
        time.sleep(0.05)
    assert not process_alive(child.pid)  # exited, not reaped: a zombie
    child.wait()
    assert not process_alive(child.pid) and not process_alive(None) and not process_alive(0)
