"""The run-output contract (outputs.nc, parameters.nc, the display API) and the job runner.

Uses the real `trained_run` (demo preset: δn(γᵗ,βᵗ), 5 basins, 1 epoch) and real training jobs
of 5 basins through `core.jobs` (each a few seconds of training plus evaluation).
"""

from __future__ import annotations

import os
import shutil
import signal
import time

import numpy as np
import pytest
import xarray as xr

from core.jobs import JobError, JobRunner
from core.physics import ALL_PARAMETERS
from core.runs import RunStore

pytestmark = pytest.mark.slow


# -- outputs.nc and parameters.nc ----------------------------------------------------------------


def test_parameters_nc_holds_static_and_dynamic_parameters_with_units_and_bounds(trained_run):
    cfg = trained_run.config()
    with xr.open_dataset(trained_run.parameters_path) as p, xr.open_dataset(trained_run.outputs_path) as o:
        assert list(p.site.values) == list(o.site.values)
        np.testing.assert_array_equal(p.time.values, o.time.values)  # the simulated (test) period
        assert str(p.time.values[0])[:10] == cfg["data"]["test_start"]
        dynamic = {n for n, v in p.data_vars.items() if v.attrs["parameter_type"] == "dynamic"}
        assert dynamic == {"BETA", "GAMMA"} and p.attrs["dynamic"] == "BETA,GAMMA"
        for name, var in p.data_vars.items():
            spec = ALL_PARAMETERS[name]
            assert var.attrs["units"] == spec.units and var.attrs["long_name"] == spec.description
            assert (var.attrs["valid_min"], var.attrs["valid_max"]) == (spec.lower, spec.upper)
            assert var.dims == (("site", "time") if name in dynamic else ("site",))
            values = var.to_numpy()
            assert np.isfinite(values).all()
            assert (values >= spec.lower - 1e-5).all() and (values <= spec.upper + 1e-5).all()
        assert {"FC", "K0", "K1", "K2", "PERC", "route_a", "route_b"} <= set(p.data_vars)
        assert float(p["BETA"].std("time").max()) > 0  # βᵗ changes from day to day


def test_outputs_nc_is_self_describing(trained_run):
    with xr.open_dataset(trained_run.outputs_path) as o:
        for name in ("P", "T", "PET", "Q_obs", "Q_sim", "SWE", "SM", "ET"):
            assert o[name].attrs["units"] in ("mm d-1", "mm", "degC"), name
        assert o["P"].attrs["kind"] == "forcing" and o["SM"].attrs["kind"] == "state"
        np.testing.assert_allclose(o["SWE"], o["SNOWPACK"] + o["MELTWATER"], rtol=1e-6)
        assert float(o["P"].min()) >= 0 and float(o["PET"].min()) >= 0
        assert o.attrs["site_kind"] == "basin"
    panels = trained_run.panels()
    assert [p["variables"] for p in panels][:2] == [["P", "T"], ["Q_obs", "Q_sim"]]
    assert panels[0]["right"] == ["T"]  # °C on its own axis beside mm/d
    assert any(p["style"] == "stacked" and p["variables"] == ["Q0", "Q1", "Q2"] for p in panels)
    kinds = {v.name: v for v in trained_run.variables()}
    assert kinds["BETA"].parameter_type == "dynamic" and kinds["BETA"].bounds == (1.0, 6.0)
    assert kinds["FC"].kind == "parameter" and kinds["FC"].units == "mm"
    assert kinds["Q_obs"].kind == "observation" and kinds["T"].units == "degC"


def test_site_series_reads_one_site_and_matches_the_files(trained_run):
    site = str(trained_run.metrics().index[1])
    frame = trained_run.site_series(site)
    with xr.open_dataset(trained_run.outputs_path) as o, xr.open_dataset(trained_run.parameters_path) as p:
        np.testing.assert_allclose(frame["Q_sim"], o["Q_sim"].sel(site=site), rtol=1e-6)
        np.testing.assert_allclose(frame["BETA"], p["BETA"].sel(site=site), rtol=1e-6)
        table = trained_run.site_parameters()
        assert table.loc[site, "FC"] == pytest.approx(float(p["FC"].sel(site=site)))
        assert table.loc[site, "BETA"] == pytest.approx(float(p["BETA"].sel(site=site).mean()), rel=1e-5)
    with pytest.raises(KeyError, match="99999999"):
        trained_run.site_series("99999999")


