"""The fused HBV kernel equals the reference autograd HBV: outputs (1e-6 relative, float64),
gradients w.r.t. every parameter, the forcings and the initial state (1e-5), on cases that
exercise every threshold branch; plus torch.autograd.gradcheck of the kernel itself."""

from __future__ import annotations

import pytest
import torch

from core.physics import HBV, HBV_STATES, OUTPUT_NAMES
from core.physics.fused import fused_available
from tests.test_physics import random_params, synthetic_forcing

pytestmark = pytest.mark.skipif(not fused_available("cpu"), reason="no C++ compiler for the fused kernel")


def branch_case(nt=500, nb=6, nmul=4, use_gamma=True, dynamic=("BETA", "GAMMA"), seed=0):
    """Forcing with cold winters, storms and a long hot dry spell; parameters spanning the bounds
    with small FC/UZL so soil overflows and fast flow occurs, and an empty initial state."""
    forcing = synthetic_forcing(nt=nt, nb=nb, seed=seed)
    forcing[200:290, :, 0] = 0.0  # drought: soil and upper zone drain to empty
    forcing[200:290, :, 2] = 12.0  # high PET: ET limited by soil water
    model = HBV(nmul=nmul, use_gamma=use_gamma, engine="reference")
    p = random_params(model, nt, nb, dynamic=dynamic, seed=seed)
    p["FC"][..., : nmul // 2] = 55.0
    p["UZL"][..., : nmul // 2] = 2.0
    p["PERC"][..., 0] = 9.5
    state = {s: torch.zeros(nb, nmul, dtype=torch.float64) for s in HBV_STATES}
    return forcing, p, state


def weighted_loss(res, weights):
    return sum((res.outputs[k] * weights[k]).sum() for k in weights) + sum(
        (res.final_state[s] ** 2).sum() for s in HBV_STATES)


@pytest.mark.parametrize("use_gamma,dynamic,nmul,sm_floor", [
    (False, (), 4, 0.0), (True, ("BETA",), 4, 0.0), (True, ("BETA", "GAMMA"), 4, 0.0),
    # the kernel runs components in SIMD lanes (4 doubles): 6 = one full and one partial group
    (True, ("BETA", "GAMMA"), 6, 0.0), (False, ("BETA",), 1, 0.0),
    # Feng et al.'s release conventions: SM floored at 1e-5 mm after ET (no gradient below it)
    (True, ("BETA", "GAMMA"), 6, 1e-5), (False, (), 4, 1e-5)])
def test_fused_matches_reference_outputs_and_gradients(use_gamma, dynamic, nmul, sm_floor):
    forcing, params, state = branch_case(use_gamma=use_gamma, dynamic=dynamic, nmul=nmul)
    ref_m = HBV(nmul=nmul, use_gamma=use_gamma, engine="reference", sm_floor=sm_floor)
    fus_m = HBV(nmul=nmul, use_gamma=use_gamma, engine="fused", sm_floor=sm_floor)
    leaves = [forcing.requires_grad_()] + [v.requires_grad_() for v in params.values()] + \
             [v.requires_grad_() for v in state.values()]
    ref = ref_m(forcing, params, state)
    fus = fus_m(forcing, params, state)

    # every threshold branch is exercised somewhere
    comps = ref_m(forcing.detach(), {k: v.detach() for k, v in params.items()},
                  {k: v.detach() for k, v in state.items()}, return_components=True).components
    assert (comps["SNOW"] > 0).any() and (comps["SNOW"] == 0).any()
    assert (comps["MELT"] > 0).any() and (comps["REFREEZE"] > 0).any() and (comps["TOSOIL"] > 0).any()
    assert (comps["EXCESS"] > 0).any(), "soil above FC"
    assert (comps["Q0"] > 0).any() and (comps["Q0"] == 0).any(), "UZ above and below UZL"
    if sm_floor:
        assert (comps["SM"] == sm_floor).any() and (comps["SM"] >= sm_floor).all(), "soil held at the floor"
    else:
        assert (comps["SM"] < 1e-9).any(), "soil emptied by ET"
    assert (comps["SUZ"] < 1e-9).any(), "upper zone emptied by percolation"

    for name in OUTPUT_NAMES:
        a, b = ref.outputs[name], fus.outputs[name]
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-9, msg=name)
    for s in HBV_STATES:
        torch.testing.assert_close(fus.final_state[s], ref.final_state[s], rtol=1e-6, atol=1e-9)

    g = torch.Generator().manual_seed(1)
    weights = {k: torch.randn(ref.outputs[k].shape, generator=g, dtype=torch.float64) for k in OUTPUT_NAMES}
    g_ref = torch.autograd.grad(weighted_loss(ref, weights), leaves)
    g_fus = torch.autograd.grad(weighted_loss(fus, weights), leaves)
    names = ["forcing", *params, *(f"state0.{s}" for s in state)]
    for name, a, b in zip(names, g_ref, g_fus):
        scale = a.abs().max().clamp(min=1e-12)
        assert ((a - b).abs().max() / scale) < 1e-5, name
        if not name.startswith("state0"):
            assert a.abs().max() > 0, f"gradient w.r.t. {name} is identically zero: the case is too weak"


def test_fused_components_and_warm_state():
    forcing, params, state = branch_case(nt=120, dynamic=())
    ref = HBV(nmul=4, use_gamma=True, engine="reference")(forcing, params, state, return_components=True)
    fus = HBV(nmul=4, use_gamma=True, engine="fused")(forcing, params, state, return_components=True)
    for name in OUTPUT_NAMES:
        torch.testing.assert_close(fus.components[name], ref.components[name], rtol=1e-6, atol=1e-9)
    # continuing from a carried state equals a continuous run
    m = HBV(nmul=4, use_gamma=True, engine="fused")
    first = m(forcing[:70], params, state)
    second = m(forcing[70:], params, first.final_state)
    full = m(forcing, params, state)
    torch.testing.assert_close(second.outputs["Q_unrouted"], full.outputs["Q_unrouted"][70:])


@pytest.mark.parametrize("nmul", [4, 16, 11])
def test_fused_float32_close_to_float64(nmul):
    """float32 runs 8 components per vector (16 = two full groups, 11 = a full and a partial one);
    outputs and gradients stay close to the float64 reference."""
    forcing, params, state = branch_case(nt=365, dynamic=("BETA",), nmul=nmul)
    r64 = HBV(nmul=nmul, use_gamma=True, engine="reference")(forcing, params, state, return_components=True)
    p32 = {k: v.float().requires_grad_() for k, v in params.items()}
    r32 = HBV(nmul=nmul, use_gamma=True, engine="fused")(
        forcing.float(), p32, {k: v.float() for k, v in state.items()}, return_components=True)
    for name in ("Q_unrouted", "ET", "SM", "SNOWPACK"):
        a, b = r64.components[name], r32.components[name].double()
        assert ((b - a).abs().max() / a.abs().max()) < 1e-4, name
    p64 = {k: v.clone().requires_grad_() for k, v in params.items()}
    q64 = HBV(nmul=nmul, use_gamma=True, engine="reference")(forcing, p64, state).outputs["Q_unrouted"]
    q64.sum().backward()
    r32.outputs["Q_unrouted"].sum().backward()
    for k in params:
        g64, g32 = p64[k].grad, p32[k].grad.double()
        assert ((g32 - g64).abs().max() / g64.abs().max().clamp(min=1e-12)) < 1e-3, k


def test_fused_gradcheck():
    forcing, params, state = branch_case(nt=40, nb=2, nmul=2, dynamic=("BETA", "GAMMA"))
    forcing[:20, :, 1] = -6.0  # cold start: snow and refreeze inside the short window
    m = HBV(nmul=2, use_gamma=True, engine="fused")
    names = list(params)
    inputs = [forcing.requires_grad_()] + [params[n].requires_grad_() for n in names]

    def f(forcing, *plist):
        res = m(forcing, dict(zip(names, plist)), state)
        return torch.stack([res.outputs["Q_unrouted"], res.outputs["ET"], res.outputs["SNOWPACK"]])

    assert torch.autograd.gradcheck(f, inputs, eps=1e-7, atol=1e-5, rtol=1e-4)


def test_auto_engine_uses_fused_on_cpu_and_reports_bad_engine():
    assert HBV(nmul=2).engine == "auto"
    with pytest.raises(ValueError, match="engine"):
        HBV(nmul=2, engine="gpu-magic")


def test_fused_no_grad_forward_equals_reference():
    """Without gradients the kernel skips pow() where its value cannot matter (dry days, zero PET,
    full soil); outputs must still equal the reference."""
    forcing, params, state = branch_case(nt=500, dynamic=("BETA", "GAMMA"))
    forcing[300:330, :, 2] = 0.0  # zero-PET days (Oudin PET is 0 below -5 °C)
    with torch.no_grad():
        ref = HBV(nmul=4, use_gamma=True, engine="reference")(forcing, params, state)
        fus = HBV(nmul=4, use_gamma=True, engine="fused")(forcing, params, state)
    assert (ref.outputs["RAIN"] + ref.outputs["TOSOIL"] == 0).any()  # dry days present
    for name in OUTPUT_NAMES:
        torch.testing.assert_close(fus.outputs[name], ref.outputs[name], rtol=1e-12, atol=1e-12, msg=name)


@pytest.mark.parametrize("nmul,dynamic", [(6, ("BETA",)), (4, ())])
def test_fused_recharge_network_matches_reference(nmul, dynamic):
    """δn(NN_r): the kernel evaluates RechargeNet inside its time loop; outputs, the gradients
    w.r.t. parameters, forcings, initial state and every network weight equal the reference's
    (nmul 6: a full and a partial lane group, whose repeated lanes must add nothing to the weights)."""
    from core.physics.hbv import RechargeNet

    forcing, params, state = branch_case(use_gamma=True, dynamic=dynamic, nmul=nmul)
    torch.manual_seed(3)
    net = RechargeNet().double()
    with torch.no_grad():  # weights large enough that the network's output varies with its inputs
        for m in (net.net[0], net.net[2], net.net[4]):
            m.weight.mul_(3.0)
    ref_m = HBV(nmul=nmul, use_gamma=True, engine="reference", recharge_net=net)
    fus_m = HBV(nmul=nmul, use_gamma=True, engine="fused", recharge_net=net)
    leaves = [forcing.requires_grad_()] + [v.requires_grad_() for v in params.values()] + \
             [v.requires_grad_() for v in state.values()]
    weights_nn = list(net.parameters())
    ref, fus = ref_m(forcing, params, state), fus_m(forcing, params, state)
    frac = ref.outputs["RECHARGE"] / (ref.outputs["RAIN"] + ref.outputs["TOSOIL"]).clamp(min=1e-9)
    assert frac.max() - frac.min() > 0.1, "the network's recharge fraction hardly varies: a weak case"
    for name in OUTPUT_NAMES:
        torch.testing.assert_close(fus.outputs[name], ref.outputs[name], rtol=1e-6, atol=1e-9, msg=name)
    g = torch.Generator().manual_seed(1)
    w = {k: torch.randn(ref.outputs[k].shape, generator=g, dtype=torch.float64) for k in OUTPUT_NAMES}
    g_ref = torch.autograd.grad(weighted_loss(ref, w), leaves + weights_nn)
    g_fus = torch.autograd.grad(weighted_loss(fus, w), leaves + weights_nn)
    names = ["forcing", *params, *(f"state0.{s}" for s in state), "W1", "b1", "W2", "b2", "W3", "b3"]
    for name, a, b in zip(names, g_ref, g_fus):
        scale = a.abs().max().clamp(min=1e-12)
        assert ((a - b).abs().max() / scale) < 1e-5, name
        if not name.startswith("state0"):
            assert a.abs().max() > 0, f"gradient w.r.t. {name} is identically zero: the case is too weak"
    with torch.no_grad():  # the kernel's no-tape path (skips the network on dry days)
        lazy = fus_m(forcing, params, state)
    for name in OUTPUT_NAMES:
        torch.testing.assert_close(lazy.outputs[name], ref.outputs[name].detach(), rtol=1e-6, atol=1e-9, msg=name)
