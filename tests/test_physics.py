"""HBV and routing: mass balance on real forcing, non-negative storages, shapes and errors."""

from __future__ import annotations

import pytest
import torch

from core.physics import (HBV, HBV_PARAMETERS, HBV_STATES, GAMMA, OUTPUT_NAMES, gamma_unit_hydrograph,
                          route)
from tests.conftest import needs_data


def random_params(model: HBV, nt: int, nb: int, dtype=torch.float64, dynamic=(), seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for s in model.parameter_specs:
        lead = nt if s.name in dynamic else 1
        out[s.name] = s.scale(torch.rand(lead, nb, model.nmul, generator=g, dtype=dtype))
    return out


def storage(state_or_outputs, reduce_components=True):
    return sum(state_or_outputs[s] for s in HBV_STATES)


def synthetic_forcing(nt=400, nb=6, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    P = torch.rand(nt, nb, generator=g, dtype=dtype) ** 3 * 40  # skewed, with big storms
    day = torch.arange(nt, dtype=dtype).unsqueeze(1)
    T = 8 - 14 * torch.cos(2 * torch.pi * day / 365) + 3 * torch.randn(nt, nb, generator=g, dtype=dtype)
    PET = torch.clamp(2 - 2 * torch.cos(2 * torch.pi * day / 365), min=0) * torch.ones(nt, nb, dtype=dtype)
    return torch.stack([P, T, PET], dim=-1)


def balance_error(forcing, res, init_total):
    """ΣP − ΣET − ΣQ − ΔS per basin (mm), component-averaged."""
    P = forcing[..., 0].sum(0)
    out = res.outputs
    final_total = sum(res.final_state[s] for s in HBV_STATES).mean(-1)
    return P - out["ET"].sum(0) - out["Q_unrouted"].sum(0) - (final_total - init_total)


@needs_data
@pytest.mark.data
@pytest.mark.parametrize("use_gamma,dynamic", [(False, ()), (True, ("BETA", "GAMMA"))])
def test_mass_balance_real_forcing(data_root, use_gamma, dynamic):
    """ΣP = ΣET + ΣQ + ΔS within 1e-4 mm per basin over a year of real Caravan forcing."""
    from core.datasets import load_dataset

    ds = load_dataset(data_root, basins=["01022500", "02064000", "06431500", "09447800", "12025000"],
                      start="1999-10-01", end="2000-09-30")
    forcing = torch.from_numpy(
        ds[["P", "T", "PET"]].to_array("var").transpose("time", "site", "var").values).double()
    assert forcing.shape == (366, 5, 3)
    model = HBV(nmul=16, use_gamma=use_gamma)
    params = random_params(model, forcing.shape[0], 5, dynamic=dynamic)
    res = model(forcing, params)
    init_total = 5 * model.init_storage
    err = balance_error(forcing, res, init_total)
    assert err.abs().max() < 1e-4, err
    # the per-component balance closes as well
    comps = model(forcing, params, return_components=True).components
    P = forcing[..., 0].sum(0).unsqueeze(-1)
    final = sum(comps[s][-1] for s in HBV_STATES)
    err_c = P - comps["ET"].sum(0) - comps["Q_unrouted"].sum(0) - (final - init_total)
    assert err_c.abs().max() < 1e-4
    for s in HBV_STATES:
        assert comps[s].min() >= 0, s
    # snow happened in at least one basin (the check covers the snow routine)
    assert res.outputs["SNOWPACK"].max() > 1.0


def test_storages_non_negative_and_fluxes_bounded():
    forcing = synthetic_forcing()
    model = HBV(nmul=8, use_gamma=True)
    res = model(forcing, random_params(model, forcing.shape[0], forcing.shape[1], dynamic=("BETA",)),
                return_components=True)
    for name in HBV_STATES:
        assert res.components[name].min() >= 0, name
    for name in ("ET", "Q0", "Q1", "Q2", "RECHARGE", "PERC", "MELT", "REFREEZE"):
        assert res.components[name].min() >= 0, name
    # ET never exceeds PET
    assert (res.components["ET"] <= forcing[..., 2:3] + 1e-12).all()
    assert set(res.outputs) == set(OUTPUT_NAMES)
    assert res.outputs["Q_unrouted"].shape == (forcing.shape[0], forcing.shape[1])
    assert res.components["SM"].shape == (forcing.shape[0], forcing.shape[1], 8)


def test_threshold_branches_are_exercised():
    """The synthetic case triggers snow, melt, refreeze, soil above FC and UZ above UZL."""
    forcing = synthetic_forcing(nt=730)
    model = HBV(nmul=4)
    params = random_params(model, 1, forcing.shape[1])
    params["FC"] = torch.full_like(params["FC"], 60.0)
    params["UZL"] = torch.full_like(params["UZL"], 5.0)
    params["CFR"] = torch.full_like(params["CFR"], 0.1)
    res = model(forcing, params)
    for name in ("SNOW", "MELT", "REFREEZE", "EXCESS", "Q0"):
        assert res.outputs[name].max() > 0, name


def test_warm_start_equals_continuous_run():
    """Running in two pieces from the carried state equals one continuous run."""
    forcing = synthetic_forcing(nt=200, nb=3)
    model = HBV(nmul=2)
    params = random_params(model, 1, 3)
    full = model(forcing, params)
    first = model(forcing[:120], params)
    second = model(forcing[120:], params, state=first.final_state)
    torch.testing.assert_close(second.outputs["Q_unrouted"], full.outputs["Q_unrouted"][120:])


def test_bad_shapes_raise():
    model = HBV(nmul=2)
    forcing = synthetic_forcing(nt=10, nb=3)
    params = random_params(model, 1, 3)
    with pytest.raises(ValueError, match="forcing must be"):
        model(forcing[..., :2], params)
    bad = dict(params, FC=params["FC"][:, :2])
    with pytest.raises(ValueError, match="parameter FC"):
        model(forcing, bad)
    with pytest.raises(KeyError, match="K2"):
        model(forcing, {k: v for k, v in params.items() if k != "K2"})


def test_param_spec_bounds():
    names = [s.name for s in HBV_PARAMETERS]
    assert names == ["BETA", "FC", "K0", "K1", "K2", "LP", "PERC", "UZL", "TT", "CFMAX", "CFR", "CWH"]
    fc = dict((s.name, s) for s in HBV_PARAMETERS)["FC"]
    assert float(fc.scale(torch.tensor(0.0))) == 50.0 and float(fc.scale(torch.tensor(1.0))) == 1000.0
    assert GAMMA.dynamic_capable


def test_unit_hydrograph_and_routing_conserve_mass():
    a = torch.tensor([0.0, 1.0, 2.9], dtype=torch.float64)
    b = torch.tensor([0.0, 3.0, 6.5], dtype=torch.float64)
    uh = gamma_unit_hydrograph(a, b)
    assert uh.shape == (15, 3)
    torch.testing.assert_close(uh.sum(0), torch.ones(3, dtype=torch.float64))
    assert (uh >= 0).all()
    q = torch.zeros(60, 3, dtype=torch.float64)
    q[5] = 10.0
    routed = route(q, uh)
    torch.testing.assert_close(routed.sum(0), torch.full((3,), 10.0, dtype=torch.float64))
    assert routed[:5].abs().max() == 0  # causal
    # a pulse is delayed more by a larger scale θb
    centroid = (routed * torch.arange(60, dtype=torch.float64).unsqueeze(1)).sum(0) / 10.0
    assert centroid[0] < centroid[1] < centroid[2]
