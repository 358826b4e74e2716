"""Differentiable VIC-type land-surface model (daily, PyTorch autograd), for SMAP soil moisture.

The process model under the ParaFormer learners of Li & Lu (2023, *Remote Sensing* 15, 3536),
written from ``../shared/docs/paraformer_vic.md`` section 3, which distils VIC-2L (Liang et al.
1994, JGR 99(D7), 14415) and the VIC documentation (UW-Hydro/VIC ``SoilParam.md``,
``runoff.c``, ``arno_evap.c``). No VIC build is used: this module is the model.

States (mm): SNOWPACK, MELTWATER (degree-day snow, ``core.physics.snow``), W1, W2, W3 (three
soil layers of depths 0.1, 0.4 and 1.0 m). Learnable parameters θ (``VIC_PARAMETERS``): the
variable-infiltration shape ``infiltr`` (b), ARNO baseflow ``Ds``, ``Dsmax``, ``Ws`` and the
drainage exponent ``expt``. Soil hydraulics and vegetation cover are fixed per cell from the
data's statics (``soil_properties``). Each day, in order:

1. snow: liquid input Pw = rain + release of the snowpack (fixed ``SNOW_DEFAULTS``);
2. ET: bare-soil evaporation Es = (1 − fv)·PET·β_ARNO(W1, b) from layer 1 (VIC ``arno_evap.c``:
   x = 1 − W1/W1max, r = x^(1/(1+b)), As = 1 − r^b, β = As + (1 − As)(1 − r)(1 + Σₙ₌₁³⁰ b rⁿ/(b + n)))
   capped by W1; transpiration Et = fv·PET·Σₗ rootₗ·clip((Wₗ − Wwpₗ)/(Wcrₗ − Wwpₗ), 0, 1), each
   layer's share capped by its water above the wilting point;
3. variable infiltration curve on layers 1+2 (W = W1 + W2, Wm = W1max + W2max, im = (1 + b)·Wm,
   i0 = im·[1 − (1 − W/Wm)^(1/(1+b))]): surface runoff R = Pw − (Wm − W) if i0 + Pw ≥ im, else
   R = Pw − (Wm − W) + Wm·(1 − (i0 + Pw)/im)^(1+b); R clipped to [0, Pw]; the infiltration
   Pw − R fills W1, the overflow goes to W2;
4. drainage and ARNO baseflow in ``SUBSTEPS`` sub-steps of dt = 1/SUBSTEPS d, bottom layer first:
   with s = W3/W3max, Qb = dt·[Dsmax·Ds/Ws·s + 1(s > Ws)·Dsmax·(1 − Ds/Ws)·((s − Ws)/(1 − Ws))²]
   (≥ 0, ≤ W3); then Q23 and Q12: the gravity drainage dWₗ/dt = −Ksat·(Wₗ/Wmaxₗ)^expt of the doc
   integrated exactly over the sub-step (``gravity_drainage``; the doc's explicit
   Qₗ = Ksat·dt·(Wₗ/Wmaxₗ)^expt overshoots and emptied W1 after wet days, see docs/models.md),
   each limited by the receiver's room. Because every transfer is limited by the receiver's room, no
   layer ever exceeds its capacity and the "excess cascades upward" rule of the doc never fires.

Mass balance per cell and day, to round-off: P = ET + R + Qb + Δ(SNOWPACK + MELTWATER + W1 + W2 + W3),
and 0 ≤ Wₗ ≤ Wmaxₗ. Power-law bases are clamped to [1e-6, 1 − 1e-6] (the doc) so gradients stay
finite at empty and full layers; this changes no water amount.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Mapping

import torch

from .backbone import BackboneResult, OutputSpec, check_params, run_days
from .fused import KernelUnavailable, load_library
from .snow import degree_day_snow
from .spec import ParamSpec

#: Learnable parameters (Li & Lu 2023, Table 1, with the valid VIC ranges of the doc, section 3:
#: the paper's Ds [0, 7.6] and expt [0, 4.6] are not valid VIC values). Order = learner outputs.
VIC_PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("infiltr", 0.001, 1.0, "1", "variable infiltration curve shape b"),
    ParamSpec("Ds", 0.001, 1.0, "1", "fraction of Dsmax where non-linear baseflow begins"),
    ParamSpec("Dsmax", 0.1, 30.0, "mm d-1", "maximum baseflow velocity"),
    ParamSpec("Ws", 0.1, 0.99, "1", "fraction of the bottom layer's capacity where non-linear baseflow begins"),
    ParamSpec("expt", 4.0, 25.0, "1", "exponent of the Brooks-Corey drainage (unsaturated conductivity)"),
)

#: Uncalibrated ("default") θ: the typical values of the VIC documentation and Liang et al.
#: (1994) used before calibration: b = 0.2 (NLDAS-2's VIC b spans 0-0.4), Ds = 0.001,
#: Dsmax = 10 mm d-1, Ws = 0.9, expt = 10 (≈ 3 + 2/λ for a loam's Brooks-Corey λ ≈ 0.29).
#: The reference run of the benchmark's ET comparison (Li & Lu 2023, Table 3's "VIC with default
#: parameters", whose NLDAS-2 parameter maps are not in the data here) [default].
VIC_DEFAULT_PARAMETERS: dict[str, float] = {"infiltr": 0.2, "Ds": 0.001, "Dsmax": 10.0, "Ws": 0.9, "expt": 10.0}

#: Soil layer depths (m), root fractions per layer, and the constants of the soil statics.
LAYER_DEPTHS = (0.1, 0.4, 1.0)
ROOT_FRACTIONS = (0.2, 0.5, 0.3)
PARTICLE_DENSITY = 2.685          # g cm-3 (φ = 1 − bulk / 2.685)
PSI_WILTING_MM = -150_000.0       # ψ at the wilting point (−150 m)
PSI_FIELD_MM = -3_400.0           # ψ at field capacity (−3.4 m); Wcr = 0.7·θ(ψ_fc)
CRITICAL_FRACTION = 0.7

#: Fixed degree-day snow parameters (TT °C, CFMAX mm °C-1 d-1, CFR, CWH): the doc's "as in the
#: project's HBV snow routine" with mid-range HBV values [default].
SNOW_DEFAULTS = {"TT": 0.0, "CFMAX": 3.0, "CFR": 0.05, "CWH": 0.1}

#: Sub-steps per day of the drainage/baseflow routine (doc section 3, step 5) [default].
SUBSTEPS = 4

#: Terms of the ARNO bare-soil evaporation series (VIC arno_evap.c uses 30).
ARNO_TERMS = 30

_EPS = 1e-6

VIC_STATES: tuple[str, ...] = ("SNOWPACK", "MELTWATER", "W1", "W2", "W3")

VIC_OUTPUTS: tuple[OutputSpec, ...] = (
    OutputSpec("SM", "m3 m-3", "surface (layer 1, 0-10 cm) volumetric soil moisture", "state"),
    OutputSpec("SWE", "mm", "snow water equivalent (SNOWPACK + MELTWATER)", "state"),
    OutputSpec("W1", "mm", "water in soil layer 1 (0-0.1 m)", "state"),
    OutputSpec("W2", "mm", "water in soil layer 2 (0.1-0.5 m)", "state"),
    OutputSpec("W3", "mm", "water in soil layer 3 (0.5-1.5 m)", "state"),
    OutputSpec("PW", "mm d-1", "liquid water input to the soil (rain + snowpack release)"),
    OutputSpec("ET", "mm d-1", "actual evapotranspiration (Es + Et)"),
    OutputSpec("Es", "mm d-1", "bare-soil evaporation (ARNO)"),
    OutputSpec("Et", "mm d-1", "transpiration"),
    OutputSpec("R", "mm d-1", "surface runoff (variable infiltration curve)"),
    OutputSpec("Qb", "mm d-1", "baseflow (ARNO)"),
    OutputSpec("Q", "mm d-1", "total runoff R + Qb"),
    OutputSpec("Q12", "mm d-1", "drainage from layer 1 to layer 2"),
    OutputSpec("Q23", "mm d-1", "drainage from layer 2 to layer 3"),
)
VIC_OUTPUT_NAMES = tuple(o.name for o in VIC_OUTPUTS)

#: Per-site properties ``VIC.forward`` needs (``site``), from ``soil_properties``.
SITE_PROPERTIES = ("Wmax", "Wcr", "Wwp", "Ksat", "fv")

#: How a run of this backbone is displayed (the contract of ``core.physics.spec.HBV_PANELS``).
VIC_PANELS: tuple[dict, ...] = (
    {"title": "Forcing: precipitation P (bars) and air temperature T (right axis)",
     "variables": ["P", "T"], "style": "bars", "right": ["T"]},
    {"title": "Surface soil moisture: SMAP (dots: days with a retrieval) vs simulated",
     "variables": ["SM_obs", "SM"], "style": "lines", "markers": ["SM_obs"]},
    {"title": "Runoff: surface R and baseflow Qb", "variables": ["R", "Qb"], "style": "stacked"},
    {"title": "Storages: snow SWE and soil layers W1, W2, W3", "variables": ["SWE", "W1", "W2", "W3"],
     "style": "lines"},
    {"title": "Evapotranspiration: ET (Es + Et) vs PET", "variables": ["PET", "ET", "Es", "Et"],
     "style": "lines"},
)


def soil_properties(bulk: torch.Tensor, clay: torch.Tensor, sand: torch.Tensor,
                    ndvi: torch.Tensor) -> dict[str, torch.Tensor]:
    """Fixed per-cell soil hydraulics and vegetation cover from the SMAP file's statics.

    Args:
        bulk: soil bulk density [site] (g cm-3).
        clay, sand: clay and sand fractions [site] (%).
        ndvi: long-term mean NDVI [site] (-).

    Returns:
        ``SITE_PROPERTIES``: Wmax, Wcr, Wwp [site, 3] (mm: capacity, critical point, wilting
        point of each layer), Ksat [site] (mm/d), fv [site] (vegetation fraction, -).

    Raises:
        ValueError: a property is NaN (names it and the site indices) or the porosity falls
            outside (0, 1), i.e. bulk density not in g cm-3 (names the site indices).

    Equations (doc section 3; Clapp & Hornberger 1978 with Cosby et al. 1984):
        φ = 1 − bulk/2.685; Wmaxₗ = 1000·φ·dₗ; B = 2.91 + 0.159·clay;
        Ksat = 86400·0.0070556·10^(−0.884 + 0.0153·sand) mm/d; ψsat = −10·10^(1.88 − 0.0131·sand) mm;
        θ(ψ) = φ·(ψ/ψsat)^(−1/B); Wwpₗ = 1000·dₗ·θ(−150 m); Wcrₗ = 1000·dₗ·0.7·θ(−3.4 m);
        fv = clip((ndvi − 0.05)/0.6, 0, 1).
    """
    for name, v in (("bulk", bulk), ("clay", clay), ("sand", sand), ("ndvi", ndvi)):
        bad = torch.nonzero(~torch.isfinite(v)).flatten().tolist()
        if bad:
            raise ValueError(f"soil_properties: {name} is not finite at site index {bad[:10]}")
    phi = 1.0 - bulk / PARTICLE_DENSITY
    bad = torch.nonzero((phi <= 0) | (phi >= 1)).flatten().tolist()
    if bad:
        raise ValueError(f"soil_properties: porosity 1 − bulk/2.685 outside (0, 1) at site index "
                         f"{bad[:10]}; bulk density must be in g cm-3 (0 < bulk < 2.685)")
    depth = torch.tensor(LAYER_DEPTHS, dtype=bulk.dtype, device=bulk.device)
    b_ch = 2.91 + 0.159 * clay
    ksat = 86400.0 * 0.0070556 * 10.0 ** (-0.884 + 0.0153 * sand)
    psi_sat = -10.0 * 10.0 ** (1.88 - 0.0131 * sand)

    def theta(psi):
        return phi * (psi / psi_sat) ** (-1.0 / b_ch)

    wmax = 1000.0 * phi[:, None] * depth
    wwp = 1000.0 * depth * theta(PSI_WILTING_MM)[:, None]
    wcr = 1000.0 * depth * CRITICAL_FRACTION * theta(PSI_FIELD_MM)[:, None]
    wcr = torch.maximum(wcr, wwp + 1e-3)  # keep the transpiration ramp well defined (never binds here)
    fv = torch.clamp((ndvi - 0.05) / 0.6, 0.0, 1.0)
    return {"Wmax": wmax, "Wcr": wcr, "Wwp": wwp, "Ksat": ksat, "fv": fv}


def cycle_spinup(a, days: int):
    """Prepend the first ``days`` entries of ``a`` (numpy array or tensor, time first) to it: the
    spin-up by cycling the first year (``../shared/docs/paraformer_vic.md`` section 2).

    Raises:
        ValueError: ``a`` has fewer than ``days`` entries.
    """
    if a.shape[0] < days:
        raise ValueError(f"{a.shape[0]} days, fewer than the {days} spin-up days to cycle")
    if isinstance(a, torch.Tensor):
        return torch.cat([a[:days], a], 0)
    import numpy as np

    return np.concatenate([a[:days], a], 0)


def arno_beta(w1: torch.Tensor, w1max: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """ARNO bare-soil evaporation efficiency β ∈ [0, 1] of the top layer (VIC ``arno_evap.c``).

    Args: w1 (mm), w1max (mm), b (the infiltration shape), broadcastable to one shape.
    Returns: β: evaporation = β·PET over the bare fraction.
    """
    x = torch.clamp(1.0 - w1 / w1max, _EPS, 1.0 - _EPS)   # unsaturated fraction of capacity
    r = x ** (1.0 / (1.0 + b))                             # 1 − i0/im
    a_s = 1.0 - r ** b                                     # saturated area fraction As
    n = torch.arange(1, ARNO_TERMS + 1, dtype=w1.dtype, device=w1.device)
    series = 1.0 + (b.unsqueeze(-1) * r.unsqueeze(-1) ** n / (b.unsqueeze(-1) + n)).sum(-1)
    return a_s + (1.0 - a_s) * (1.0 - r) * series


def vic_runoff(pw: torch.Tensor, w: torch.Tensor, wm: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Surface runoff of the variable infiltration curve (Liang et al. 1994, eq. 4-6; the doc's
    step 4) over the layers it covers (here 1 + 2).

    Args: pw: liquid input (mm/d); w: water in the layers (mm); wm: their capacity (mm);
        b: the shape ``infiltr``. Broadcastable tensors.
    Returns: R (mm/d) in [0, pw]; the infiltration pw − R never exceeds the room wm − w.
    """
    im = (1.0 + b) * wm
    deficit = wm - w
    i0 = im * (1.0 - torch.clamp(1.0 - w / wm, _EPS, 1.0 - _EPS) ** (1.0 / (1.0 + b)))
    saturated = (i0 + pw) >= im
    rest = torch.clamp(1.0 - (i0 + pw) / im, _EPS, 1.0 - _EPS) ** (1.0 + b)
    runoff = torch.where(saturated, pw - deficit, pw - deficit + wm * rest)
    return torch.minimum(torch.clamp(runoff, min=0.0), pw)


