"""The LSTM surrogate of the VIC-type model (core.models.surrogate): Latin-hypercube θ, VIC runs
that match a direct run, gradients reaching θ through the surrogate, a short training that
lowers its loss, and the gate's report on held-out θ sets and days."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.models.surrogate import (SurrogateSplit, VICSurrogate, default_split, lhs_unit,
                                   simulate_lhs, surrogate_gate, train_surrogate)
from core.physics import VIC, VIC_PARAMETERS, soil_properties


def test_latin_hypercube_has_one_sample_per_stratum():
    u = lhs_unit(16, 5, seed=3)
    assert u.shape == (16, 5) and (u >= 0).all() and (u < 1).all()
    for j in range(5):
        assert sorted(np.floor(u[:, j] * 16).astype(int)) == list(range(16))
    assert not np.allclose(lhs_unit(16, 5, seed=3), lhs_unit(16, 5, seed=4))


@pytest.fixture(scope="module")
def small(data_root):
    from core.datasets.smap import load_smap

    ds = load_smap(data_root, cells=["0", "100", "250"])
    return ds, simulate_lhs(ds, n_sets=4, seed=0)


def test_lhs_runs_match_a_direct_vic_run(small):
    ds, data = small
    nt = ds.sizes["time"]
    assert data.sm.shape == data.et.shape == (nt, 3, 4)
    assert data.theta.shape == (3, 4, 5) and (data.theta >= 0).all() and (data.theta < 1).all()
    c, s = 1, 2  # cell "100", θ set 2, run on its own through the reference loop
    f = torch.tensor(np.concatenate([data.forcing[:365, c], data.forcing[:, c]])[:, None], dtype=torch.float64)
    site = soil_properties(*torch.tensor(data.statics[c:c + 1], dtype=torch.float64).unbind(-1))
    params = {p.name: p.scale(torch.tensor(float(data.theta[c, s, i]), dtype=torch.float64)).reshape(1, 1, 1)
              for i, p in enumerate(VIC_PARAMETERS)}
    with torch.no_grad():
        sm = VIC(engine="reference")(f, params, site=site).outputs["SM"][365:, 0].numpy()
    np.testing.assert_allclose(data.sm[:, c, s], sm, atol=1e-5)  # float32 storage


def test_surrogate_gradients_reach_theta_and_scaling_is_physical(small):
    _, data = small
    model = VICSurrogate(hidden=8)
    split = default_split(data, held_fraction=0.25, held_days=200)
    model.fit_scaling(data, split)
    assert 0.05 < float(model.y_mean[0]) < 0.6  # mean SM in m³/m³
    train = data.sm[:split.split_day][:, :, split.train_sets]
    assert float(model.y_mean[0]) == pytest.approx(float(train.mean()), rel=1e-5)  # held-out data unused
    th = torch.from_numpy(data.theta[:, 0]).requires_grad_(True)
    y = model(torch.from_numpy(data.forcing[:60]), torch.from_numpy(data.statics), th)
    assert y.shape == (60, 3, 2)
    y[..., 0].sum().backward()
    assert th.grad is not None and th.grad.abs().sum() > 0


def test_short_training_lowers_the_loss_and_the_gate_reports(small):
    _, data = small
    split = default_split(data, held_fraction=0.25, held_days=200)
    assert split.train_sets == [0, 1, 2] and split.held_sets == [3]
    losses = []
    model = train_surrogate(data, split, hidden=16, iters=100, batch=12, burn=30, rho=90, lr=1e-2,
                            log=lambda it, loss: losses.append(loss))
    assert len(losses) == 2 and losses[-1] < losses[0]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gate = surrogate_gate(model, data, split, n_grad=4)
    for k, v in model.state_dict().items():  # the gate leaves the caller's model as it was
        assert v.dtype == before[k].dtype and torch.equal(v, before[k]), k
    assert set(gate) >= {"median_nse", "median_rmse", "median_cosine", "passed"}
    assert gate["n_series"] == 3 and -1.0 <= gate["median_cosine"] <= 1.0
    assert gate["passed"] == (gate["median_nse"] >= 0.95 and gate["median_rmse"] <= 0.01
                              and gate["median_cosine"] >= 0.9)
    with pytest.raises(ValueError, match="fewer than burn-in"):
        train_surrogate(data, SurrogateSplit([0], [1], 50), iters=1, burn=30, rho=90)