def test_components_on_request_average_to_the_saved_means(trained_run, tmp_path):
    from core.evaluation import evaluate_run

    run = RunStore(tmp_path).get(shutil.copytree(trained_run.path, tmp_path / trained_run.run_id).name)
    evaluate_run(run, components=True)
    with xr.open_dataset(run.parameters_path) as p:
        assert p["FC_components"].dims == ("site", "component") and p.sizes["component"] == 16
        assert p["BETA_components"].dims == ("site", "time", "component")
        np.testing.assert_allclose(p["FC_components"].mean("component"), p["FC"], rtol=1e-5)
        np.testing.assert_allclose(p["BETA_components"].mean("component"), p["BETA"], rtol=1e-5)


def test_metrics_hold_the_water_balance_signatures(trained_run):
    m = trained_run.metrics()
    np.testing.assert_allclose(m["P_minus_Q"], m["P_mean"] - m["Q_obs_mean"], rtol=1e-6)
    np.testing.assert_allclose(m["BFI_diff"], m["BFI_sim"] - m["BFI_camels"], rtol=1e-6)
    assert ((m["BFI_sim"] >= 0) & (m["BFI_sim"] <= 1)).all()  # ΣQ2 ≤ ΣQ


# -- the job runner ---------------------------------------------------------------------------------


def small_config(trained_run, epochs=1, iters=3, name="job") -> dict:
    cfg = trained_run.config()
    cfg["train"].update(epochs=epochs, iters_per_epoch=iters)
    cfg["name"] = name
    return cfg


def wait_for(predicate, timeout=120.0, poll=0.2):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s")


def test_a_job_trains_and_evaluates_its_run_and_the_queue_holds_the_second(trained_run, tmp_path):
    runner = JobRunner(tmp_path, max_running=1)
    # long enough (several seconds) that a progress update lands inside the epoch: the trainer
    # writes one per second (core.training.trainer.STATUS_EVERY_S)
    first = runner.submit_train(small_config(trained_run, iters=150, name="first"))
    second = runner.submit_train(small_config(trained_run, name="second"))
    assert runner.get(first.job_id).state == "running" and runner.get(second.job_id).state == "queued"
    with pytest.raises(JobError, match="already has job"):
        runner.submit_resume(second.run_id)
    def running_progress():
        job = runner.get(first.job_id)
        assert not job.final, f"job ended ({job.state}) before any progress was seen"
        p = runner.progress(job)
        return p.iteration > 0 and p

    seen = wait_for(running_progress, timeout=180, poll=0.1)
    assert 0 < seen.fraction < 1 and seen.epochs == 1 and seen.iters == 150
    jobs = runner.wait([first.job_id, second.job_id], poll=0.5, timeout=400)
    assert [j.state for j in jobs] == ["done", "done"], [j.log_tail() for j in jobs]
    for job in jobs:
        run = runner.store.get(job.run_id)
        assert run.info().state == "done" and run.has_evaluation() and run.parameters_path.exists()
        assert runner.progress(job).fraction == 1.0
        assert "test median NSE" in job.log_tail(50)
    # the second started only after the first ended (concurrency limit 1)
    assert jobs[1].info["started"] >= jobs[0].info["ended"]