def arno_baseflow(w3: torch.Tensor, w3max: torch.Tensor, ds: torch.Tensor, dsmax: torch.Tensor,
                  ws: torch.Tensor, dt: float, wres=0.0) -> torch.Tensor:
    """ARNO baseflow of the bottom layer over ``dt`` days (VIC ``runoff.c``; the doc's step 5).

    Qb = dt·[Dsmax·Ds/Ws·s + 1(s > Ws)·Dsmax·(1 − Ds/Ws)·((s − Ws)/(1 − Ws))²] with the relative
    moisture above the residual s = (W3 − Wres)/(W3max − Wres) (VIC 5 ``runoff.c``), then limited
    to [0, W3 − Wres]. Units: w3, w3max, wres mm; dsmax mm/d; result mm per ``dt``.
    """
    s = torch.clamp((w3 - wres) / (w3max - wres), 0.0, 1.0)
    excess = torch.clamp((s - ws) / (1.0 - ws), min=0.0)
    q = dt * (dsmax * ds / ws * s + dsmax * (1.0 - ds / ws) * excess * excess)
    return torch.minimum(torch.clamp(q, min=0.0), torch.clamp(w3 - wres, min=0.0))


def gravity_drainage(w: torch.Tensor, wmax: torch.Tensor, ksat: torch.Tensor, expt: torch.Tensor,
                     dt: float, wres=0.0) -> torch.Tensor:
    """Water a layer drains by gravity over ``dt`` days: the exact solution of
    dW/dt = −Ksat·(W/Wmax)^expt (the doc's step 5 drainage, Brooks-Corey conductivity; VIC
    ``runoff.c`` integrates the same law in hourly sub-steps) from W(0) = w, with no inflow.

    With s = W/Wmax and c = expt > 1: s(dt)^(1−c) = s0^(1−c) + (c − 1)·Ksat·dt/Wmax, so the drained
    water is w·(1 − r) with r = s(dt)/s0 = (1 + (c − 1)·Ksat·dt/Wmax·s0^(c−1))^(−1/(c−1)), computed
    as r = exp(−softplus(x)/(c − 1)), x = ln((c − 1)·Ksat·dt/Wmax) + (c − 1)·ln s0, which neither
    overflows nor loses the small drainage of a dry layer (≈ Ksat·dt·s0^c, the explicit step's).
    s0 is clamped to [1e-6, 1 − 1e-6] like every power base of the model. With a residual water
    ``wres`` (VIC's ``resid_moist``), only the water above it drains: w and wmax become
    w − wres (≥ 0) and wmax − wres (VIC 5 ``runoff.c``).

    Args: w, wmax, wres (mm), ksat (mm/d), expt (-, > 1): broadcastable tensors; dt (d).
    Returns: the drained water (mm per ``dt``), in [0, w − wres): never more than the layer
    holds above its residual.
    """
    w, wmax = torch.clamp(w - wres, min=0.0), wmax - wres
    c1 = expt - 1.0
    s0 = torch.clamp(w / wmax, _EPS, 1.0 - _EPS)
    x = torch.log(c1 * ksat * dt / wmax) + c1 * torch.log(s0)
    log_r = -torch.logaddexp(x, torch.zeros_like(x)) / c1
    return -w * torch.expm1(log_r)


