"""Degree-day snow routine shared by the process models (HBV; the VIC-type model).

Written once here so that no backbone carries its own copy (Feng et al. 2022, Table 1 /
Appendix A; Bergström 1976; Seibert & Vis 2012). The VIC-type model of Li & Lu (2023) uses it
with fixed parameters (``core.physics.vic.SNOW_DEFAULTS``), as ``../shared/docs/paraformer_vic.md``
section 3 prescribes.
"""

from __future__ import annotations

import torch


def degree_day_snow(P: torch.Tensor, T: torch.Tensor, snowpack: torch.Tensor,
                    meltwater: torch.Tensor, tt, cfmax, cfr, cwh):
    """One day of the degree-day snow routine.

    Args:
        P: precipitation (mm/d), T: mean air temperature (°C); each broadcastable to the
            storages, e.g. [site, 1].
        snowpack, meltwater: frozen and liquid water of the snowpack (mm), e.g. [site, nmul].
        tt (°C), cfmax (mm °C-1 d-1), cfr (1), cwh (1): threshold temperature, degree-day
            factor, refreezing coefficient, water holding capacity; tensors broadcastable to the
            storages, or floats.

    Returns:
        (snowpack, meltwater, rain, snow, melt, refreeze, tosoil): new storages (mm) and the
        day's fluxes (mm/d). Mass: P + Δ(snowpack + meltwater) balance: P = rain + snow and
        Δ(snowpack + meltwater) = snow − tosoil; storages stay ≥ 0.

    Equations: RAIN = P·[T ≥ TT], SNOW = P·[T < TT]; MELT = min(CFMAX·max(T − TT, 0), SNOWPACK);
    REFREEZE = min(CFR·CFMAX·max(TT − T, 0), MELTWATER); TOSOIL = max(MELTWATER − CWH·SNOWPACK, 0).
    """
    is_rain = (T >= tt).to(P.dtype)
    rain = P * is_rain
    snow = P - rain
    snowpack = snowpack + snow
    melt = torch.minimum(torch.clamp(cfmax * (T - tt), min=0.0), snowpack)
    meltwater = meltwater + melt
    snowpack = snowpack - melt
    refreeze = torch.minimum(torch.clamp(cfr * cfmax * (tt - T), min=0.0), meltwater)
    snowpack = snowpack + refreeze
    meltwater = meltwater - refreeze
    tosoil = torch.clamp(meltwater - cwh * snowpack, min=0.0)
    meltwater = meltwater - tosoil
    return snowpack, meltwater, rain, snow, melt, refreeze, tosoil
