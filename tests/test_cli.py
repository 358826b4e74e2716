"""The CLI end to end on real data: 5 basins, 1 epoch, then evaluate; bad input gives clear errors."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from core.physics import HBV_STATES
from tests.conftest import needs_data, run_cli

pytestmark = [needs_data, pytest.mark.data, pytest.mark.slow]


def test_train_writes_a_complete_run(trained_run):
    run = trained_run
    assert "test median NSE" in run.cli_output
    st = run.status()
    assert st["state"] == "done" and st["epoch"] == 1
    # provenance: the code that trained it (this checkout's commit when it is a git checkout)
    repo = Path(__file__).resolve().parents[1]
    head = (subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
            if shutil.which("git") and (repo / ".git").exists() else None)
    assert st["code"]["hydrolens"] == importlib.metadata.version("hydrolens")
    assert st["code"]["torch"] == torch.__version__ and st["code"]["cpu"]
    assert st["code"]["commit"] == (head.stdout.strip() if head and head.returncode == 0 else None)
    assert (run.checkpoint_dir / "last.pt").exists() and (run.checkpoint_dir / "epoch_001.pt").exists()
    cfg = run.config()
    assert len(cfg["data"]["sites"]) == 5 and cfg["train"]["epochs"] == 1
    norm = (run.path / "normalization.json").read_text()
    assert '"P"' in norm and '"p_mean"' in norm
    m = run.metrics()
    assert len(m) == 5 and np.isfinite(m["NSE"]).all() and np.isfinite(m["KGE"]).all()
    assert (m["NSE"] <= 1).all()
    assert {"gauge_name", "gauge_lat", "gauge_lon", "BFI_sim", "BFI_camels", "ET_mean"} <= set(m.columns)
    assert st["median_nse"] == pytest.approx(float(m["NSE"].median()))
    with run.outputs() as ds:
        assert set(ds.dims) == {"site", "time"}
        assert str(ds.time.values[0])[:10] == "1995-10-01" and str(ds.time.values[-1])[:10] == "2010-09-30"
        for v in ("Q_obs", "Q_sim", "ET", "Q0", "Q1", "Q2", "Q_unrouted", *HBV_STATES):
            assert v in ds, v
            assert ds[v].attrs["units"] in ("mm", "mm d-1")
        assert float(ds["Q_sim"].min()) >= 0
        for s in HBV_STATES:
            assert float(ds[s].min()) >= 0, s
        # NSE in metrics.csv is the NSE of the written series
        from core.evaluation import nse

        b = str(ds.site.values[0])
        assert nse(ds["Q_sim"].sel(site=b).values, ds["Q_obs"].sel(site=b).values) == pytest.approx(
            m.loc[b, "NSE"], rel=1e-5)


def test_evaluate_and_runs_commands(trained_run):
    store = str(trained_run.path.parent)
    proc = run_cli("evaluate", trained_run.run_id, "--out", store)
    assert proc.returncode == 0, proc.stderr
    med = re.search(r"median NSE (-?\d+\.\d+)", proc.stdout)
    assert med and float(med.group(1)) == pytest.approx(trained_run.metrics()["NSE"].median(), abs=1e-3)
    proc = run_cli("runs", "--out", store)
    assert proc.returncode == 0 and trained_run.run_id in proc.stdout and "done" in proc.stdout


def test_unknown_basin_and_run_give_clear_errors(tmp_path, data_root):
    proc = run_cli("train", "--basins", "99999999", "--epochs", "1", "--out", str(tmp_path),
                   "--data-root", str(data_root), "--no-progress")
    assert proc.returncode == 2
    assert "99999999" in proc.stderr
    proc = run_cli("evaluate", "no-such-run", "--out", str(tmp_path))
    assert proc.returncode == 2 and "no-such-run" in proc.stderr


def test_bad_config_file_names_the_field(tmp_path):
    p = tmp_path / "cfg.yaml"
    p.write_text("model:\n  hidden: -3\n")
    proc = run_cli("train", "--config", str(p), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 2
    assert "model.hidden" in proc.stderr and "cfg.yaml" in proc.stderr


def test_sigterm_keeps_checkpoint_and_resume_continues(tmp_path, data_root):
    """A killed training leaves a readable status and its last epoch; --resume finishes the run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from core.runs import RunStore
    from tests.conftest import REPO

    store = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "train", "--basins", "3", "--epochs", "50",
                             "--out", str(store), "--data-root", str(data_root), "--no-progress",
                             "--no-evaluate"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ})
    deadline = time.time() + 300
    ckpt = None
    while time.time() < deadline and ckpt is None:
        time.sleep(1)
        found = list(store.glob("*/checkpoints/epoch_001.pt"))
        ckpt = found[0] if found else None
    assert ckpt is not None, "no epoch finished in time"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    run = RunStore(store).list()[0]
    st = RunStore(store).get(run.run_id).status()
    assert st["state"] == "failed" and "--resume" in st["message"]
    done = st["epoch"]
    assert done >= 1 and (ckpt.parent / "last.pt").exists()
    res = run_cli("train", "--resume", run.run_id, "--epochs", str(done + 1), "--out", str(store),
                  "--no-progress", "--no-evaluate")
    assert res.returncode == 0, res.stderr
    st = RunStore(store).get(run.run_id).status()
    assert st["epoch"] == done + 1
    log = RunStore(store).get(run.run_id).train_log()
    assert list(log["epoch"]) == list(range(1, done + 2))