def test_cancel_keeps_the_run_resumable_and_resume_finishes_it(trained_run, tmp_path):
    runner = JobRunner(tmp_path, max_running=1)
    job = runner.submit_train(small_config(trained_run, epochs=3, iters=40, name="cancel"))
    wait_for(lambda: runner.progress(runner.get(job.job_id)).epoch >= 1, timeout=240)
    runner.cancel(job.job_id)
    ended = wait_for(lambda: (j := runner.get(job.job_id)).final and j, timeout=120)
    assert ended.state == "cancelled"
    run = runner.store.get(job.run_id)
    status = run.status()
    assert status["state"] == "failed" and "--resume" in status["message"]
    assert (run.checkpoint_dir / "last.pt").exists()
    done_epochs = status["epoch"]
    with pytest.raises(JobError, match="already ended"):
        runner.cancel(job.job_id)
    again = runner.resume(job.job_id)
    final = runner.wait([again.job_id], poll=0.5, timeout=400)[0]
    assert final.state == "done", final.log_tail()
    assert f"resuming after epoch {done_epochs}" in final.log_tail(50)
    assert run.info().epochs_done == 3 and run.has_evaluation()


def test_a_killed_worker_is_reported_and_a_queued_job_can_be_cancelled(trained_run, tmp_path):
    runner = JobRunner(tmp_path, max_running=1)
    job = runner.submit_train(small_config(trained_run, epochs=2, iters=200, name="killed"))
    queued = runner.submit_train(small_config(trained_run, name="queued"))
    assert runner.cancel(queued.job_id).state == "cancelled"
    wait_for(lambda: runner.progress(runner.get(job.job_id)).iteration > 0, timeout=180)
    pid = runner.get(job.job_id).info["pid"]
    os.killpg(os.getpgid(pid), signal.SIGKILL)  # worker and trainer die without a word
    ended = wait_for(lambda: (j := runner.get(job.job_id)).final and j, timeout=60)
    assert ended.state == "failed" and "resumed" in ended.message
    # the trainer (the worker's child) dies with it; its lock is gone once the kernel has reaped it
    run = runner.store.get(job.run_id)
    wait_for(lambda: run.info().state == "interrupted", timeout=30)
    assert runner.get(queued.job_id).state == "cancelled"  # never started
    assert runner.jobs(pump=True)[0].state in ("cancelled", "failed")


def test_job_workers_wait_passively_only_where_jobs_share_the_cores(tmp_path, monkeypatch):
    """Two trainings side by side on 2 cores ran 5.8 s an epoch with spinning OpenMP threads and
    3.7 s with sleeping ones (docs/performance.md): a runner that may run more than one job gives
    its workers OMP_WAIT_POLICY=PASSIVE; a one-job runner, and a user's own policy, are left alone."""
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    store = RunStore(tmp_path)
    one, two = JobRunner(store, max_running=1).job_env(), JobRunner(store, max_running=2).job_env()
    assert "OMP_WAIT_POLICY" not in one and one["HYDROLENS_MAX_JOBS"] == "1"
    assert two["OMP_WAIT_POLICY"] == "PASSIVE" and two["HYDROLENS_MAX_JOBS"] == "2"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert JobRunner(store, max_running=2).job_env()["OMP_WAIT_POLICY"] == "ACTIVE"


def test_the_jobs_of_one_run_start_in_submission_order(tmp_path, monkeypatch):
    """A learning curve queued behind its run's training waits for it even with a free slot,
    while another run's job takes the slot; one job per command and run."""
    import core.jobs as jobs_mod

    store = RunStore(tmp_path)
    a, b = store.create("a"), store.create("b")
    runner = JobRunner(store, max_running=2)
    started = []

    def fake_start(self, job):  # record, and mark it running as a live worker would
        started.append(job.job_id)
        spec = jobs_mod._read_json(job.path / "job.json")
        spec.update(state="running", pid=4242)
        jobs_mod.write_json_atomic(job.path / "job.json", spec)

    monkeypatch.setattr(JobRunner, "_start", fake_start)
    monkeypatch.setattr(jobs_mod, "_alive", lambda spec: spec.get("pid") == 4242)
    train_a = runner.submit_resume(a.run_id, start=False)
    curve_a = runner.submit_curve(a.run_id, 5, data_root="/data", start=False)
    train_b = runner.submit_resume(b.run_id, start=False)
    assert train_a.job_id < curve_a.job_id < train_b.job_id  # ids sort in submission order
    assert curve_a.args == ["learning-curve", a.run_id, "--out", str(tmp_path), "--every", "5",
                            "--data-root", "/data"]
    runner.pump()
    assert started == [train_a.job_id, train_b.job_id]
    with pytest.raises(JobError, match="already has job"):
        runner.submit_curve(a.run_id, 2)
    jobs_mod.write_json_atomic(train_a.path / "result.json", {"state": "done", "returncode": 0})
    runner.pump()
    assert started[-1] == curve_a.job_id
    p = runner.progress(runner.get(curve_a.job_id))
    assert p.fraction == 0.0 and p.epochs == 0 and "scoring the epoch checkpoints" in p.message
    jobs_mod.write_json_atomic(curve_a.path / "result.json", {"state": "done", "returncode": 0})
    assert runner.progress(runner.get(curve_a.job_id)).fraction == 1.0
    again = runner.resume(curve_a.job_id)  # an ended curve job resumes as the same command
    assert again.args == curve_a.args and again.job_id > train_b.job_id