def residual_water(resid_moist: float) -> tuple[float, float, float]:
    """The residual water of each layer (mm): 1000·dₗ·``resid_moist`` (m³/m³, one value for
    every layer, like VIC 4's ``RESID_MOIST``, which is 0)."""
    return tuple(1000.0 * d * float(resid_moist) for d in LAYER_DEPTHS)


def vic_step(P, T, PET, state, p, site):
    """One day of the VIC-type model for all sites and components.

    Args:
        P (mm/d), T (°C), PET (mm/d): [site, 1].
        state: (SNOWPACK, MELTWATER, W1, W2, W3), each [site, nmul] (mm).
        p: ``VIC_PARAMETERS`` in physical units, each [site, nmul].
        site: ``SITE_PROPERTIES`` broadcast for the step: Wmax, Wcr, Wwp as 3-tuples of
            [site, 1] tensors (one per layer), Ksat and fv [site, 1]; Wres: the residual water
            of each layer (mm; ``VIC.resid_moist``), a 3-tuple of [site, 1] tensors.

    Returns:
        (new_state, outputs): new_state as ``state``; outputs name -> [site, nmul] for
        ``VIC_OUTPUT_NAMES`` (mm, mm/d, m3 m-3).
    """
    snowpack, meltwater, w1, w2, w3 = state
    b, ds, dsmax, ws, expt = p["infiltr"], p["Ds"], p["Dsmax"], p["Ws"], p["expt"]
    wmax, wcr, wwp, wres = site["Wmax"], site["Wcr"], site["Wwp"], site["Wres"]
    ksat, fv = site["Ksat"], site["fv"]
    w1max, w2max, w3max = wmax

    # 1. snow
    snowpack, meltwater, rain, _snow, _melt, _refreeze, tosoil = degree_day_snow(
        P, T, snowpack, meltwater, SNOW_DEFAULTS["TT"], SNOW_DEFAULTS["CFMAX"],
        SNOW_DEFAULTS["CFR"], SNOW_DEFAULTS["CWH"])
    pw = rain + tosoil

    # 2. evapotranspiration: bare soil from layer 1, transpiration by root fraction
    # bare soil dries layer 1 down to its residual water (VIC ``arno_evap.c``)
    es = torch.minimum((1.0 - fv) * PET * arno_beta(w1, w1max, b), torch.clamp(w1 - wres[0], min=0.0))
    w1 = w1 - es
    layers = [w1, w2, w3]
    et_parts = []
    for k in range(3):
        stress = torch.clamp((layers[k] - wwp[k]) / (wcr[k] - wwp[k]), 0.0, 1.0)
        avail = torch.clamp(layers[k] - torch.maximum(wwp[k], wres[k]), min=0.0)
        et_k = torch.minimum(fv * PET * ROOT_FRACTIONS[k] * stress, avail)
        layers[k] = layers[k] - et_k
        et_parts.append(et_k)
    w1, w2, w3 = layers
    et_t = et_parts[0] + et_parts[1] + et_parts[2]

    # 3. variable infiltration curve over layers 1 + 2
    runoff = vic_runoff(pw, w1 + w2, w1max + w2max, b)
    infil = pw - runoff
    fill1 = torch.minimum(infil, w1max - w1)
    w1 = w1 + fill1
    w2 = w2 + (infil - fill1)

    # 4. drainage and ARNO baseflow, bottom layer first, in sub-steps
    dt = 1.0 / SUBSTEPS
    qb = q12 = q23 = torch.zeros_like(w1)
    for _ in range(SUBSTEPS):
        qb_k = arno_baseflow(w3, w3max, ds, dsmax, ws, dt, wres[2])
        w3 = w3 - qb_k
        d23 = torch.minimum(gravity_drainage(w2, w2max, ksat, expt, dt, wres[1]), w3max - w3)
        w2 = w2 - d23
        w3 = w3 + d23
        d12 = torch.minimum(gravity_drainage(w1, w1max, ksat, expt, dt, wres[0]), w2max - w2)
        w1 = w1 - d12
        w2 = w2 + d12
        qb, q12, q23 = qb + qb_k, q12 + d12, q23 + d23

    sm = w1 / (1000.0 * LAYER_DEPTHS[0])
    out = {"SM": sm, "SWE": snowpack + meltwater, "W1": w1, "W2": w2, "W3": w3, "PW": pw,
           "ET": es + et_t, "Es": es, "Et": et_t, "R": runoff, "Qb": qb, "Q": runoff + qb,
           "Q12": q12, "Q23": q23}
    return (snowpack, meltwater, w1, w2, w3), out


