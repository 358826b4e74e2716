"""The δn(NN_r) recharge network and the LSTM baseline: mass, bounds, gradients, the registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.models import VARIANTS, DeltaModel, StreamflowLSTM
from core.nets import LSTMNet
from core.physics import HBV, HBV_STATES, RechargeNet
from core.physics.fused import fused_available
from core.training import rmse_comb_loss
from tests.test_physics import balance_error, random_params, synthetic_forcing


def nnr_hbv(seed=0, engine="auto"):
    torch.manual_seed(seed)
    net = RechargeNet().double()
    with torch.no_grad():  # strong random weights: fractions spread over (0, 1)
        for p in net.parameters():
            p.mul_(4)
    return HBV(nmul=4, recharge_net=net, engine=engine)


@pytest.mark.parametrize("engine", ["reference", "fused"])
def test_nnr_conserves_mass_and_bounds_recharge(engine):
    """Both engines run the recharge network (the fused kernel inside its time loop)."""
    if engine == "fused" and not fused_available("cpu"):
        pytest.skip("no C++ compiler for the fused kernel")
    model = nnr_hbv(engine=engine)
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


class _GivenOutput(torch.nn.Module):
    """g_A replaced by a given output (logits [time, site, ny]), to test the hand-over alone."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def features(self, x, no_grad_days=0):
        return self.logits

    def head(self, h, rows=None):
        return h if rows is None else h[..., rows]


@pytest.mark.parametrize("dynamic", [(), ("BETA", "GAMMA")])
def test_feng2022_conventions_hand_over_from_the_last_warmup_day_and_route_from_zero(dynamic):
    """model.conventions feng2022 (Feng et al.'s release, hydrodl2 1.4.0; scripts/compare_hydrodl2.py
    matches hydrodl2 to 5e-6 mm/d with it): the warm-up runs with the learner's output of day
    warmup - 1, the window is routed from zero, SM is floored at 1e-5 mm. hydrolens: the window's
    parameters spin up and the last 14 warm-up days are the routing history."""
    from core.physics import gamma_unit_hydrograph, route

    torch.manual_seed(0)
    nt, nb, nmul, warmup = 120, 3, 4, 60
    forcing = synthetic_forcing(nt, nb, dtype=torch.float32)
    n_par = 12 + ("GAMMA" in dynamic)
    logits = torch.randn(nb, n_par * nmul + 2) + 0.3 * torch.randn(nt, nb, n_par * nmul + 2).cumsum(0)
    runs = {}
    for conv in ("hydrolens", "feng2022"):
        m = DeltaModel(n_dynamic=1, n_static=0, nmul=nmul, dynamic=dynamic, use_gamma="GAMMA" in dynamic,
                       conventions=conv, engine="reference")
        m.learner = _GivenOutput(logits)
        with torch.no_grad():
            runs[conv] = (m, m(torch.zeros(nt, nb, 1), torch.zeros(nb, 0), forcing, warmup=warmup))
    m, out = runs["feng2022"]
    assert m.backbone.sm_floor == 1e-5 and runs["hydrolens"][0].backbone.sm_floor == 0.0
    # the warm-up by hand: every parameter from day warmup - 1, static
    u = torch.sigmoid(logits[warmup - 1])
    specs = m.backbone.parameter_specs
    hbv_u = u[:, : n_par * nmul].reshape(nb, n_par, nmul)
    p_warm = {s.name: s.scale(hbv_u[:, i]).unsqueeze(0) for i, s in enumerate(specs)}
    warm = m.backbone(forcing[:warmup], p_warm)
    p_win = {n: out.params[n] for n in m.backbone.parameter_names}
    res = m.backbone(forcing[warmup:], p_win, warm.final_state)
    uh = gamma_unit_hydrograph(out.params["route_a"], out.params["route_b"])
    torch.testing.assert_close(out.outputs["Q_sim"], route(res.outputs["Q_unrouted"], uh, None))
    # hydrolens hands over differently: from the window's parameters, routed with history
    m_h, out_h = runs["hydrolens"]
    p_last = {n: out_h.params[n][-1:] for n in m_h.backbone.parameter_names}
    warm_h = m_h.backbone(forcing[:warmup], p_last)
    res_h = m_h.backbone(forcing[warmup:], {n: out_h.params[n] for n in m_h.backbone.parameter_names},
                         warm_h.final_state)
    hist = warm_h.outputs["Q_unrouted"][-14:]
    torch.testing.assert_close(out_h.outputs["Q_sim"], route(res_h.outputs["Q_unrouted"], uh, hist))
    assert not torch.allclose(out.outputs["Q_sim"][:14], out_h.outputs["Q_sim"][:14])


def test_the_soil_moisture_floor_creates_water_only_under_feng2022():
    """Dry days: HydroLens lets ET empty SM (balance exact); the release floors SM at 1e-5 mm."""
    nb, nmul = 2, 3
    forcing = torch.zeros(40, nb, 3)
    forcing[..., 1], forcing[..., 2] = 20.0, 12.0  # warm, no rain, PET above LP·FC: ET takes all SM
    for floor in (0.0, 1e-5):
        hbv = HBV(nmul=nmul, engine="reference", sm_floor=floor)
        p = random_params(hbv, 1, nb, dtype=torch.float32, seed=1)
        p["LP"], p["FC"] = torch.full_like(p["LP"], 0.2), torch.full_like(p["FC"], 50.0)
        state = {k: v.clone() for k, v in hbv.initial_state(nb).items()}
        state["SM"] = torch.full((nb, nmul), 5.0)
        out = hbv(forcing, p, state, return_components=True)
        sm = out.components["SM"]
        if floor:
            assert float(sm.min()) >= 1e-5 - 1e-12 and float(sm[-1].min()) == pytest.approx(1e-5)
        else:
            assert float(sm[-1].max()) == 0.0  # emptied by ET, never below 0
            assert float(sm.min()) >= 0
        # the fused kernel applies the same floor (tests/test_fused.py checks its gradients)
        if fused_available("cpu"):
            fused = HBV(nmul=nmul, engine="fused", sm_floor=floor)(forcing, p, state, return_components=True)
            torch.testing.assert_close(fused.components["SM"], sm, rtol=1e-6, atol=1e-9)


