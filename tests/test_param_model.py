"""Parameter-learning models over the VIC-type backbone (core.models.ParamModel): θ within the
ParamSpec bounds, the learner's output size read from the backbone, gradients from the soil
moisture loss reaching the learner through the VIC, the range-boundary loss, and a short
direct (dPL) training on real SMAP cells lowering the RMSE against SMAP."""

from __future__ import annotations

import pytest
import torch

from core.models import ParamModel
from core.physics import VIC, VIC_PARAMETERS, soil_properties
from core.losses import masked_rmse

D = torch.float64


def cells(n=3):
    sp = soil_properties(torch.linspace(1.1, 1.4, n, dtype=D), torch.linspace(10, 30, n, dtype=D),
                         torch.linspace(60, 30, n, dtype=D), torch.linspace(0.2, 0.5, n, dtype=D))
    g = torch.Generator().manual_seed(0)
    nt = 80
    forcing = torch.stack([10 * torch.rand(nt, n, generator=g, dtype=D) ** 3,
                           torch.full((nt, n), 15.0, dtype=D), torch.full((nt, n), 3.0, dtype=D)], -1)
    return sp, forcing


@pytest.mark.parametrize("learner", ["FFN_A", "ParaFormer_A", "LSTM_Z", "ParaFormer_Z"])
def test_learned_parameters_are_bounded_and_gradients_reach_the_learner(learner):
    torch.manual_seed(0)
    sp, forcing = cells()
    hyper = {"FFN_A": dict(hidden=16), "LSTM_Z": dict(hidden=16),
             "ParaFormer_A": dict(d_model=16, heads=2, ff=32),
             "ParaFormer_Z": dict(d_model=16, heads=2, ff=32)}[learner]
    model = ParamModel(learner, VIC(nmul=2), n_dynamic=4, n_static=5, z_window=30, **hyper).double()
    assert model.learner.n_out == len(VIC_PARAMETERS) * 2  # sized from the backbone's spec
    x_dyn = torch.randn(80, 3, 4, dtype=D)
    x_static = torch.randn(3, 5, dtype=D)
    out = model(x_dyn, x_static, forcing, warmup=30, site=sp)
    assert out.outputs["SM"].shape == (50, 3)
    for s in VIC_PARAMETERS:
        v = out.params[s.name]
        assert v.shape == (1, 3, 2)
        assert bool((v >= s.lower).all() and (v <= s.upper).all()), s.name
    (out.outputs["SM"].mean() + out.aux_loss).backward()
    grads = [p.grad for p in model.learner.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_range_boundary_loss_sees_the_raw_output_and_the_clamp_bounds_theta():
    sp, forcing = cells()
    model = ParamModel("FFN_A", VIC(), n_dynamic=0, n_static=5, hidden=8).double()
    raw = torch.tensor([[1.3, 0.5, -0.2, 0.5, 0.5], [0.5] * 5, [0.2] * 5], dtype=D)
    out = model(None, torch.zeros(3, 5, dtype=D), forcing, warmup=10, site=sp, raw=raw)
    assert out.params["infiltr"][0, 0, 0].item() == pytest.approx(VIC_PARAMETERS[0].upper)
    assert out.params["Dsmax"][0, 0, 0].item() == pytest.approx(VIC_PARAMETERS[2].lower)
    expected = (5 * 0.3 / 1.01 + 5 * 0.2 / 1.01) / 3  # eq. 13-14 on site 0 only, mean over sites
    assert out.aux_loss.item() == pytest.approx(expected, rel=1e-9)


def test_a_z_learner_without_its_series_is_an_error():
    sp, forcing = cells()
    model = ParamModel("ParaFormer_Z", VIC(), n_dynamic=4, n_static=5, d_model=16, heads=2, ff=32)
    with pytest.raises(ValueError, match="ParaFormer_Z reads a window"):
        model(None, torch.zeros(3, 5), forcing.float(), warmup=10, site=sp)


def test_direct_training_on_real_smap_cells_lowers_the_rmse(data_root):
    from core.datasets.smap import load_smap, smap_splits

    torch.manual_seed(0)
    ds = load_smap(data_root)
    d = ds.sel(site=smap_splits(ds)["SPARSE"][:8], time=slice("2015-04-01", "2016-03-31"))
    dt = torch.float32

    def series(v):
        return torch.tensor(d[v].transpose("time", "site").values, dtype=dt)

    forcing = torch.stack([series("P"), series("T"), series("PET")], -1)
    forcing = torch.cat([forcing[:180], forcing], 0)  # spin-up: the first half-year cycled
    target = series("smap_am")
    statics = torch.stack([torch.tensor(d[v].values, dtype=dt) for v in ("bulk", "clay", "sand", "ndvi")], -1)
    site = soil_properties(*statics.unbind(-1))
    xs = (statics - statics.mean(0)) / statics.std(0)
    model = ParamModel("FFN_A", VIC(), n_dynamic=0, n_static=4, hidden=32, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def rmse():
        with torch.no_grad():
            return masked_rmse(model(None, xs, forcing, warmup=180, site=site).outputs["SM"], target).item()

    before = rmse()
    for _ in range(6):
        out = model(None, xs, forcing, warmup=180, site=site)
        loss = masked_rmse(out.outputs["SM"], target) + out.aux_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = rmse()
    print(f"RMSE before {before:.4f} after {after:.4f}")
    assert after < before - 0.003, (before, after)
