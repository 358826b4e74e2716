"""The soil-moisture task end to end: config and task layer, gappy learner inputs, the cycled
spin-up, the learners and SCE-UA trained and evaluated through the CLI on real SMAP cells,
unseen cells, the test θ of a Z-learner, the surrogate coupling, the surrogate job's resume,
and reading runs written before sites were generalised."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from conftest import run_cli
from core.training.config import ConfigError, RunConfig
from core.training.tasks import LOSSES, TASKS, loss_for, soil_moisture_metrics, task_for


# -- config and task layer -------------------------------------------------------------------

def test_smap_config_takes_the_sources_periods_and_checks_the_variant():
    cfg = RunConfig.from_dict({"data": {"source": "smap", "sites": "sparse"}, "model": {"variant": "lstm_z"}})
    assert str(cfg.data.train_start) == "2015-04-01" and str(cfg.data.test_end) == "2017-03-31"
    assert cfg.data.sites == "SPARSE"
    t = task_for(cfg.data)
    assert t is TASKS["soil_moisture"] and t.target == "smap_am" and t.site_kind == "grid_cell"
    assert loss_for(t, cfg.train) is LOSSES["masked_rmse"]
    with pytest.raises(ConfigError, match="learns soil moisture.*source: smap"):
        RunConfig.from_dict({"model": {"variant": "paraformer_z"}})
    with pytest.raises(ConfigError, match="learns streamflow"):
        RunConfig.from_dict({"data": {"source": "smap"}, "model": {"variant": "delta_n"}})
    with pytest.raises(ConfigError, match="named site sets exist for source smap only"):
        RunConfig.from_dict({"data": {"sites": "SPARSE"}})
    # `sites: all` in a file means every basin, as `--sites all` on the command line
    assert RunConfig.from_dict({"data": {"sites": "All"}}).data.sites is None
    # the older name `basins` is read; grid-cell ids are not zero-padded, gauge ids are
    old = RunConfig.from_dict({"data": {"basins": [1022500]}})
    assert old.data.sites == ["01022500"] and "basins" not in old.to_dict()["data"]
    assert RunConfig.from_dict({"data": {"source": "smap", "sites": [12]},
                                "model": {"variant": "ffn_a"}}).data.sites == ["12"]


def test_soil_moisture_metrics_against_hand_values():
    t = pd.date_range("2016-04-01", periods=4)
    obs = xr.DataArray([[0.2, np.nan, 0.3, 0.1], [0.1, 0.2, 0.3, 0.4]], dims=("site", "time"),
                       coords={"site": ["a", "b"], "time": t})
    sim = xr.Dataset({"SM": (("site", "time"), [[0.25, 0.9, 0.25, 0.1], [0.1, 0.2, 0.3, 0.4]]),
                      "ET": (("site", "time"), [[1.0, 2, 3, 4], [0, 0, 0, 0]])},
                     coords={"site": ["a", "b"], "time": t, "lat": ("site", [40.0, 41.0])})
    m = soil_moisture_metrics(sim, obs, sim)
    # cell a: days 0, 2, 3 observed; errors 0.05, -0.05, 0 -> RMSE sqrt(0.005/3)
    assert m.loc["a", "RMSE"] == pytest.approx(np.sqrt(0.005 / 3))
    assert m.loc["a", "NSE"] == pytest.approx(1 - 0.005 / 0.02)
    assert m.loc["a", "n_obs"] == 3 and m.loc["a", "ET_mean"] == pytest.approx(2.5)
    assert m.loc["b", "RMSE"] == 0 and m.loc["b", "PCC"] == pytest.approx(1.0)
    assert m.loc["a", "SM_obs_mean"] == pytest.approx(0.2) and m.loc["b", "lat"] == 41.0


def test_gappy_input_gets_zero_and_a_mask_channel():
    from core.datasets.normalize import Normalizer

    t = pd.date_range("2015-04-01", periods=5)
    ds = xr.Dataset({"P": (("site", "time"), np.arange(10.0).reshape(2, 5)),
                     "smap_am": (("site", "time"), [[0.1, np.nan, 0.3, np.nan, 0.5], [0.2] * 5])},
                    coords={"site": ["1", "2"], "time": t})
    norm = Normalizer.fit(ds, ["P", "smap_am"], [], gappy=("smap_am",))
    x = norm.transform_dynamic(ds)
    assert x.shape == (5, 2, 3) and norm.n_columns == 3
    np.testing.assert_array_equal(x[:, 0, 2], [1, 0, 1, 0, 1])          # mask of cell 1
    assert x[1, 0, 1] == 0 and x[3, 0, 1] == 0                           # gaps are 0
    st = norm.dynamic["smap_am"]
    assert x[0, 0, 1] == pytest.approx((0.1 - st["mean"]) / st["std"])
    with pytest.raises(ValueError, match="'P' has 1 missing"):
        norm.transform_dynamic(ds.assign(P=ds["P"].where(ds["P"] != 3)))


def test_cycled_spinup_prepends_the_first_days(data_root):
    from core.datasets.smap import load_smap
    from core.training.data import fit_normalizer, prepare_for_run

    cfg = RunConfig.from_dict({"data": {"source": "smap", "sites": ["0", "2"], "root": str(data_root)},
                               "model": {"variant": "ffn_a"}})
    ds = load_smap(data_root, cells=["0", "2"]).sel(time=slice("2015-04-01", "2016-03-31"))
    norm = fit_normalizer(cfg, ds, task_for(cfg.data))
    from core.models.factory import build_model

    model = build_model(cfg.model, norm.n_columns, len(norm.static))
    d = prepare_for_run(cfg, ds, norm, model, task_for(cfg.data))
    assert d.spinup_days == 366 and d.forcing.shape == (732, 2, 3)
    np.testing.assert_array_equal(d.forcing[:366], d.forcing[366:])
    assert np.isnan(d.target[:366]).all() and np.isfinite(d.target[366:]).any()
    assert d.time[366] == pd.Timestamp("2015-04-01") and d.time[0] == pd.Timestamp("2014-03-31")
    np.testing.assert_allclose(d.site_static[:, 0], ds["bulk"].values)
    assert d.x_dyn.shape[-1] == 5  # P, T, PET, SMAP (gaps 0) and its mask


# -- models -------------------------------------------------------------------------------------

def test_z_learner_test_theta_is_the_mean_over_training_windows():
    from core.models.param_model import ParamModel
    from core.physics import VIC

    torch.manual_seed(0)
    m = ParamModel("LSTM_Z", VIC(), n_dynamic=2, n_static=3, z_window=20, z_stride=5, z_days=40,
                   hidden=8, dropout=0.0).eval()
    x, xs = torch.randn(100, 4, 2), torch.randn(4, 3)
    got = m.raw_parameters(x, xs, warmup=70)
    want = torch.stack([m.learner(x[s:s + 20], xs).static for s in (30, 35, 40, 45, 50)]).mean(0)
    torch.testing.assert_close(got, want)
    m.train()
    # training: the 20 days of history just before the loss window (days 50..69)
    torch.testing.assert_close(m.raw_parameters(x, xs, warmup=70), m.learner(x[50:70], xs).static)
    torch.manual_seed(1)
    a = m.raw_parameters(x, xs, warmup=10)  # less history than a window: one inside days 10..99
    assert a.shape == (4, 5)
    assert any(torch.allclose(a, m.learner(x[s:s + 20], xs).static) for s in range(10, 81))


def test_sigmoid_bound_keeps_parameters_in_range_without_a_boundary_loss():
    from core.models.param_model import ParamModel
    from core.physics import VIC

    raw = torch.tensor([[-50.0, -1.0, 0.0, 1.0, 50.0]], dtype=torch.float64)
    rbl = ParamModel("FFN_A", VIC(), 0, 3, hidden=8)
    sig = ParamModel("FFN_A", VIC(), 0, 3, hidden=8, param_bound="sigmoid")
    for m in (rbl, sig):
        for spec, v in zip(m.specs, m.scale(raw).values()):
            assert spec.lower <= float(v.min()) and float(v.max()) <= spec.upper
    # the clamp cuts raw -1 and 50 to the bounds; the sigmoid maps raw 0 to mid-range
    p_rbl, p_sig = rbl.scale(raw), sig.scale(raw)
    lo, hi = rbl.specs[1], rbl.specs[4]
    assert float(p_rbl[lo.name]) == pytest.approx(lo.lower) and float(p_rbl[hi.name]) == pytest.approx(hi.upper)
    mid = sig.specs[2]
    assert float(p_sig[mid.name]) == pytest.approx(mid.scale(torch.tensor(0.5, dtype=torch.float64)).item())
    f = torch.rand(40, 2, 3, dtype=torch.float64) * torch.tensor([5.0, 10.0, 3.0], dtype=torch.float64)
    ss = torch.tensor([[1.4, 20.0, 40.0, 0.5]] * 2, dtype=torch.float64)
    xs = torch.randn(2, 3, dtype=torch.float64)
    assert rbl.double()(None, xs, f, warmup=10, site_static=ss).aux_loss is not None
    out = sig.double()(None, xs, f, warmup=10, site_static=ss)
    assert out.aux_loss is None and torch.isfinite(out.outputs["SM"]).all()
    with pytest.raises(ValueError, match="param_bound"):
        ParamModel("FFN_A", VIC(), 0, 3, param_bound="tanh")


def test_bf16_precision_runs_the_learner_only_in_bf16():
    from core.models.param_model import ParamModel
    from core.physics import VIC

    torch.manual_seed(0)
    m = ParamModel("ParaFormer_Z", VIC(), n_dynamic=4, n_static=3, z_window=16, d_model=16, heads=2, ff=32)
    m.precision = "bf16"
    x, xs = torch.randn(40, 2, 4), torch.randn(2, 3)
    f = torch.rand(40, 2, 3) * torch.tensor([5.0, 10.0, 3.0])
    ss = torch.tensor([[1.4, 20.0, 40.0, 0.5]] * 2)
    out = m(x, xs, f, warmup=20, site_static=ss)
    assert out.raw.dtype == torch.float32 and out.outputs["SM"].dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in out.params.values())
    out.outputs["SM"].mean().backward()
    grads = [p.grad for p in m.learner.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    m.eval()  # no dropout: the two precisions see the same network
    m.precision = "fp32"
    ref = m.raw_parameters(x, xs, warmup=20)
    m.precision = "bf16"
    got = m.raw_parameters(x, xs, warmup=20)
    assert not torch.equal(got, ref) and torch.allclose(got, ref, atol=0.1)  # bf16: ~3 digits


def test_calibrated_model_gives_unseen_sites_their_nearest_cells_theta():
    from core.models.calibrated import CalibratedModel
    from core.physics import VIC

    m = CalibratedModel(VIC())
    m.theta01 = torch.tensor([[0.1] * 5, [0.9] * 5], dtype=torch.float64)
    m.lat, m.lon = torch.tensor([43.33, 46.50], dtype=torch.float64), torch.tensor([-123.42, -120.44], dtype=torch.float64)
    idx = m.nearest(torch.tensor([43.33, 46.0, 43.4]), torch.tensor([-121.93, -121.0, -123.4]))
    assert idx.tolist() == [0, 1, 0]
    # buffers sized by the checkpoint
    m2 = CalibratedModel(VIC())
    m2.load_state_dict(m.state_dict())
    assert torch.equal(m2.theta01, m.theta01)


# -- through the CLI on real cells ---------------------------------------------------------------

@pytest.fixture(scope="module")
def smap_store(tmp_path_factory, data_root):
    return tmp_path_factory.mktemp("smap_runs")


def _train(store, data_root, *args):
    proc = run_cli("train", "--sites", "0,2,14", "--test-sites", "7", "--epochs", "2", "--out", str(store),
                   "--data-root", str(data_root), "--no-progress", "--threads", "1", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.mark.parametrize("variant", ["ffn_a", "paraformer_z"])
def test_learner_trains_and_evaluates_on_seen_and_unseen_cells(smap_store, data_root, variant):
    from core.metrics import rmse
    from core.runs import RunStore

    proc = _train(smap_store, data_root, "--variant", variant, "--name", variant)
    assert "test median RMSE" in proc.stdout and "1 unseen sites" in proc.stdout
    run = next(RunStore(smap_store).get(i.run_id) for i in RunStore(smap_store).list() if i.name == variant)
    st = run.status()
    assert st["state"] == "done" and 0 < st["median_rmse"] < 0.5 and "median_rmse_unseen" in st
    m = run.metrics()
    assert dict(m["split"]) == {"0": "trained", "2": "trained", "14": "trained", "7": "unseen"}
    with xr.open_dataset(run.outputs_path) as o, xr.open_dataset(run.parameters_path) as p:
        assert o["SM"].dims == ("site", "time") and o.attrs["site_kind"] == "grid_cell"
        assert str(o.time.values[0])[:10] == "2016-04-01" and o.sizes["time"] == 365
        assert o["SM_obs"].attrs["units"] == "m3 m-3" and o["SM"].attrs["units"] == "m3 m-3"
        got = rmse(o["SM"].transpose("time", "site").values, o["SM_obs"].transpose("time", "site").values)
        np.testing.assert_allclose(m.loc[[str(s) for s in o.site.values], "RMSE"], got, rtol=1e-5)
        inf = p["infiltr"]
        assert inf.dims == ("site",) and inf.attrs["valid_min"] == 0.001 and inf.attrs["valid_max"] == 1.0
        assert ((inf >= 0.001) & (inf <= 1.0)).all()
        # storages within [0, capacity] on every day
        assert float(o["W1"].min()) >= 0
    panels = json.loads(run.outputs().attrs["panels"])
    assert any("SM_obs" in p["variables"] for p in panels)
    assert run.info().site_kind == "grid_cell" and run.info().site_noun == "cells"


def test_sceua_calibrates_each_cell_and_transfers_to_the_nearest(smap_store, tmp_path, data_root):
    from core.runs import RunStore

    cfg = tmp_path / "sceua.yaml"
    cfg.write_text("preset: smap\ndata: {source: smap}\nmodel: {variant: sceua}\n"
                   "train: {epochs: 1, sceua_evaluations: 60, threads: 1}\n")
    _train(smap_store, data_root, "--config", str(cfg), "--name", "sce")
    run = next(RunStore(smap_store).get(i.run_id) for i in RunStore(smap_store).list() if i.name == "sce")
    assert 30 <= run.status()["calibration"]["median_evaluations"] <= 80  # spotpy may stop a loop short
    with xr.open_dataset(run.parameters_path) as p:
        # cell 7 was never calibrated: it runs with the θ of cell 2, its nearest calibrated cell
        for name in ("infiltr", "Ds", "Dsmax", "Ws", "expt"):
            assert float(p[name].sel(site="7")) == pytest.approx(float(p[name].sel(site="2")))
        assert float(p["infiltr"].sel(site="0")) != pytest.approx(float(p["infiltr"].sel(site="14")))


# -- surrogate job and coupling ----------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_lhs(data_root):
    from core.datasets.smap import load_smap
    from core.models.surrogate import simulate_lhs

    return simulate_lhs(load_smap(data_root, cells=["0", "2", "14"]), n_sets=4, seed=0)


def test_surrogate_job_resumes_and_writes_its_gate(tmp_path, tiny_lhs):
    from core.models.surrogate import load_surrogate
    from core.training.surrogate_fit import SurrogateConfig, fit_surrogate

    kw = dict(n_sets=4, hidden=8, batch=4, rho=60, checkpoint_every=3, gate_every=3, log_every=1,
              gate_sample=8)
    out = tmp_path / "sur"
    fit_surrogate(out, SurrogateConfig(iters=3, **kw), log=lambda *_: None, data=tiny_lhs)
    # the run store's layout: checkpoints/last.pt + the iteration file, status with its stamp
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["epoch_000003.pt", "last.pt"]
    assert {"state", "updated", "iteration"} <= set(json.loads((out / "status.json").read_text()))
    (out / "checkpoints" / "last.pt").write_bytes(b"")  # a kill while it was written
    lines = []
    gate = fit_surrogate(out, SurrogateConfig(iters=6, **kw), log=lines.append, data=tiny_lhs)
    resumed = [ln for ln in lines if ln.startswith("resumed at iteration 3 from epoch_000003.pt")]
    assert resumed and "last.pt: empty file" in resumed[0], lines
    log = pd.read_csv(out / "train_log.csv")
    assert log["iteration"].tolist() == [1, 2, 3, 4, 5, 6]
    assert set(gate) >= {"median_nse", "median_rmse", "median_cosine", "passed", "thresholds"}
    assert json.loads((out / "status.json").read_text())["state"] == "done"
    model, g = load_surrogate(out)
    assert g["median_rmse"] == gate["median_rmse"] and model.lstm.hidden_size == 8
    with pytest.raises(ValueError, match="other settings \\(hidden\\)"):
        fit_surrogate(out, SurrogateConfig(iters=6, **{**kw, "hidden": 16}), data=tiny_lhs)


def test_surrogate_coupling_trains_through_the_surrogate(tmp_path, tiny_lhs):
    from core.models.param_model import ParamModel
    from core.physics import VIC
    from core.training.surrogate_fit import SurrogateConfig, fit_surrogate

    fit_surrogate(tmp_path / "s", SurrogateConfig(iters=2, n_sets=4, hidden=8, batch=4, rho=60,
                                                  gate_sample=8), log=lambda *_: None, data=tiny_lhs)
    m = ParamModel("FFN_A", VIC(), 5, 4, surrogate=str(tmp_path / "s"), hidden=8)
    f = torch.from_numpy(tiny_lhs.forcing[:200])
    ss = torch.from_numpy(tiny_lhs.statics)
    out = m(None, torch.randn(3, 4), f, warmup=130, site_static=ss)
    assert set(out.outputs) == {"SM", "ET"} and out.outputs["SM"].shape == (70, 3)
    out.outputs["SM"].mean().backward()
    assert all(p.grad is not None for p in m.learner.parameters())
    assert all(p.grad is None for p in m.surrogate().parameters())      # frozen
    m.eval()  # testing runs the VIC itself
    with torch.no_grad():
        ev = m(None, torch.randn(3, 4), f.double(), warmup=130, site_static=ss.double())
    assert "W3" in ev.outputs


# -- runs written before sites were generalised ------------------------------------------------

def test_runs_with_a_basin_dimension_are_still_read(tmp_path):
    from core.runs.outputs import open_run_file
    from core.runs.store import check_outputs_file, read_metrics_file

    t = pd.date_range("2000-01-01", periods=3)
    xr.Dataset({"Q_sim": (("basin", "time"), np.ones((2, 3)))},
               coords={"basin": ["01022500", "01031500"], "time": t}).to_netcdf(tmp_path / "outputs.nc")
    check_outputs_file(tmp_path / "outputs.nc")
    ds = open_run_file(tmp_path / "outputs.nc")
    assert ds["Q_sim"].dims == ("site", "time") and ds.attrs["site_kind"] == "basin"
    (tmp_path / "metrics.csv").write_text("basin,NSE,KGE\n01022500,0.5,0.4\n")
    m = read_metrics_file(tmp_path / "metrics.csv")
    assert m.index.name == "site" and m.loc["01022500", "NSE"] == 0.5


def test_explorer_maps_the_cells_of_a_smap_run_by_infiltr(smap_store, data_root):
    """After the CLI runs above: the explorer shows a SMAP run as squares at the cell centres,
    coloured by the learned infiltr, with the SMAP-vs-simulated panel and the run's RMSE."""
    from core.runs import RunStore
    from explorer.app import create_app

    info = next(i for i in RunStore(smap_store).list() if i.name == "ffn_a")
    app = create_app(runs_root=smap_store)
    app.state.run_id = info.run_id
    assert app.map._site_kind() == "grid_cell" and app.map.renderer.glyph.marker == "square"
    assert "param:infiltr" in app.state.quantities()
    app.state.quantity = "param:infiltr"
    assert app.map.color_bar.title == "infiltr"  # dimensionless: no unit shown
    src = app.map.source.data
    values = dict(zip(src["site"], src["value"]))
    with xr.open_dataset(RunStore(smap_store).get(info.run_id).parameters_path) as p:
        for c in ("0", "2", "14", "7"):
            assert values[c] == pytest.approx(float(p["infiltr"].sel(site=c)), rel=1e-6)
            i = src["site"].index(c)
            assert src["lat"][i] == pytest.approx(float(p["lat"].sel(site=c)))
    assert sum(src["in_run"]) == 4 and len(src["site"]) == 407  # every usable cell can be picked
    assert any("SM_obs" in p["variables"] for p in app.state.panels)
    from core.models.registry import VARIANTS

    # Launch offers a variant of the shown run's task (the first run shown set it)
    assert VARIANTS[app.launcher.variant.value].task == "soil_moisture" and app.launcher.preset.value == "smap"
    # cell ids typed into the picker are taken as typed (not zero-padded like gauge ids)
    app.picker.ids.value = "14, 7 99999"
    app.picker._add_ids()
    assert app.state.selection[-2:] == ["14", "7"] and "99999" in app.picker.feedback.object
    # the SMAP series is drawn as dots (a retrieval on ~42 % of days), the simulation as a line
    app.state.site = "14"
    fig = app.series.figures["hydrolens-panel-SM_obs"]
    names = {r.name for r in fig.renderers}
    assert "dots-SM_obs" in names and "line-SM" in names


