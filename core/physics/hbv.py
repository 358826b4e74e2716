"""Differentiable HBV (reference implementation, plain PyTorch autograd).

Time-discrete daily HBV as used by the δ models of Feng et al. (2022, WRR, e2022WR032404,
Table 1 and Appendix A; after Bergström 1976 and Seibert & Vis 2012): a degree-day snow routine
(TT, CFMAX, CFR, CWH), a soil routine (FC, LP, BETA; optional ET-shape exponent γ), an upper zone
(PERC, UZL, K0, K1) and a lower zone (K2). ``nmul`` parallel components with their own parameters
are run side by side and averaged with equal weights (the "n" in δn).

Mass is conserved exactly per component and step:
``P = ET + Q0 + Q1 + Q2 + Δ(SNOWPACK + MELTWATER + SM + SUZ + SLZ)``, and every storage stays ≥ 0
because each outflow is bounded by the storage it leaves. Routing (gamma unit hydrograph) lives in
``core.physics.routing``; the composition of both is ``core.models.DeltaModel``.

This module is the reference: any faster kernel must reproduce ``hbv_step`` and read the same
``core.physics.spec`` tables.
"""

from __future__ import annotations

from typing import Mapping

import torch

from .backbone import BackboneResult, OutputSpec, check_params, run_days
from .fused import FusedHBVFunction, fused_available, load_kernel
from .snow import degree_day_snow
from .spec import FLUX_DESCRIPTIONS, GAMMA, HBV_FLUXES, HBV_PARAMETERS, HBV_STATES, OUTPUT_UNITS, STATE_DESCRIPTIONS

FORCING_NAMES: tuple[str, ...] = ("P", "T", "PET")
OUTPUT_NAMES: tuple[str, ...] = (*HBV_STATES, *HBV_FLUXES)

# Floor for the base of the power laws (SM/FC)^BETA and (SM/(LP·FC))^γ: keeps d/dexponent finite
# at empty soil. It changes no water amount (both are efficiencies in [0, 1]).
_POW_FLOOR = 1e-6


#: What ``HBV.forward`` returns: the backbone contract's result (outputs name -> [time, site],
#: final_state name -> [site, nmul], components on request).
HBVResult = BackboneResult


class RechargeNet(torch.nn.Module):
    """NN_r of δn(NN_r): a small network for the effective rainfall (recharge) of the soil routine.

    Replaces RECHARGE = (RAIN + TOSOIL)·min((SM/FC)^BETA, 1) (Feng et al. 2022, sec. 2.2, the
    δn(NN_r) variant) by

        P_eff = (Pr + Isnow) · σ(MLP(FC, BETA, SM, SM/FC, Pr + Isnow)),

    so 0 ≤ P_eff ≤ Pr + Isnow for any weights: the soil keeps the rest and mass is conserved
    exactly. Inputs are scaled to O(1) with the spec bounds (FC/1000 mm, BETA/6, SM/1000 mm,
    SM/FC, log1p(Pr + Isnow)/log(101)). It is trained end to end with the learner.

    Args:
        hidden: width of the two hidden layers (tanh).

    Shapes: ``forward(fc, beta, sm, infil)``, each [site, nmul] (mm or 1) -> [site, nmul] mm/d.
    """

    N_INPUTS = 5

    def __init__(self, hidden: int = 16):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(self.N_INPUTS, hidden), torch.nn.Tanh(),
            torch.nn.Linear(hidden, hidden), torch.nn.Tanh(),
            torch.nn.Linear(hidden, 1),
        )
        fc_max = next(s.upper for s in HBV_PARAMETERS if s.name == "FC")
        beta_max = next(s.upper for s in HBV_PARAMETERS if s.name == "BETA")
        self.register_buffer("_scale", torch.tensor([1 / fc_max, 1 / beta_max, 1 / fc_max]),
                             persistent=False)

    def forward(self, fc: torch.Tensor, beta: torch.Tensor, sm: torch.Tensor,
                infil: torch.Tensor) -> torch.Tensor:
        sc = self._scale.to(fc.dtype)
        fc_b = torch.broadcast_to(fc, sm.shape)
        feats = torch.stack([fc_b * sc[0], torch.broadcast_to(beta, sm.shape) * sc[1], sm * sc[2],
                             sm / fc_b, torch.log1p(torch.broadcast_to(infil, sm.shape)) / 4.61512],
                            dim=-1)
        frac = torch.sigmoid(self.net(feats).squeeze(-1))
        return infil * frac

    @property
    def hidden(self) -> int:
        """Width of the two hidden layers."""
        return self.net[0].out_features

    def flat_weights(self) -> torch.Tensor:
        """The network as the fused kernel reads it (``core.physics.fused``): [4 input scales
        (1/FC_max, 1/BETA_max, 1/FC_max, 1/4.61512), W1 [H, 5], b1, W2 [H, H], b2, W3 [1, H], b3],
        one 1-d tensor (differentiable in the weights; the scales are constants)."""
        sc = self._scale.to(self.net[0].weight.dtype)
        consts = torch.cat([sc, sc.new_tensor([1 / 4.61512])])
        lin = [self.net[0], self.net[2], self.net[4]]
        return torch.cat([consts, *[t.reshape(-1) for m in lin for t in (m.weight, m.bias)]])


