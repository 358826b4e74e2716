"""Loss, sampler, config validation, atomic checkpoints and the run store (no data needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.datasets.sampler import WindowSampler
from core.runs import RunNotFoundError, RunStore, write_json_atomic
from core.training import ConfigError, RunConfig, preset_config, rmse_comb_loss


def test_loss_by_hand():
    sim = torch.tensor([[1.0], [2.0], [4.0]])
    obs = torch.tensor([[1.0], [float("nan")], [2.0]])
    t = lambda q: math.log10(math.sqrt(q + 1e-6) + 0.1)  # noqa: E731
    rmse1 = math.sqrt((0 + 4) / 2)
    rmse2 = math.sqrt(((t(1) - t(1)) ** 2 + (t(4) - t(2)) ** 2) / 2)
    expected = 0.75 * rmse1 + 0.25 * rmse2
    assert float(rmse_comb_loss(sim, obs, alpha=0.25)) == pytest.approx(expected, rel=1e-6)
    sim.requires_grad_()
    rmse_comb_loss(sim, obs).backward()
    assert sim.grad[1, 0] == 0  # a missing day carries no gradient
    assert torch.isfinite(sim.grad).all()


def test_sampler_skips_windows_without_observations():
    nt, nb = 100, 3
    q = np.full((nt, nb), np.nan, dtype=np.float32)
    q[90:, 0] = 1.0  # basin 0 observed only at the very end
    q[:, 1] = 1.0  # basin 1 always observed; basin 2 never
    s = WindowSampler(q, warmup=20, rho=30, batch_size=5, seed=0)
    assert set(s.basins.tolist()) == {0, 1}
    assert s.batch_size == 2
    for _ in range(50):
        b, st = s.sample()
        for bi, si in zip(b, st):
            target = q[si + 20: si + 50, bi]
            assert np.isfinite(target).any()
    win = s.gather(np.arange(nt * nb).reshape(nt, nb), np.array([1]), np.array([7]))
    assert win.shape == (50, 1) and win[0, 0] == 7 * nb + 1
    with pytest.raises(ValueError, match="shorter than warm-up"):
        WindowSampler(q[:40], warmup=20, rho=30, batch_size=2)


def test_iterations_per_epoch_rule():
    q = np.ones((5113, 50), dtype=np.float32)
    s = WindowSampler(q, warmup=365, rho=365, batch_size=50)
    frac = 50 * 365 / ((5113 - 365) * 50)  # hydroDL: N·(T − warm-up) site-days can carry loss
    assert s.iterations_per_epoch() == math.ceil(math.log(0.01) / math.log(1 - frac)) == 58
    # the SMAP protocol (hydroDL optTrainSMAP [100, 30]) on 104 cells, a cycled year + one year
    smap = WindowSampler(np.ones((732, 104), np.float32), warmup=366, rho=30, batch_size=100)
    assert smap.iterations_per_epoch() == 57
    # held-out sites are never drawn, and the rule counts only the drawable ones
    part = WindowSampler(np.ones((732, 104), np.float32), warmup=366, rho=30, batch_size=100,
                         sites=np.arange(0, 104, 2))
    assert part.batch_size == 52 and set(part.sample()[0]) <= set(range(0, 104, 2))


def test_config_validation_names_the_field(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("model:\n  variant: delta_x\ntrain:\n  epochs: 0\n")
    with pytest.raises(ConfigError) as e:
        RunConfig.from_yaml(p)
    msg = str(e.value)
    assert "bad.yaml" in msg and "model.variant" in msg and "train.epochs" in msg
    p.write_text("data:\n  train_start: 2000-01-01\n  train_end: 1999-01-01\n")
    with pytest.raises(ConfigError, match="train_start"):
        RunConfig.from_yaml(p)
    with pytest.raises(ConfigError, match="unknown preset"):
        preset_config("nope")
    cfg = preset_config("demo")
    assert cfg.data.sites is None and cfg.model.variant == "delta_n_gamma_beta"
    assert cfg.train.loss == "nse_star" and cfg.train.epochs * cfg.train.iters_per_epoch == 1500
    again = RunConfig.from_dict(cfg.to_dict())
    assert again == cfg


def test_run_store_roundtrip_and_errors(tmp_path):
    store = RunStore(tmp_path / "runs")
    assert store.list() == []
    run = store.create("demo")
    run.update_status(state="training", epoch=1)
    run.write_config(preset_config("demo").to_dict())
    info = store.list()[0]
    assert info.run_id == run.run_id and info.state == "training" and info.variant == "delta_n_gamma_beta"
    with pytest.raises(RunNotFoundError, match=run.run_id):
        store.get("missing-run")
    with pytest.raises(ValueError, match="state"):
        run.update_status(state="bogus")
    with pytest.raises(FileNotFoundError, match="hydrolens evaluate"):
        run.metrics()


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "status.json"
    write_json_atomic(target, {"a": 1})

    class Boom:
        def __repr__(self):
            raise RuntimeError("boom")

    with pytest.raises(Exception):
        write_json_atomic(target, {"a": Boom()})
    assert target.read_text().strip().startswith("{") and '"a": 1' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temp file left


def test_dead_training_process_shows_as_interrupted(tmp_path):
    import socket
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    run = RunStore(tmp_path).create("x")
    run.update_status(state="training", pid=proc.pid, host=socket.gethostname())
    assert run.info().state == "interrupted"
    run.update_status(state="training", pid=__import__("os").getpid())
    assert run.info().state == "training"  # this process is alive


def test_yaml_gauge_ids_keep_their_leading_zeros(tmp_path):
    """Unquoted 01022500 is octal in YAML 1.1; the config loader keeps it as the gauge id."""
    p = tmp_path / "cfg.yaml"
    p.write_text("data:\n  basins: [01022500, 02064000, 09447800, 11532500, '01547700']\n")
    cfg = RunConfig.from_yaml(p)
    assert cfg.data.sites == ["01022500", "02064000", "09447800", "11532500", "01547700"]
    p.write_text("data:\n  basins: 50\ntrain:\n  epochs: 010\n")
    cfg = RunConfig.from_yaml(p)
    assert cfg.data.sites == 50


def test_pet_auto_resolves_per_source():
    assert RunConfig.from_dict({}).data.pet_method() == "oudin"  # Caravan ERA5-Land PET is biased
    raw = RunConfig.from_dict({"data": {"source": "camels_us"}})
    assert raw.data.source == "camels_us/daymet" and raw.data.pet_method() == "source"  # Hargreaves
    assert RunConfig.from_dict({"data": {"pet": "source"}}).data.pet_method() == "source"


def test_memory_settings_apply_and_can_be_switched_off(monkeypatch):
    """core sets huge pages for large tensors and glibc heap reuse (core/_runtime.py); the
    opt-out leaves the C allocator alone."""
    import os
    import sys

    import core  # noqa: F401
    from core._runtime import configure_memory

    assert os.environ.get("THP_MEM_ALLOC_ENABLE") in ("0", "1")
    if sys.platform.startswith("linux"):
        assert configure_memory() is True
    monkeypatch.setenv("HYDROLENS_DEFAULT_MALLOC", "1")
    assert configure_memory() is False


def test_precision_auto_follows_the_cpus_bf16_units_and_forced_bf16_without_them_warns(monkeypatch):
    """auto: bf16 only where the CPU has amx_bf16 or avx512_bf16; bf16 asked for on a CPU without
    them is emulated (~30x slower than fp32): it is kept, with a warning naming the CPU."""
    import warnings

    from core import _runtime

    monkeypatch.setattr(_runtime, "cpu_description", lambda: {"cpu": "AVX2 box", "bf16_flags": []})
    assert _runtime.resolve_precision("auto", torch.device("cpu")) == "fp32"
    with pytest.warns(RuntimeWarning, match="AVX2 box.*emulated"):
        assert _runtime.resolve_precision("bf16", torch.device("cpu")) == "bf16"
    monkeypatch.setattr(_runtime, "cpu_description", lambda: {"cpu": "AMX box", "bf16_flags": ["amx_bf16"]})
    assert _runtime.resolve_precision("auto", torch.device("cpu")) == "bf16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _runtime.resolve_precision("bf16", torch.device("cpu")) == "bf16"
        assert _runtime.resolve_precision("fp32", torch.device("cpu")) == "fp32"
    with pytest.raises(ValueError, match="auto, fp32 or bf16"):
        _runtime.resolve_precision("fp16", torch.device("cpu"))


@pytest.mark.parametrize("signame, raised", [("SIGTERM", SystemExit), ("SIGINT", KeyboardInterrupt)])
def test_signal_during_epoch_bookkeeping_waits_for_it_to_finish(signame, raised):
    """SIGTERM (SystemExit 128+15) and Ctrl-C (KeyboardInterrupt) inside the deferred block (log,
    checkpoints, status) are acted on after it; outside it at once; the old handler comes back."""
    import os
    import signal

    from core.training.trainer import _terminate_raises

    signum = getattr(signal, signame)
    before = signal.getsignal(signum)
    written = []
    with pytest.raises(raised) as exc:
        with _terminate_raises() as guard:
            with guard.deferred():
                os.kill(os.getpid(), signum)
                written.append("checkpoint")
                written.append("status")
            written.append("never")
    assert written == ["checkpoint", "status"]
    if raised is SystemExit:
        assert exc.value.code == 128 + signal.SIGTERM
    # outside the block the handler raises at once, and the old handler is back afterwards
    with pytest.raises(raised):
        with _terminate_raises():
            os.kill(os.getpid(), signum)
            written.append("never")
    assert signal.getsignal(signum) is before


def test_fresh_start_drops_log_rows_of_a_killed_first_epoch(tmp_path):
    """kill -9 after epoch 1's log row but before its checkpoint: the next start trains epoch 1
    again, and the log must not hold it twice."""
    store = RunStore(tmp_path)
    run = store.create("x")
    run.append_train_log({"epoch": 1, "loss": 1.0, "seconds": 1.0})
    assert run.truncate_train_log(0) == 1 and run.train_log().empty
    run.append_train_log({"epoch": 1, "loss": 1.0, "seconds": 1.0})
    run.append_train_log({"epoch": 2, "loss": 0.9, "seconds": 1.0})
    assert run.truncate_train_log(1) == 1 and list(run.train_log()["epoch"]) == [1]


def test_written_files_are_readable_by_the_users_sharing_a_store(tmp_path):
    """Atomic writes give files the mode of a plain open() (0666 less the umask), not mkstemp's 0600."""
    import os

    from core.runs.io import FILE_MODE, atomic_write_many, write_text_atomic

    a = write_text_atomic(tmp_path / "a.txt", "x")
    b, = atomic_write_many({tmp_path / "b.txt": lambda p: p.write_text("y")})
    plain = tmp_path / "plain.txt"
    plain.write_text("z")
    for p in (a, b):
        assert os.stat(p).st_mode & 0o777 == FILE_MODE == os.stat(plain).st_mode & 0o777