def test_the_eta_takes_the_typical_epoch_not_a_burst(tmp_path):
    """A burst of other load in the current epoch (here 10x slower) does not swing the ETA: it
    uses the median seconds of the last finished epochs (hydrolens jobs showed 4063 s against
    ~2200 s real before)."""
    from core.jobs import _typical_rate

    run = RunStore(tmp_path).create("eta")
    assert _typical_rate(run, 200, 2.5) == 2.5  # no finished epoch yet: the current rate
    run.train_log_path.write_text("epoch,updates,loss,seconds\n1,200,1.0,48.0\n2,400,0.9,52.0\n"
                                  "3,600,0.8,50.0\n4,800,0.8,400.0\n")
    assert _typical_rate(run, 200, 2.5) == pytest.approx(51.0 / 200)


def test_an_early_stopping_runs_eta_names_the_stop_and_the_cap(tmp_path, monkeypatch):
    """Epoch 57 of at most 100, best epoch 53, patience 10: without a better validation the run
    stops after epoch 63, 6 epochs away, not 43 (hydrolens jobs showed only the cap's 'ETA 5018 s')."""
    import core.jobs as jobs_mod
    from core.cli import _job_line

    store = RunStore(tmp_path)
    run = store.create("es")
    run.config_path.write_text("train: {patience: 10, val_every: 1}\n")
    run.train_log_path.write_text("epoch,updates,loss,seconds\n" +
                                  "".join(f"{e},{57 * e},0.1,114.0\n" for e in range(1, 58)))
    run.update_status(state="training", epoch=57, epochs=100, iters_per_epoch=57, iteration=57,
                      seconds_per_iteration=2.0, best_epoch=53, n_val_sites=100, loss=0.1)
    runner = JobRunner(store, max_running=1)
    monkeypatch.setattr(JobRunner, "_start", lambda self, job: jobs_mod.write_json_atomic(
        job.path / "job.json", {**jobs_mod._read_json(job.path / "job.json"), "state": "running", "pid": 4242}))
    monkeypatch.setattr(jobs_mod, "_alive", lambda spec: spec.get("pid") == 4242)
    job = runner.submit_resume(run.run_id)
    p = runner.progress(runner.get(job.job_id))
    assert p.eta_s == pytest.approx(43 * 114.0) and p.eta_stop_s == pytest.approx(6 * 114.0)
    assert "ETA 11 min 24 s if validation stops improving (≤ 81 min 42 s)" in _job_line(runner, runner.get(job.job_id))
    run.update_status(best_epoch=95)  # the stop beyond the cap: only the cap
    assert runner.progress(runner.get(job.job_id)).eta_stop_s is None
    run.config_path.write_text("train: {patience: 0}\n")  # no early stopping
    run.update_status(best_epoch=53)
    assert runner.progress(runner.get(job.job_id)).eta_stop_s is None


def test_the_eta_reads_in_minutes_and_seconds():
    from core.jobs import Progress

    assert Progress().eta_text() == "" and Progress(eta_s=42.4).eta_text() == "ETA 42 s"
    assert (Progress(eta_s=4902.0, eta_stop_s=684.0).eta_text()
            == "ETA 11 min 24 s if validation stops improving (≤ 81 min 42 s)")