def _declare_kernel(lib) -> None:
    """Argument types of ``kernels/vic_kernel.cpp``'s entry points; its parameter and output
    orders checked against this module's.

    Raises:
        KernelUnavailable: the orders differ.
    """
    i64, vp = ctypes.c_int64, ctypes.c_void_p
    for suffix in ("f32", "f64"):
        fn = getattr(lib, f"vic_forward_{suffix}")
        fn.argtypes = [i64, i64, i64, vp, vp, vp, vp, vp, vp, vp, vp, vp, vp]
        fn.restype = None
    lib.vic_output_names.restype = ctypes.c_char_p
    lib.vic_param_names.restype = ctypes.c_char_p
    if (lib.vic_output_names().decode() != ",".join(VIC_OUTPUT_NAMES)
            or lib.vic_param_names().decode() != ",".join(s.name for s in VIC_PARAMETERS)):
        raise KernelUnavailable(
            f"vic_kernel.cpp's order differs from core.physics.vic: kernel parameters "
            f"{lib.vic_param_names().decode()}, outputs {lib.vic_output_names().decode()}; "
            f"expected {','.join(s.name for s in VIC_PARAMETERS)} and {','.join(VIC_OUTPUT_NAMES)}")


def load_fused_forward():
    """The fused forward kernel (``kernels/vic_kernel.cpp``), built once and cached like the
    HBV's (``core.physics.fused.load_library``).

    Raises:
        KernelUnavailable: no C++ compiler, the build failed, or the kernel's parameter/output
            order differs from ``VIC_PARAMETERS`` / ``VIC_OUTPUT_NAMES``.
    """
    return load_library(Path(__file__).with_name("kernels") / "vic_kernel.cpp", "vic", _declare_kernel)