def test_nse_star_loss_by_hand():
    from core.losses import nse_star_loss

    sim = torch.tensor([[1.0, 5.0], [2.0, 7.0], [4.0, 6.0]])
    obs = torch.tensor([[1.0, 4.0], [float("nan"), 6.0], [2.0, 6.0]])
    scale = torch.tensor([0.4, 1.9])
    # basin 0: errors 0, 2 over (0.4 + 0.1)²; basin 1: 1, 1, 0 over (1.9 + 0.1)²; 5 observed pairs
    expected = ((0 + 4) / 0.25 + (1 + 1 + 0) / 4.0) / 5
    assert float(nse_star_loss(sim, obs, scale)) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="do not fit"):
        nse_star_loss(sim, obs, scale[:1])


def test_lstm_settings_of_the_field_forget_bias_lr_schedule_and_nse_star(tmp_path, data_root):
    """neuralhydrology's CAMELS settings as options: the forget-gate bias starts at 3, the
    learning rate steps down by epoch (and is a function of the epoch, so resume keeps it), and
    NSE* trains."""
    from core.training.trainer import Trainer, _site_scale, build_model
    from tests.conftest import run_cli

    cfg = RunConfig.from_dict({"model": {"variant": "lstm", "hidden": 8, "forget_bias": 3.0}})
    lstm = build_model(cfg, 3, 2).learner.lstm
    assert torch.all(lstm.bias_ih_l0[8:16] == 3.0) and torch.all(lstm.bias_hh_l0[8:16] == 0.0)
    assert not torch.all(lstm.bias_ih_l0[:8] == 3.0)  # the other gates keep PyTorch's init
    sd = _site_scale(np.array([[1.0, np.nan], [3.0, 2.0], [np.nan, np.nan]]))
    np.testing.assert_allclose(sd, [math.sqrt(2.0), 0.0])

    conf = tmp_path / "nh.yaml"
    conf.write_text("model: {variant: lstm, hidden: 16, dropout: 0.4, forget_bias: 3.0}\n"
                    "train: {epochs: 3, iters_per_epoch: 2, batch_size: 3, rho: 60, warmup: 60, "
                    "optimizer: adam, lr: 0.01, lr_schedule: {3: 0.001}, grad_clip: 1.0, "
                    "loss: nse_star, threads: 1, keep_checkpoints: 5}\n")
    proc = run_cli("train", "--config", str(conf), "--basins", "3", "--out", str(tmp_path / "runs"),
                   "--data-root", str(data_root), "--no-evaluate", "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = RunStore(tmp_path / "runs").get(RunStore(tmp_path / "runs").list()[0].run_id)
    lrs = [torch.load(run.checkpoint_dir / f"epoch_{e:03d}.pt", weights_only=False)["optimizer"]
           ["param_groups"][0]["lr"] for e in (1, 2, 3)]
    assert lrs == [0.01, 0.01, 0.001]
    assert np.isfinite(run.train_log()["loss"]).all()
    assert Trainer.learning_rate.__doc__ and "lr_schedule" in Trainer.learning_rate.__doc__