def test_the_warmup_runs_without_gradient_unless_asked():
    """model.warmup_grad: False (hydrodl2's choice) leaves the warm-up out of the gradient, so
    a parameter's gradient is that of the window alone; True back-propagates through the states
    the warm-up hands over, and the gradient changes."""
    torch.manual_seed(0)
    forcing = synthetic_forcing(200, 3, dtype=torch.float32)
    x, xs = torch.randn(200, 3, 3), torch.randn(3, 4)
    grads = {}
    for flag in (False, True):
        torch.manual_seed(1)
        m = DeltaModel(3, 4, nmul=2, hidden=8, dropout=0.0, engine="reference", warmup_grad=flag)
        out = m(x, xs, forcing, warmup=120)
        out.outputs["Q_sim"].sum().backward()
        grads[flag] = torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None])
        q = out.outputs["Q_sim"].detach()
        grads[f"q{flag}"] = q
    torch.testing.assert_close(grads["qFalse"], grads["qTrue"])  # the same simulation
    assert not torch.allclose(grads[False], grads[True])  # a different gradient


def test_the_learner_back_propagates_over_the_window_only():
    """Without warmup_grad g_A runs the warm-up days without a graph and carries its (h, c) into
    the window (truncated BPTT at the warm-up). Against one pass with a graph over all days (the
    HBV warm-up still without gradient in both): the hidden states and Q are the same, so the
    output layer's gradient is too, while the recurrent weights' gradient loses the warm-up's
    part and no gradient reaches a warm-up day's input. In float64 and with a 40-day window: with
    120 of 200 days as warm-up the warm-up's share of the recurrent gradient is ~4e-12, below
    float32 rounding, so in float32 whether it showed depended on the CPU's kernels (exactly 0.0
    on an AVX-512 CPU)."""
    torch.manual_seed(0)
    forcing = synthetic_forcing(200, 3, dtype=torch.float64)
    xs = torch.randn(3, 4, dtype=torch.float64)
    WARMUP = 160  # a 40-day window, so the warm-up's share of the gradient is well above rounding
    res = {}
    for cut in (True, False):
        torch.manual_seed(1)
        m = DeltaModel(3, 4, nmul=2, hidden=8, dropout=0.0, engine="reference").double()
        x = torch.randn(200, 3, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64).requires_grad_()
        with torch.no_grad():
            h_one = m.learner.features(m.learner_inputs(x, xs))
        torch.testing.assert_close(m.learner.features(m.learner_inputs(x, xs), WARMUP), h_one)
        if not cut:  # the learner as it was before the cut: one pass with a graph
            m.learner.features = lambda inp, no_grad_days=0, net=m.learner: LSTMNet.features(net, inp)
        out = m(x, xs, forcing, warmup=WARMUP)
        out.outputs["Q_sim"].sum().backward()
        res[cut] = (out.outputs["Q_sim"].detach(), m.learner.linear_out.weight.grad.clone(),
                    m.learner.lstm.weight_hh_l0.grad.clone(), x.grad[:WARMUP].abs().sum())
    torch.testing.assert_close(res[True][0], res[False][0])
    torch.testing.assert_close(res[True][1], res[False][1], rtol=1e-4, atol=1e-6)
    # the warm-up's share of the recurrent gradient is small (it decays back through the LSTM's
    # forget gates over the 40 window days) but not zero
    diff = float((res[True][2] - res[False][2]).norm() / res[False][2].norm())
    assert 1e-10 < diff < 1e-3, diff  # ~1.5e-6 here; float64 rounding is ~1e-15
    assert float(res[True][3]) == 0.0 and float(res[False][3]) > 0.0
    with pytest.raises(ValueError, match="no_grad_days"):
        LSTMNet(7, 1, hidden=4).features(torch.zeros(5, 1, 7), 5)


@pytest.mark.parametrize("family", ["delta", "lstm"])
def test_bf16_precision_runs_the_lstm_in_bf16_and_the_rest_in_fp32(family):
    """train.precision bf16: g_A (or the LSTM baseline) under bf16 autocast, its outputs cast
    back; the HBV, routing and Q stay fp32; the simulation is close to the fp32 one."""
    torch.manual_seed(0)
    forcing = synthetic_forcing(150, 3, dtype=torch.float32)
    x, xs = torch.randn(150, 3, 3), torch.randn(3, 4)
    m = (DeltaModel(3, 4, nmul=2, hidden=16, dropout=0.0) if family == "delta"
         else StreamflowLSTM(3, 4, hidden=16, dropout=0.0)).eval()
    seen = []
    m.learner.lstm.register_forward_hook(lambda mod, inp, out: seen.append(out[0].dtype))
    q32 = m(x, xs, forcing, warmup=50).outputs["Q_sim"]
    m.precision = "bf16"
    q16 = m(x, xs, forcing, warmup=50).outputs["Q_sim"]
    half = len(seen) // 2  # a δ model's g_A runs the warm-up and the window as two LSTM calls
    assert seen[:half] == [torch.float32] * half and seen[half:] == [torch.bfloat16] * half
    assert q16.dtype == torch.float32 and torch.isfinite(q16).all()
    assert float((q16 - q32).detach().abs().max()) < 0.05 * float(q32.detach().abs().max()) + 1e-3
    assert not torch.equal(q16, q32)