def fused_forward(forcing: torch.Tensor, params: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor],
                  site: Mapping[str, torch.Tensor], nmul: int, resid_moist: float = 0.0) -> BackboneResult:
    """The whole loop in the C++ kernel, without gradient (CPU tensors; static parameters
    ``[1, site, nmul]``). Same model and outputs as ``VIC.forward`` with the reference loop;
    ``resid_moist`` (m³/m³) as ``VIC.resid_moist``."""
    import ctypes

    dt = forcing.dtype
    lib = load_fused_forward()
    fn = lib.vic_forward_f64 if dt == torch.float64 else lib.vic_forward_f32
    nt, ns = forcing.shape[:2]
    c = lambda t: t.detach().to(dtype=dt).contiguous()  # noqa: E731
    f = c(forcing)
    pr = c(torch.stack([params[s.name][0] for s in VIC_PARAMETERS]))          # [5, site, nmul]
    wmax, wcr, wwp = c(site["Wmax"]), c(site["Wcr"]), c(site["Wwp"])
    ksat, fv = c(site["Ksat"]), c(site["fv"])
    st = torch.stack([state[n].detach().to(dt) for n in VIC_STATES]).contiguous().clone()
    consts = torch.tensor([SNOW_DEFAULTS["TT"], SNOW_DEFAULTS["CFMAX"], SNOW_DEFAULTS["CFR"],
                           SNOW_DEFAULTS["CWH"], *ROOT_FRACTIONS, LAYER_DEPTHS[0], SUBSTEPS, ARNO_TERMS,
                           *residual_water(resid_moist)],
                          dtype=torch.float64)
    out = torch.empty(len(VIC_OUTPUT_NAMES), nt, ns, dtype=dt)
    ptr = lambda t: ctypes.c_void_p(t.data_ptr())  # noqa: E731
    fn(nt, ns, nmul, ptr(f), ptr(pr), ptr(wmax), ptr(wcr), ptr(wwp), ptr(ksat), ptr(fv), ptr(consts),
       ptr(st), ptr(out))
    return BackboneResult(outputs={n: out[i] for i, n in enumerate(VIC_OUTPUT_NAMES)},
                          final_state=dict(zip(VIC_STATES, st.unbind(0))))


