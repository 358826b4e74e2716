"""Data-parallel training through torchrun (gloo on CPU), real processes: a 2-rank run's weights
equal a single process's on the same global batch and seed, also across a resume; a batch that
does not divide by the ranks is refused with the field named."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import needs_data, run_cli

pytestmark = [needs_data, pytest.mark.data, pytest.mark.slow]

CONFIG = ("model: {variant: delta_n, hidden: 16, nmul: 2, dropout: 0.0}\n"
          "train: {epochs: 2, batch_size: 4, rho: 60, warmup: 60, iters_per_epoch: 3, threads: 1, seed: 3, "
          "optimizer: adam, lr: 0.01}\n")


def _train(tmp_path, name, *extra):
    conf = tmp_path / "ddp.yaml"
    conf.write_text(CONFIG)
    proc = run_cli("train", "--config", str(conf), "--basins", "4", "--out", str(tmp_path / "runs"), "--name", name,
                   "--no-evaluate", "--no-progress", "--data-root", str(pytest.data_root), *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _weights(tmp_path, name):
    from core.runs import RunStore

    store = RunStore(tmp_path / "runs")
    run = next(store.get(i.run_id) for i in store.list() if i.name == name)
    return run, torch.load(run.checkpoint_dir / "last.pt", weights_only=False)["model"]


def _rel(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).norm() / (a[k].norm() + 1e-12)) for k in a if a[k].is_floating_point())


def test_two_gloo_ranks_update_the_weights_as_one_process_does(tmp_path, data_root):
    pytest.data_root = data_root
    _train(tmp_path, "one", "--epochs", "3")
    proc = _train(tmp_path, "two", "--nproc", "2")
    assert "2 data-parallel ranks (torchrun, gloo)" in proc.stdout
    run2, w2 = _weights(tmp_path, "two")
    assert run2.config()["train"]["nproc"] == 2 and len(run2.train_log()) == 2
    # resume on 2 ranks (train.nproc is in the run's config) to the single process's 3 epochs
    proc = run_cli("train", "--resume", run2.run_id, "--epochs", "3", "--out", str(tmp_path / "runs"),
                   "--no-evaluate", "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run1, w1 = _weights(tmp_path, "one")
    run2, w2 = _weights(tmp_path, "two")
    assert run2.train_log()["epoch"].tolist() == [1, 2, 3]
    assert _rel(w1, w2) <= 1e-5, _rel(w1, w2)
    torch.testing.assert_close(torch.tensor(run1.train_log()["loss"].to_numpy()),
                               torch.tensor(run2.train_log()["loss"].to_numpy()), rtol=1e-5, atol=0)


def test_a_batch_that_does_not_divide_by_the_ranks_is_refused(tmp_path, data_root):
    conf = tmp_path / "ddp.yaml"
    conf.write_text(CONFIG)
    proc = run_cli("train", "--config", str(conf), "--basins", "4", "--nproc", "3", "--out", str(tmp_path / "runs"),
                   "--data-root", str(data_root))
    assert proc.returncode != 0 and "train.batch_size 4 must divide by train.nproc 3" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ranks_also_train_inside_a_job(tmp_path, data_root):
    """train.nproc is part of the run's config, so the job runner's `train --resume RUN` starts
    the ranks too."""
    from core.jobs import JobRunner
    from core.training.config import compose_config

    conf = tmp_path / "ddp.yaml"
    conf.write_text(CONFIG)
    cfg = compose_config(conf, overrides={"data.sites": "4", "data.root": str(data_root), "train.nproc": 2,
                                          "name": "in-a-job"})
    runner = JobRunner(tmp_path / "runs", scheduler="")
    job = runner.submit_train(cfg.to_dict())
    done = runner.wait([job.job_id], poll=0.5, timeout=300)[0]
    assert done.state == "done", done.log_tail(30)
    assert "2 data-parallel ranks (torchrun, gloo)" in done.log_tail(60)
    run = runner.store.get(done.run_id)
    assert len(run.train_log()) == 2 and run.has_evaluation()
