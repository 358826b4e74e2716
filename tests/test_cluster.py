"""Jobs on a real Dask cluster (a LocalCluster of worker processes on 127.0.0.1), never a mock:
submit and wait, cancel, a worker killed with SIGKILL mid-training (the job runs again and resumes
its run), a CUDA job refused by a CPU-only cluster, an unreachable scheduler; the SLURM job script
of dask-jobqueue from the settings file."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.conftest import needs_data, run_cli

distributed = pytest.importorskip("distributed", reason="the [cluster] extra (distributed, dask-jobqueue) "
                                  "is not installed: pip install -e \".[cluster]\"")

pytestmark = [needs_data, pytest.mark.data, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster():
    from core.cluster import disconnect

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as c:
        yield c
        disconnect(c.scheduler_address)


def _config(data_root, epochs: int, iters: int, name: str) -> dict:
    from core.training.config import SET_NONE, compose_config

    return compose_config("smap", overrides={
        "model.variant": "ffn_a", "data.sites": "0,2", "data.test_sites": SET_NONE, "data.val_sites": SET_NONE,
        "data.root": str(data_root), "train.epochs": epochs, "train.iters_per_epoch": iters,
        "train.batch_size": 2, "train.threads": 1, "train.keep_checkpoints": 1000, "name": name}).to_dict()


def _wait_for(predicate, timeout: float, what: str):
    t0 = time.monotonic()
    while not (value := predicate()):
        assert time.monotonic() - t0 < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.3)
    return value


def test_a_job_runs_on_a_dask_worker_and_reads_like_a_local_one(cluster, tmp_path, data_root):
    from core.jobs import JobRunner

    runner = JobRunner(tmp_path, scheduler=cluster.scheduler_address)
    job = runner.submit_train(_config(data_root, epochs=2, iters=2, name="on-dask"))
    assert job.info["executor"] == "dask" and job.info["scheduler"] == cluster.scheduler_address
    done = runner.wait([job.job_id], poll=0.5, timeout=240)[0]
    assert done.state == "done", done.log_tail()
    worker = (job.path / "worker.json").read_text()
    assert any(w in worker for w in cluster.scheduler_info["workers"])
    run = runner.store.get(done.run_id)
    assert run.status()["state"] == "done" and len(run.train_log()) == 2
    assert "job done (exit 0)" in done.log_tail()
    # the explorer's job card and the CLI's job list say where it ran
    from explorer.workbench import _where

    assert f"on Dask {cluster.scheduler_address}" in _where(done)
    assert _where(runner.get(done.job_id)) and not _where(type(done)(**{**done.__dict__, "info": {}}))
    proc = run_cli("jobs", "--out", str(tmp_path))
    assert proc.returncode == 0 and f"[dask {cluster.scheduler_address}]" in proc.stdout, proc.stdout


def test_cancel_stops_a_job_on_a_worker_within_10_s(cluster, tmp_path, data_root):
    from core.jobs import JobRunner

    runner = JobRunner(tmp_path, scheduler=cluster.scheduler_address)
    job = runner.submit_train(_config(data_root, epochs=200, iters=20, name="cancel-me"))
    run = runner.store.get(job.run_id)
    _wait_for(lambda: run.status().get("state") == "training" and run.status().get("epoch", 0) >= 1, 180,
              "training on the worker")
    t0 = time.monotonic()
    runner.cancel(job.job_id)
    ended = _wait_for(lambda: (j := runner.get(job.job_id)).final and j, 10, "cancelled")
    print(f"cancelled after {time.monotonic() - t0:.1f} s")
    assert ended.state == "cancelled"
    st = run.status()
    assert st["state"] == "failed" and f"--resume {run.run_id}" in st["message"]


def test_a_worker_killed_mid_training_loses_at_most_its_epoch(cluster, tmp_path, data_root):
    from core.jobs import JobRunner

    runner = JobRunner(tmp_path, scheduler=cluster.scheduler_address)
    job = runner.submit_train(_config(data_root, epochs=8, iters=25, name="survivor"))
    run = runner.store.get(job.run_id)
    _wait_for(lambda: run.status().get("epoch", 0) >= 2 and run.status().get("state") == "training", 180,
              "two epochs on a worker")
    first = __import__("json").loads((job.path / "worker.json").read_text())
    epoch_at_kill = run.status()["epoch"]
    os.kill(first["pid"], signal.SIGKILL)
    done = runner.wait([job.job_id], poll=0.5, timeout=300)[0]
    assert done.state == "done", done.log_tail(40)
    second = __import__("json").loads((job.path / "worker.json").read_text())
    assert second["pid"] != first["pid"]
    log = run.train_log()
    assert log["epoch"].tolist() == list(range(1, 9))  # every epoch once, none lost after the kill
    print(f"killed worker {first['worker']} after epoch {epoch_at_kill}; resumed on {second['worker']}")


def test_cuda_jobs_and_unreachable_schedulers_are_refused_with_a_reason(cluster, tmp_path, data_root):
    from core.jobs import JobError, JobRunner

    cfg = _config(data_root, epochs=1, iters=1, name="gpu")
    cfg["train"]["device"] = "cuda"
    with pytest.raises(JobError, match="no worker of the cluster .* offers a GPU"):
        JobRunner(tmp_path, scheduler=cluster.scheduler_address).submit_train(cfg)
    with pytest.raises(JobError, match="no Dask scheduler answers at tcp://127.0.0.1:9"):
        JobRunner(tmp_path / "b", scheduler="tcp://127.0.0.1:9").submit_train(_config(data_root, 1, 1, "x"))


def test_the_slurm_job_script_carries_the_settings(tmp_path):
    from core.cluster import ClusterError, read_slurm_config

    conf = tmp_path / "slurm.yaml"
    conf.write_text("queue: gpu\naccount: hydro\ncores: 8\nmemory: 32GB\nwalltime: '02:00:00'\ngpus: 1\n"
                    "python: /opt/hydrolens/.venv/bin/python\nsetup: [module load cuda/12]\n")
    proc = run_cli("cluster", "slurm", "--config", str(conf), "--print-script")
    assert proc.returncode == 0, proc.stderr
    script = proc.stdout
    for line in ("#SBATCH -p gpu", "#SBATCH -A hydro", "#SBATCH --cpus-per-task=8", "#SBATCH -t 02:00:00",
                 "#SBATCH --gres=gpu:1", "module load cuda/12", "/opt/hydrolens/.venv/bin/python -m distributed",
                 "--resources GPU=1", "--nthreads 8"):
        assert line in script, line
    conf.write_text("cores: eight\nmemory: 4GB\nqueu: x\n")
    with pytest.raises(ClusterError, match="cores.*queu|queu.*cores"):
        read_slurm_config(conf)
    proc = run_cli("cluster", "slurm", "--config", str(conf), "--print-script")
    assert proc.returncode != 0 and "slurm.yaml" in proc.stderr and "Traceback" not in proc.stderr


def test_sceua_fans_out_over_the_cluster_with_the_same_result(cluster, data_root):
    """Per-cell SCE-UA as one Dask task per cell (spotpy sequential inside): the θ of each cell
    equals the local sequential calibration's (same seeds)."""
    from core.datasets.smap import load_smap, smap_splits
    from core.models.sceua import calibrate_cells, cell_problems

    ds = load_smap(data_root)
    problems = cell_problems(ds, smap_splits(ds)["SPARSE"][:3], "2015-04-01", "2016-03-31")
    local = calibrate_cells(problems, max_evals=120, processes=1)
    on_dask = calibrate_cells(problems, max_evals=120, scheduler=cluster.scheduler_address)
    assert [r.site for r in on_dask] == [p.site for p in problems]
    for a, b in zip(local, on_dask):
        assert a.theta == b.theta and a.rmse == b.rmse


