"""The δn(NN_r) recharge network and the LSTM baseline: mass, bounds, gradients, the registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.models import VARIANTS, DeltaModel, StreamflowLSTM
from core.physics import HBV, HBV_STATES, RechargeNet
from core.training import rmse_comb_loss
from tests.test_physics import balance_error, random_params, synthetic_forcing


def nnr_hbv(seed=0):
    torch.manual_seed(seed)
    net = RechargeNet().double()
    with torch.no_grad():  # strong random weights: fractions spread over (0, 1)
        for p in net.parameters():
            p.mul_(4)
    return HBV(nmul=4, recharge_net=net)


def test_nnr_conserves_mass_and_bounds_recharge():
    model = nnr_hbv()
    forcing = synthetic_forcing(nt=400, nb=5)
    res = model(forcing, random_params(model, 400, 5), return_components=True)
    err = balance_error(forcing, res, 5 * model.init_storage)
    assert err.abs().max() < 1e-9, err
    c = res.components
    infil = c["RAIN"] + c["TOSOIL"]
    assert (c["RECHARGE"] >= 0).all() and (c["RECHARGE"] <= infil + 1e-12).all()
    frac = c["RECHARGE"][infil > 1] / infil[infil > 1]
    assert frac.max() - frac.min() > 0.01, "the fraction should depend on the soil state"
    for s in HBV_STATES:
        assert (c[s] >= 0).all(), s


def test_nnr_differs_from_power_law_and_gradients_reach_the_network():
    model = nnr_hbv()
    forcing = synthetic_forcing(nt=120, nb=3)
    params = random_params(model, 120, 3)
    q = model(forcing, params).outputs["Q_unrouted"]
    plain = HBV(nmul=4, engine="reference")(forcing, params).outputs["Q_unrouted"]
    assert (q - plain).abs().max() > 1e-3
    q.sum().backward()
    for name, p in model.recharge_net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_nnr_gradcheck_small():
    model = nnr_hbv()
    forcing = synthetic_forcing(nt=15, nb=2)
    params = random_params(model, 15, 2)
    # autograd through the recharge network vs finite differences, first layer's weights
    x = model.recharge_net.net[0].weight.detach().clone().requires_grad_()
    torch.autograd.gradcheck(lambda a: _q_with_weight(model, forcing, params, a), (x,), eps=1e-6, atol=1e-6)


def _q_with_weight(model, forcing, params, weight):
    lin = model.recharge_net.net[0]
    old = lin.weight
    try:
        del lin.weight
        lin.weight = weight  # a plain tensor attribute: the graph reaches `weight`
        return model(forcing, params).outputs["Q_unrouted"]
    finally:
        lin.weight = old


def test_nnr_refuses_the_fused_engine():
    with pytest.raises(ValueError, match="recharge network"):
        HBV(nmul=2, engine="fused", recharge_net=RechargeNet())


def test_delta_nnr_model_trains_through_the_network():
    torch.manual_seed(0)
    m = DeltaModel(3, 4, nmul=2, hidden=8, dropout=0.0, nn_recharge=True).double()
    forcing = synthetic_forcing(nt=60, nb=3)
    out = m(torch.randn(60, 3, 3, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64),
            forcing, warmup=20)
    rmse_comb_loss(out.outputs["Q_sim"], torch.rand(40, 3, dtype=torch.float64)).backward()
    assert m.backbone.recharge_net.net[0].weight.grad.abs().sum() > 0
    assert m.learner.lstm.weight_hh_l0.grad.abs().sum() > 0


def test_lstm_baseline_target_scaling_and_window():
    torch.manual_seed(0)
    q = np.abs(np.random.default_rng(0).normal(1.5, 2.0, (300, 4))).astype(np.float32)
    q[::5, 1] = np.nan
    m = StreamflowLSTM(3, 5, hidden=8, dropout=0.0).double()
    m.fit_target(q)
    z = np.log10(np.sqrt(q[np.isfinite(q)]) + 0.1)
    assert float(m.q_mean) == pytest.approx(z.mean()) and float(m.q_std) == pytest.approx(z.std())
    out = m(torch.randn(50, 4, 3, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64), None, 20)
    qs = out.outputs["Q_sim"]
    assert qs.shape == (30, 4) and (qs >= 0).all() and out.params == {}
    # z = 0 maps to the training median scale: (10^μ − 0.1)²
    m.learner.linear_out.weight.data.zero_()
    m.learner.linear_out.bias.data.zero_()
    q0 = m(torch.randn(5, 1, 3, dtype=torch.float64), torch.randn(1, 5, dtype=torch.float64)).outputs["Q_sim"]
    assert torch.allclose(q0, torch.full_like(q0, (10 ** z.mean() - 0.1) ** 2))
    with pytest.raises(ValueError, match="no finite streamflow"):
        m.fit_target(np.full((3, 2), np.nan))


def test_registry_has_the_paper_family():
    assert {"delta1", "delta_n", "delta_n_beta", "delta_n_gamma", "delta_n_gamma_beta",
            "delta_n_nnr", "lstm"} <= set(VARIANTS)
    assert VARIANTS["delta_n_nnr"].nn_recharge and VARIANTS["lstm"].family == "lstm"
    assert VARIANTS["delta1"].nmul == 1 and VARIANTS["delta_n_gamma_beta"].dynamic == ("BETA", "GAMMA")