# -- minibatch training, validation and early stopping ------------------------------------------

def test_minibatch_training_validates_keeps_the_best_epoch_and_stops_early(tmp_path, data_root):
    """Mini-batches of cells x 30-day windows after a spin-up year; one of four cells is held
    out; the epoch with the lowest validation loss is checkpoints/best.pt and the run's model."""
    from core.runs import RunStore
    from core.training.trainer import load_model, model_checkpoint

    cfg = tmp_path / "mb.yaml"
    cfg.write_text("preset: smap\nmodel: {variant: ffn_a}\n"
                   "data: {val_sites: null}\n"
                   "train: {epochs: 6, batch_size: 2, rho: 30, warmup: 366, iters_per_epoch: 3, "
                   "val_fraction: 0.25, val_metric: loss, patience: 2, optimizer: adam, lr: 0.02, "
                   "threads: 1}\n")
    store = tmp_path / "runs"
    proc = run_cli("train", "--config", str(cfg), "--sites", "0,2,14,21", "--out", str(store),
                   "--data-root", str(data_root), "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = RunStore(store).get(RunStore(store).list()[0].run_id)
    log = run.train_log()
    assert {"updates", "val_loss", "val_NSE"} <= set(log.columns)
    assert (log["updates"] == log["epoch"] * 3).all() and (log["val_loss"] > 0).all()
    st = run.status()
    assert st["n_val_sites"] == 1 and st["state"] == "done"
    best = int(log.loc[log["val_loss"].idxmin(), "epoch"])
    assert st["best_epoch"] == best and model_checkpoint(run) == "best.pt"
    assert torch.load(run.checkpoint_dir / "best.pt", weights_only=True)["epoch"] == best
    if st.get("stopped_early"):  # patience 2: stopped two validations after the best one
        assert int(log["epoch"].max()) == best + 2 <= 6 and "stopped early" in proc.stdout
    else:
        assert int(log["epoch"].max()) == 6
    model, _, _ = load_model(run)  # the run's model is the best epoch's
    ck = torch.load(run.checkpoint_dir / "best.pt", weights_only=True)["model"]
    assert all(torch.equal(v, ck[k]) for k, v in model.state_dict().items())
    # resume with more epochs: the early-stopping record travels in the checkpoint
    proc = run_cli("train", "--resume", run.run_id, "--epochs", "7", "--out", str(store), "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log2 = run.train_log()
    if st.get("stopped_early"):  # stays stopped: no epoch is added
        assert len(log2) == len(log)
    else:
        assert log2["epoch"].tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert run.status()["best_epoch"] == int(log2.loc[log2["val_loss"].idxmin(), "epoch"])


def test_validation_cells_of_their_own_pick_the_epoch_by_median_nse(tmp_path, data_root):
    """data.val_sites: every training cell trains, the VAL-type cells validate (never a test
    cell), and the epoch with their highest median NSE is the run's model."""
    from core.datasets.smap import load_smap, smap_splits
    from core.runs import RunStore
    from core.training.config import ConfigError, compose_config
    from core.training.data import load_validation
    from core.training.trainer import model_checkpoint

    splits = smap_splits(load_smap(data_root))
    assert not set(splits["VAL"]) & (set(splits["SPARSE"]) | set(splits["NG"]) | set(splits["SCALE_206"]))
    assert set(splits["VAL"]) <= set(splits["DENSE"]) and 90 <= len(splits["VAL"]) <= 110
    val = splits["VAL"][:2]
    cfg = tmp_path / "v.yaml"
    cfg.write_text("preset: smap\nmodel: {variant: ffn_a}\n"
                   f"data: {{val_sites: [{val[0]}, {val[1]}, '0']}}\n"
                   "train: {epochs: 4, batch_size: 2, rho: 30, warmup: 366, iters_per_epoch: 2, "
                   "patience: 2, optimizer: adam, lr: 0.05, threads: 1}\n")
    store = tmp_path / "runs"
    proc = run_cli("train", "--config", str(cfg), "--sites", "0,2", "--test-sites", "7", "--out", str(store),
                   "--data-root", str(data_root), "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = RunStore(store).get(RunStore(store).list()[0].run_id)
    st, log = run.status(), run.train_log()
    # cell 0 trains, so it does not validate; both training cells train
    assert st["n_val_sites"] == 2 and st["n_sites"] == 2
    assert st["best_epoch"] == int(log.loc[log["val_NSE"].idxmax(), "epoch"])
    assert model_checkpoint(run) == "best.pt"

    base = {"data.sites": "0,2", "data.test_sites": "7", "data.root": str(data_root)}
    with pytest.raises(ConfigError, match="test_sites"):  # validating on a test cell
        load_validation(compose_config("smap", overrides={**base, "data.val_sites": "7,9"}), ["0", "2"])
    with pytest.raises(ConfigError, match="all 2 of its sites are training sites"):
        load_validation(compose_config("smap", overrides={**base, "data.val_sites": "0,2"}), ["0", "2"])
    with pytest.raises(ConfigError, match="both name validation sites"):
        compose_config("smap", overrides={**base, "train.val_fraction": 0.2})