def test_the_launch_tab_runs_a_job_on_a_dask_cluster_or_says_why_not(cluster, tmp_path, data_root, monkeypatch):
    from core.jobs import JobRunner
    from core.runs import RunStore
    from explorer.state import AppState
    from explorer.workbench import LaunchPanel

    monkeypatch.setenv("HYDROLENS_DATA_ROOT", str(data_root))
    store = RunStore(tmp_path)
    runner = JobRunner(store)
    state = AppState(store=store)
    launched = []
    panel = LaunchPanel(state, runner, on_launch=launched.append)
    panel.variant.value = "ffn_a"
    state.selection = ["0", "2"]
    panel.epochs.value, panel.iters.value = 1, 1
    panel.run_on.value = "Dask cluster"
    assert panel.scheduler.visible
    panel.scheduler.value = "tcp://127.0.0.1:9"
    assert 'data-cluster="unreachable"' in panel.cluster_note.object
    assert "no Dask scheduler answers at tcp://127.0.0.1:9" in panel.cluster_note.object
    panel._launch()
    assert "Cannot launch: no usable Dask cluster" in panel.feedback.object and not launched
    panel.scheduler.value = cluster.scheduler_address
    assert 'data-workers="2"' in panel.cluster_note.object and "no GPU" in panel.cluster_note.object
    panel._launch()
    assert launched, panel.feedback.object
    job = launched[0]
    assert job.info["executor"] == "dask"
    assert runner.wait([job.job_id], poll=0.5, timeout=240)[0].state == "done"


def test_the_scheduler_comes_from_the_argument_else_the_environment(tmp_path, monkeypatch):
    """`--scheduler`, else $HYDROLENS_SCHEDULER (so `hydrolens benchmark --scheduler` and an
    exported variable send every job of the matrix to the cluster); "" means this machine."""
    from core.jobs import JobRunner

    monkeypatch.delenv("HYDROLENS_SCHEDULER", raising=False)
    assert JobRunner(tmp_path).executor == "local"
    monkeypatch.setenv("HYDROLENS_SCHEDULER", "tcp://10.0.0.1:8786")
    assert JobRunner(tmp_path).executor == "dask" and JobRunner(tmp_path).scheduler == "tcp://10.0.0.1:8786"
    assert JobRunner(tmp_path, scheduler="").executor == "local"
    assert JobRunner(tmp_path, scheduler="tcp://h:1").scheduler == "tcp://h:1"


def test_hydrolens_cluster_local_prints_an_address_that_takes_jobs(tmp_path):
    """`hydrolens cluster local` starts a LocalCluster, prints its scheduler address and
    dashboard, and stops on SIGTERM."""
    import subprocess
    import sys

    from core.cluster import cluster_info, connect, disconnect

    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "cluster", "local", "--workers", "1", "--threads", "1",
                             "--dashboard", ":0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = []
        t0 = time.monotonic()
        while not any(line.startswith("scheduler tcp://") for line in lines):
            assert time.monotonic() - t0 < 60, f"no scheduler address printed: {lines}"
            lines.append(proc.stdout.readline().strip())
        address = next(line for line in lines if line.startswith("scheduler ")).split()[1]
        while not any(line.startswith("use it: export HYDROLENS_SCHEDULER=") for line in lines):
            lines.append(proc.stdout.readline().strip())
        assert any(line.startswith("dashboard http") for line in lines), lines
        info = cluster_info(connect(address))
        assert info.workers == 1 and info.threads == 1
        disconnect(address)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