_COMPILED: dict[str, object] = {}
_COMPILE_FAILED: dict[str, str] = {}


def compiled_step():
    """``vic_step`` compiled by ``torch.compile`` (TorchInductor: one fused C++/OpenMP kernel per
    day for the forward and one for the backward), or None when compiling failed on this
    machine (the reason is in ``compile_failure()``). Compiled once per process; Inductor's disk
    cache makes later processes start in seconds. Shapes that change (another number of sites)
    trigger one recompilation with dynamic shapes."""
    if "step" in _COMPILE_FAILED:
        return None
    fn = _COMPILED.get("step")
    if fn is None:
        fn = _COMPILED["step"] = torch.compile(vic_step, fullgraph=True)
    return fn


def compile_failure() -> str | None:
    """Why ``compiled_step`` is unavailable in this process, or None."""
    return _COMPILE_FAILED.get("step")


class VIC(torch.nn.Module):
    """The VIC-type backbone: a daily loop over ``vic_step`` under autograd.

    Args:
        nmul: parallel parameter sets per site, averaged (1 in Li & Lu 2023).
        init_fraction: initial soil water as a fraction of each layer's capacity (no snow).
        resid_moist: residual moisture of every layer (m³/m³; VIC's ``resid_moist``, a constant
            0 in VIC 4): bare-soil evaporation, transpiration, drainage and baseflow leave
            1000·dₗ·resid_moist mm in layer l. 0 [default]: the layers can dry to 0.
        engine: ``"reference"`` (the eager loop), ``"compiled"`` (``vic_step`` through
            ``torch.compile``: the same equations, ~5x faster forward+backward on CPU, see
            docs/performance.md; raises when it cannot compile), ``"fused"`` (the C++ forward of
            ``kernels/vic_kernel.cpp``: no gradient, CPU, static parameters; raises otherwise)
            or ``"auto"``: fused when no gradient is needed on CPU with static parameters, else
            compiled, falling back to the reference with a warning when compiling fails.

    Contract (``core.physics.backbone``): ``forward(forcing [time, site, 3] = (P mm/d, T °C,
    PET mm/d), params name -> [1 or time, site, nmul], state=None, *, site=soil_properties(...))``
    -> ``BackboneResult`` with outputs [time, site] named ``VIC_OUTPUT_NAMES``.
    """

    name = "vic"
    forcing_names = ("P", "T", "PET")
    forcing_units = {"P": "mm d-1", "T": "degC", "PET": "mm d-1"}
    parameter_specs = VIC_PARAMETERS
    #: uncalibrated θ (``VIC_DEFAULT_PARAMETERS``), physical units
    default_parameters = VIC_DEFAULT_PARAMETERS
    site_property_names = SITE_PROPERTIES
    #: physical per-site dataset variables ``site_properties`` reads, in order (SMAP statics)
    site_inputs = ("bulk", "clay", "sand", "ndvi")
    output_specs = VIC_OUTPUTS
    output_names = VIC_OUTPUT_NAMES
    state_names = VIC_STATES
    panels = VIC_PANELS

    ENGINES = ("auto", "compiled", "fused", "reference")

    def __init__(self, nmul: int = 1, init_fraction: float = 0.5, engine: str = "reference",
                 resid_moist: float = 0.0):
        super().__init__()
        if not 0.0 <= resid_moist < 0.2:
            raise ValueError(f"resid_moist must be in [0, 0.2) m3/m3, got {resid_moist}")
        self.resid_moist = float(resid_moist)
        if nmul < 1:
            raise ValueError(f"nmul must be ≥ 1, got {nmul}")
        if not 0.0 <= init_fraction <= 1.0:
            raise ValueError(f"init_fraction must be in [0, 1], got {init_fraction}")
        if engine not in self.ENGINES:
            raise ValueError(f"engine must be one of {self.ENGINES}, got {engine!r}")
        self.nmul = nmul
        self.init_fraction = init_fraction
        self.engine = engine

    def _fused_ok(self, forcing, params, state, return_components) -> bool:
        """Whether this call runs the fused forward kernel (see ``engine``)."""
        if self.engine not in ("fused", "auto"):
            return False
        grad = torch.is_grad_enabled() and (
            forcing.requires_grad or any(v.requires_grad for v in params.values())
            or any(v.requires_grad for v in state.values()))
        why = ("gradients are needed" if grad else "the tensors are not on the CPU" if forcing.device.type != "cpu"
               else "a parameter is dynamic" if any(v.shape[0] != 1 for v in params.values())
               else "per-component outputs were asked for" if return_components else None)
        if self.engine == "fused" and why:
            raise ValueError(f"vic: engine 'fused' runs forward only on CPU with static parameters; {why}")
        if why:
            return False
        try:
            load_fused_forward()
        except KernelUnavailable:
            if self.engine == "fused":
                raise
            return False
        return True

    def _step_fn(self):
        if self.engine in ("reference", "fused"):
            return vic_step
        fn = compiled_step()
        if fn is None:
            if self.engine == "compiled":
                raise RuntimeError(f"vic: torch.compile is unavailable here: {compile_failure()}")
            return vic_step
        return fn

    def _run_step(self, fn, *args):
        if fn is vic_step:
            return fn(*args)
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - any compiler failure: fall back, say why
            if self.engine == "compiled" or "step" in _COMPILE_FAILED:
                raise
            import warnings

            _COMPILE_FAILED["step"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            warnings.warn(f"vic: torch.compile failed ({_COMPILE_FAILED['step']}); running the "
                          "reference loop", RuntimeWarning, stacklevel=3)
            return vic_step(*args)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in VIC_PARAMETERS)

    def site_properties(self, site_static: torch.Tensor) -> dict[str, torch.Tensor]:
        """``soil_properties`` of ``site_static [site, 4]`` (``site_inputs`` order: bulk g cm-3,
        clay %, sand %, ndvi -).

        Raises:
            ValueError: not 4 columns, or as ``soil_properties``.
        """
        if site_static is None or site_static.shape[-1] != len(self.site_inputs):
            raise ValueError(f"vic: site_static must be [site, {len(self.site_inputs)}] "
                             f"({', '.join(self.site_inputs)}); got "
                             f"{None if site_static is None else tuple(site_static.shape)}")
        return soil_properties(*site_static.unbind(-1))

    def initial_state(self, nsite: int, dtype=torch.float32, device=None, *,
                      site: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """No snow; each layer at ``init_fraction`` of its capacity (needs ``site["Wmax"]``;
        without it the layers start empty). Each [site, nmul] (mm)."""
        zeros = torch.zeros(nsite, self.nmul, dtype=dtype, device=device)
        out = {"SNOWPACK": zeros, "MELTWATER": zeros.clone()}
        for k in range(3):
            if site is None:
                out[f"W{k + 1}"] = zeros.clone()
            else:
                wmax = site["Wmax"][:, k].to(dtype=dtype, device=device)
                out[f"W{k + 1}"] = (self.init_fraction * wmax)[:, None].expand(nsite, self.nmul).clone()
        return out

    def _site(self, site, nsite, dtype, device):
        if site is None:
            raise ValueError("vic: `site` properties are required (core.physics.vic.soil_properties)")
        missing = [n for n in SITE_PROPERTIES if n not in site]
        if missing:
            raise KeyError(f"vic: site properties missing: {missing}")
        for n in ("Wmax", "Wcr", "Wwp"):
            if tuple(site[n].shape) != (nsite, 3):
                raise ValueError(f"vic: site property {n} must be [{nsite}, 3], got {tuple(site[n].shape)}")
        for n in ("Ksat", "fv"):
            if tuple(site[n].shape) != (nsite,):
                raise ValueError(f"vic: site property {n} must be [{nsite}], got {tuple(site[n].shape)}")
        cast = {n: site[n].to(dtype=dtype, device=device) for n in SITE_PROPERTIES}
        return {
            "Wmax": tuple(cast["Wmax"][:, k:k + 1] for k in range(3)),
            "Wcr": tuple(cast["Wcr"][:, k:k + 1] for k in range(3)),
            "Wwp": tuple(cast["Wwp"][:, k:k + 1] for k in range(3)),
            "Ksat": cast["Ksat"][:, None],
            "fv": cast["fv"][:, None],
            "Wres": tuple(torch.full((nsite, 1), r, dtype=dtype, device=device)
                          for r in residual_water(self.resid_moist)),
        }

    def forward(self, forcing: torch.Tensor, params: Mapping[str, torch.Tensor],
                state: Mapping[str, torch.Tensor] | None = None, return_components: bool = False,
                *, site: Mapping[str, torch.Tensor] | None = None) -> BackboneResult:
        """Run the model over a window.

        Args:
            forcing: [time, site, 3]: P (mm/d), T (°C), PET (mm/d).
            params: ``VIC_PARAMETERS`` name -> [1 or time, site, nmul], physical units.
            state: ``VIC_STATES`` name -> [site, nmul] (mm); default ``initial_state``.
            return_components: also return the per-component series [time, site, nmul].
            site: ``soil_properties(...)`` of these sites.

        Returns:
            BackboneResult: outputs name -> [time, site] (component means), final_state.

        Raises:
            ValueError / KeyError: wrong shapes, missing parameters or site properties.
        """
        check_params(self, forcing, params)
        ns = forcing.shape[1]
        sp = self._site(site, ns, forcing.dtype, forcing.device)
        if state is None:
            state = self.initial_state(ns, forcing.dtype, forcing.device, site=site)
        missing = [n for n in VIC_STATES if n not in state]
        if missing:
            raise KeyError(f"vic: states missing: {missing}")
        for n in VIC_STATES:
            if tuple(state[n].shape) != (ns, self.nmul):
                raise ValueError(f"vic: state {n} must be [{ns}, {self.nmul}], got {tuple(state[n].shape)}")
        if self._fused_ok(forcing, params, state, return_components):
            return fused_forward(forcing, params, state, site, self.nmul, self.resid_moist)
        step = self._step_fn()
        first = True

        def day(f, st, p_t):
            nonlocal step, first
            if first and step is not vic_step:
                st, out = self._run_step(step, *f, st, p_t, sp)
                step = self._step_fn()  # the reference if compiling failed just now
            else:
                st, out = step(*f, st, p_t, sp)
            first = False
            return st, [out[n] for n in VIC_OUTPUT_NAMES]

        outputs, comps, st = run_days(day, forcing, params, self.parameter_names,
                                      tuple(state[n] for n in VIC_STATES), VIC_OUTPUT_NAMES,
                                      return_components)
        return BackboneResult(outputs=outputs, final_state=dict(zip(VIC_STATES, st)), components=comps)
