"""Gradients flow from the loss through routing and HBV into every LSTM weight, and match finite
differences on a tiny float64 case."""

from __future__ import annotations

import torch

from core.models import DeltaModel
from core.physics import HBV, route, gamma_unit_hydrograph
from core.training import rmse_comb_loss
from tests.test_physics import synthetic_forcing


def tiny_case(dynamic=("BETA", "GAMMA"), seed=0):
    torch.manual_seed(seed)
    nt, nb, n_static = 60, 3, 4
    forcing = synthetic_forcing(nt=nt, nb=nb, seed=seed)
    x_dyn = (forcing - forcing.mean((0, 1))) / forcing.std((0, 1))
    x_static = torch.randn(nb, n_static, dtype=torch.float64)
    model = DeltaModel(3, n_static, nmul=2, dynamic=dynamic, use_gamma=True, hidden=5,
                       dropout=0.0).double()
    obs = torch.rand(nt, nb, dtype=torch.float64) * 3
    obs[::7, 0] = float("nan")  # missing observations are masked
    return model, x_dyn, x_static, forcing, obs


def loss_of(model, x_dyn, x_static, forcing, obs, warmup=20):
    out = model(x_dyn, x_static, forcing, warmup=warmup)
    return rmse_comb_loss(out.outputs["Q_sim"], obs[-(forcing.shape[0] - warmup):])


def test_gradients_reach_every_lstm_weight():
    model, *args = tiny_case()
    loss = loss_of(model, *args)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_gradients_match_finite_differences():
    """Without warm-up: the warm-up is deliberately gradient-free (its final state is a constant),
    so finite differences would see an effect that autograd rightly ignores."""
    model, *args = tiny_case(seed=1)
    args = (*args, 0)
    loss = loss_of(model, *args)
    loss.backward()
    g = torch.Generator().manual_seed(0)
    checked = 0
    for name, p in model.named_parameters():
        flat, grad = p.data.view(-1), p.grad.view(-1)
        for idx in torch.randperm(flat.numel(), generator=g)[:3]:
            old = flat[idx].item()
            h = 1e-6
            flat[idx] = old + h
            lp = loss_of(model, *args).item()
            flat[idx] = old - h
            lm = loss_of(model, *args).item()
            flat[idx] = old
            fd = (lp - lm) / (2 * h)
            assert abs(fd - grad[idx].item()) <= 1e-5 + 1e-4 * abs(fd), (name, int(idx), fd, grad[idx].item())
            checked += 1
    assert checked >= 3 * len(list(model.parameters()))


def test_hbv_and_routing_gradcheck():
    """torch.autograd.gradcheck of HBV + routing w.r.t. raw parameters and forcing (float64)."""
    nt, nb, nmul = 25, 2, 2
    model = HBV(nmul=nmul, use_gamma=True)
    forcing = synthetic_forcing(nt=nt, nb=nb, seed=3)
    g = torch.Generator().manual_seed(4)
    raws = [torch.rand(1 if s.name != "BETA" else nt, nb, nmul, generator=g, dtype=torch.float64)
            .clamp(0.05, 0.95).requires_grad_() for s in model.parameter_specs]
    forcing.requires_grad_()
    ra = torch.rand(nb, dtype=torch.float64, generator=g).requires_grad_()
    rb = torch.rand(nb, dtype=torch.float64, generator=g).requires_grad_()

    def f(forcing, ra, rb, *raws):
        params = {s.name: s.scale(r) for s, r in zip(model.parameter_specs, raws)}
        q = model(forcing, params).outputs["Q_unrouted"]
        return route(q, gamma_unit_hydrograph(ra * 2.9, rb * 6.5))

    assert torch.autograd.gradcheck(f, (forcing, ra, rb, *raws), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_parameters_from_computes_only_used_outputs_exactly():
    """Static units on the last day and dynamic units on the window equal the full output layer."""
    model, x_dyn, x_static, *_ = tiny_case(dynamic=("BETA", "GAMMA"))
    model.eval()
    params = model.parameters_from(x_dyn, x_static, dynamic_from=20)
    full = torch.sigmoid(model.learner(model.learner_inputs(x_dyn, x_static)))  # [time, basin, ny]
    nm, nh = model.nmul, model.n_hbv
    for i, spec in enumerate(model.backbone.parameter_specs):
        raw = full[:, :, i * nm:(i + 1) * nm]
        expect = spec.scale(raw[20:] if spec.name in ("BETA", "GAMMA") else raw[-1:])
        torch.testing.assert_close(params[spec.name], expect, rtol=1e-12, atol=1e-12)
    assert params["BETA"].shape == (40, 3, nm) and params["FC"].shape == (1, 3, nm)