def test_train_on_raw_camels_us_files(tmp_path, data_root):
    """The raw CAMELS-US layout (Daymet forcing, Hargreaves PET, USGS cfs -> mm/d) trains end to end,
    with gauge ids written unquoted in YAML (leading zeros kept)."""
    cfg = tmp_path / "raw.yaml"
    cfg.write_text(
        "data:\n  source: camels_us/daymet\n  basins: [01022500, 01547700, 02064000, 03015500]\n"
        "  train_start: 2000-01-01\n  train_end: 2001-12-31\n  test_start: 2002-01-01\n"
        "  test_end: 2002-12-31\n"
        "model: {variant: delta_n, nmul: 2, hidden: 8}\n"
        "train: {epochs: 1, batch_size: 4, iters_per_epoch: 3, warmup: 120, rho: 180, optimizer: adam}\n")
    proc = run_cli("train", "--config", str(cfg), "--out", str(tmp_path / "runs"), "--data-root",
                   str(data_root), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    from core.runs import RunStore

    run = RunStore(tmp_path / "runs").latest()
    m = run.metrics()
    assert sorted(m.index) == ["01022500", "01547700", "02064000", "03015500"]
    assert np.isfinite(m["NSE"]).all()
    with run.outputs() as ds:
        assert str(ds.time.values[0])[:10] == "2002-01-01" and ds.sizes["time"] == 365


def test_up_passes_every_train_option(tmp_path, monkeypatch):
    """`hydrolens up` calls train() as a function: every option must be given a value, or
    typer's OptionInfo default reaches the config (a fresh-clone `make demo` failed that way)."""
    import inspect

    import typer

    from core import cli

    calls = {}
    monkeypatch.setattr(cli, "train", lambda **kw: calls.update(train=kw))
    monkeypatch.setattr(cli, "serve", lambda **kw: calls.update(serve=kw))
    up = next(c.callback for c in cli.app.registered_commands if c.callback.__name__ == "up")
    up(port=1, address="127.0.0.1", data_root=None, out=tmp_path)
    assert set(calls["train"]) == set(inspect.signature(
        next(c.callback for c in cli.app.registered_commands if c.callback.__name__ == "train")).parameters)
    assert not any(isinstance(v, typer.models.OptionInfo) for v in calls["train"].values())


def test_a_piped_log_gets_one_line_per_epoch_and_no_bar_frames(tmp_path, data_root):
    """Progress output off a terminal (jobs, CI, `make demo > log`): no tqdm frames (carriage
    returns), one line per finished epoch."""
    proc = run_cli("train", "--config", str(_tiny_smap(tmp_path)), "--sites", "0,2", "--out",
                   str(tmp_path / "runs"), "--data-root", str(data_root), "--no-evaluate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # (text mode turns a bar's carriage returns into newlines: look for the bar's own text)
    assert "it/s" not in proc.stderr and "%|" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if re.match(r"epoch \d+/3 ", ln)]
    assert [ln.split()[1] for ln in lines] == ["1/3", "2/3", "3/3"], proc.stdout


def _tiny_smap(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    # the eager VIC loop: on 2 cells x 3 x 2 windows it is faster than torch.compile's first build
    cfg.write_text("preset: smap\nmodel: {variant: ffn_a, engine: reference}\ndata: {val_sites: null, test_sites: null}\n"
                   "train: {epochs: 3, batch_size: 2, rho: 30, warmup: 366, iters_per_epoch: 2, "
                   "threads: 1}\n")
    return cfg


def test_jobs_group_out_reaches_its_subcommands(tmp_path):
    """`hydrolens jobs --out DIR cancel JOB` acts on DIR's queue (it used to fall back to ./runs
    silently, so a cancel landed in the wrong store); the subcommand's own --out wins."""
    from core.jobs import JobRunner

    a, b = tmp_path / "a", tmp_path / "b"
    job = JobRunner(a, max_running=0).submit_train({"name": "queued-only"}, start=False)
    proc = run_cli("jobs", "--out", str(a), "cancel", job.job_id)
    assert proc.returncode == 0 and f"job {job.job_id}: cancelled" in proc.stdout, proc.stdout + proc.stderr
    assert JobRunner(a).get(job.job_id).state == "cancelled"
    proc = run_cli("jobs", "--out", str(a), "cancel", "nojob", "--out", str(b))
    assert proc.returncode != 0 and f"no job 'nojob' in {b}" in proc.stderr and "Traceback" not in proc.stderr