def hbv_step(
    P: torch.Tensor,
    T: torch.Tensor,
    PET: torch.Tensor,
    state: tuple[torch.Tensor, ...],
    p: Mapping[str, torch.Tensor],
    recharge_net: "RechargeNet | None" = None,
    sm_floor: float = 0.0,
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """One day of HBV for all basins and components.

    Args:
        P: precipitation [site, 1] (mm/d).
        T: mean air temperature [site, 1] (°C).
        PET: potential evapotranspiration [site, 1] (mm/d).
        state: (SNOWPACK, MELTWATER, SM, SUZ, SLZ), each [site, nmul] (mm).
        p: parameters in physical units, each [site, nmul]; keys of ``HBV_PARAMETERS`` and,
            optionally, ``GAMMA``.
        recharge_net: δn(NN_r): compute RECHARGE with this network instead of the soil-wetness
            power law (see ``RechargeNet``); None: the standard HBV.
        sm_floor: raise SM to at least this after ET (mm; 0: no floor). Feng et al.'s release and
            hydrodl2 floor SM at 1e-5 mm (``nearzero``), which creates that water; HydroLens's
            own convention is 0, so the mass balance closes exactly.

    Returns:
        (new_state, fluxes): new_state as ``state``; fluxes in ``HBV_FLUXES`` order, each
        [site, nmul] (mm/d).

    Equations (Feng et al. 2022, Table 1 / Appendix A):
        snow:   RAIN = P·[T ≥ TT], SNOW = P·[T < TT]; MELT = min(CFMAX·max(T − TT, 0), SNOWPACK);
                REFREEZE = min(CFR·CFMAX·max(TT − T, 0), MELTWATER);
                TOSOIL = max(MELTWATER − CWH·SNOWPACK, 0)
        soil:   RECHARGE = (RAIN + TOSOIL)·min((SM/FC)^BETA, 1); EXCESS = max(SM − FC, 0);
                ET = min(PET·min(SM/(LP·FC), 1)^γ, SM)   (γ = 1 unless GAMMA is given)
        zones:  PERC = min(SUZ, PERC); Q0 = K0·max(SUZ − UZL, 0); Q1 = K1·SUZ; Q2 = K2·SLZ
    """
    snowpack, meltwater, sm, suz, slz = state
    tt, cfmax = p["TT"], p["CFMAX"]
    fc = p["FC"]

    # snow routine (core.physics.snow, shared with the VIC-type model)
    snowpack, meltwater, rain, snow, melt, refreeze, tosoil = degree_day_snow(
        P, T, snowpack, meltwater, tt, cfmax, p["CFR"], p["CWH"])

    # soil routine
    infil = rain + tosoil
    if recharge_net is None:
        recharge = infil * torch.clamp(sm / fc, min=_POW_FLOOR, max=1.0) ** p["BETA"]
    else:
        recharge = recharge_net(fc, p["BETA"], sm, infil)
    sm = sm + infil - recharge
    excess = torch.clamp(sm - fc, min=0.0)
    sm = sm - excess
    eta = torch.clamp(sm / (p["LP"] * fc), min=_POW_FLOOR, max=1.0)
    if "GAMMA" in p:
        eta = eta ** p["GAMMA"]
    et = torch.minimum(PET * eta, sm)
    sm = sm - et
    if sm_floor:
        sm = torch.clamp(sm, min=sm_floor)

    # upper and lower zones
    suz = suz + recharge + excess
    perc = torch.minimum(suz, p["PERC"])
    suz = suz - perc
    q0 = p["K0"] * torch.clamp(suz - p["UZL"], min=0.0)
    suz = suz - q0
    q1 = p["K1"] * suz
    suz = suz - q1
    slz = slz + perc
    q2 = p["K2"] * slz
    slz = slz - q2

    new_state = (snowpack, meltwater, sm, suz, slz)
    fluxes = (rain, snow, melt, refreeze, tosoil, recharge, excess, et, perc, q0, q1, q2,
              q0 + q1 + q2)
    return new_state, fluxes


class HBV(torch.nn.Module):
    """Multi-component HBV backbone (reference, autograd).

    Args:
        nmul: number of parallel components n (δ1: 1, δn: 16).
        use_gamma: include the ET-shape exponent γ (``GAMMA``) as a parameter (δn(γᵗ) variants).
        init_storage: initial value (mm) of every storage when no state is given.
        engine: ``"auto"`` (the fused kernel of ``core.physics.fused`` for CPU tensors when it
            builds, else the reference), ``"fused"`` (require it) or ``"reference"`` (the
            autograd loop over ``hbv_step`` below). Both compute the same model.
        recharge_net: a ``RechargeNet`` for δn(NN_r) (its weights become parameters of this
            module); both engines run it (the fused kernel evaluates the network inside its time
            loop and returns the weights' gradients).
        sm_floor: soil-moisture floor after ET (mm; ``hbv_step``): 0 (HydroLens), 1e-5 for
            Feng et al.'s release conventions; both engines apply it.

    Contract (see DESIGN.md): ``forward(forcing [time, site, 3], params name -> [time or 1,
    basin, nmul], state=None)`` -> ``HBVResult``. Static parameters have a leading dimension of 1,
    dynamic ones one value per day.
    """

    ENGINES = ("auto", "fused", "reference")

    def __init__(self, nmul: int = 16, use_gamma: bool = False, init_storage: float = 0.001,
                 engine: str = "auto", recharge_net: RechargeNet | None = None, sm_floor: float = 0.0):
        super().__init__()
        if nmul < 1:
            raise ValueError(f"nmul must be ≥ 1, got {nmul}")
        if engine not in self.ENGINES:
            raise ValueError(f"engine must be one of {self.ENGINES}, got {engine!r}")
        self.recharge_net = recharge_net
        self.sm_floor = float(sm_floor)
        self.nmul = nmul
        self.use_gamma = use_gamma
        self.init_storage = init_storage
        self.engine = engine

    def _use_fused(self, device: torch.device) -> bool:
        if self.engine == "reference":
            return False
        if self.engine == "fused":
            if device.type != "cpu":
                raise ValueError(f"the fused HBV kernel runs on CPU tensors, got {device}")
            load_kernel()  # raises KernelUnavailable with the reason
            return True
        return fused_available(device)

    @property
    def parameter_specs(self):
        """ParamSpecs this backbone reads, in learner-output order."""
        return (*HBV_PARAMETERS, GAMMA) if self.use_gamma else HBV_PARAMETERS

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.parameter_specs)

    name = "hbv"
    output_names = OUTPUT_NAMES
    output_units = OUTPUT_UNITS
    forcing_names = FORCING_NAMES
    forcing_units = {"P": "mm d-1", "T": "degC", "PET": "mm d-1"}
    state_names = HBV_STATES
    site_property_names: tuple[str, ...] = ()
    #: physical per-site dataset variables the model reads: none
    site_inputs: tuple[str, ...] = ()

    def site_properties(self, site_static=None) -> None:
        """The HBV has no per-site properties (the backbone contract): None."""
        return None
    output_specs = tuple(
        OutputSpec(n, OUTPUT_UNITS[n], STATE_DESCRIPTIONS.get(n) or FLUX_DESCRIPTIONS.get(n, n),
                   "state" if n in HBV_STATES else "flux")
        for n in OUTPUT_NAMES)

    def initial_state(self, nbasin: int, dtype=torch.float32, device=None, *,
                      site: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """All storages at ``init_storage`` mm, each [site, nmul]."""
        return {
            s: torch.full((nbasin, self.nmul), self.init_storage, dtype=dtype, device=device)
            for s in HBV_STATES
        }

    def forward(
        self,
        forcing: torch.Tensor,
        params: Mapping[str, torch.Tensor],
        state: Mapping[str, torch.Tensor] | None = None,
        return_components: bool = False,
        *,
        site: Mapping[str, torch.Tensor] | None = None,
    ) -> HBVResult:
        """Run the HBV over a window.

        Args:
            forcing: [time, site, 3]: P (mm/d), T (°C), PET (mm/d).
            params: name -> [1 or time, basin, nmul], physical units (see spec).
            state: name -> [site, nmul] (mm); default: ``initial_state``.
            return_components: also return per-component series [time, site, nmul].
            site: per-site properties (backbone contract); the HBV needs none and ignores it.

        Returns:
            HBVResult with component-averaged outputs [time, site].

        Raises:
            ValueError / KeyError: wrong shapes or missing parameters (message names them).
        """
        check_params(self, forcing, params)
        nb = forcing.shape[1]
        if state is None:
            state = self.initial_state(nb, forcing.dtype, forcing.device)
        if self._use_fused(forcing.device):
            return self._forward_fused(forcing, params, state, return_components)
        def day(f, st, p_t):
            st, fl = hbv_step(*f, st, p_t, self.recharge_net, self.sm_floor)
            return st, (*st, *fl)

        outputs, comps, st = run_days(day, forcing, params, self.parameter_names,
                                      tuple(state[s] for s in HBV_STATES), OUTPUT_NAMES,
                                      return_components)
        return HBVResult(outputs=outputs, final_state=dict(zip(HBV_STATES, st)), components=comps)

    def _forward_fused(self, forcing, params, state, return_components) -> HBVResult:
        state0 = torch.stack([state[s].to(forcing.dtype) for s in HBV_STATES])
        plist = [params[n] for n in self.parameter_names]
        net = self.recharge_net
        series, final = FusedHBVFunction.apply(forcing, state0, not return_components, self.sm_floor,
                                               net.hidden if net is not None else 0,
                                               net.flat_weights() if net is not None else None, *plist)
        named = {n: series[i].movedim(-1, 0) for i, n in enumerate(OUTPUT_NAMES)}
        if return_components:
            comps, outputs = named, {n: v.mean(-1) for n, v in named.items()}
        else:
            comps, outputs = None, named
        return HBVResult(outputs=outputs, final_state=dict(zip(HBV_STATES, final.unbind(0))),
                         components=comps)
