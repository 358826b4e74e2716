"""Declared parameter and state specifications of the process models.

One ``ParamSpec`` per parameter: name, physical bounds, units and whether the δ models may make it
time-varying. Learners produce raw values in [0, 1] (sigmoid); ``ParamSpec.scale`` alone maps them
to physical units. Every backbone implementation (the reference autograd HBV and any fused kernel)
reads these tables; no bounds are written anywhere else.

Sources: HBV bounds follow Feng et al. (2022, WRR, e2022WR032404) Table 1 / the MHPI dPL-HBV code
(Beck et al. 2016 ranges); the routing bounds are those of the gamma unit hydrograph of the same
code (shape θa, scale θb).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ParamSpec:
    """A model parameter.

    Attributes:
        name: the field's standard symbol (FC, BETA, K0, ...).
        lower, upper: physical bounds, in ``units``.
        units: UDUNITS-style unit string ("mm", "d-1", "degC", "mm degC-1 d-1", "1").
        description: one line, for docs and the explorer.
        dynamic_capable: the δ variants may predict it per day (Feng et al. 2022: BETA, GAMMA).
    """

    name: str
    lower: float
    upper: float
    units: str
    description: str
    dynamic_capable: bool = False

    def scale(self, raw01: torch.Tensor) -> torch.Tensor:
        """Map raw values in [0, 1] (any shape) to physical values in [lower, upper]."""
        return self.lower + raw01 * (self.upper - self.lower)

    def unscale(self, value: torch.Tensor) -> torch.Tensor:
        """Inverse of ``scale``."""
        return (value - self.lower) / (self.upper - self.lower)


# HBV (Feng et al. 2022, Table 1). Order matters: it is the order of the learner's outputs.
HBV_PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("BETA", 1.0, 6.0, "1", "shape of the soil-wetness (recharge) function", True),
    ParamSpec("FC", 50.0, 1000.0, "mm", "maximum soil moisture storage (field capacity)"),
    ParamSpec("K0", 0.05, 0.9, "d-1", "recession coefficient, upper zone above UZL (fast flow)"),
    ParamSpec("K1", 0.01, 0.5, "d-1", "recession coefficient, upper zone (interflow)"),
    ParamSpec("K2", 0.001, 0.2, "d-1", "recession coefficient, lower zone (baseflow)"),
    ParamSpec("LP", 0.2, 1.0, "1", "fraction of FC above which ET is at its potential rate"),
    ParamSpec("PERC", 0.0, 10.0, "mm d-1", "percolation from upper to lower zone"),
    ParamSpec("UZL", 0.0, 100.0, "mm", "threshold of the upper zone for fast flow Q0"),
    ParamSpec("TT", -2.5, 2.5, "degC", "threshold temperature of snowfall and melt"),
    ParamSpec("CFMAX", 0.5, 10.0, "mm degC-1 d-1", "degree-day melt factor"),
    ParamSpec("CFR", 0.0, 0.1, "1", "refreezing coefficient"),
    ParamSpec("CWH", 0.0, 0.2, "1", "water holding capacity of the snowpack"),
)

# ET-shape exponent γ of the δn(γᵗ) variants: η = min((SM / (LP·FC))^γ, 1). Without it γ = 1.
GAMMA = ParamSpec("GAMMA", 0.3, 5.0, "1", "shape exponent of the ET efficiency", True)

# Gamma unit hydrograph (Feng et al. 2022, eq. 3-4): one pair per basin.
ROUTING_PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("route_a", 0.0, 2.9, "1", "gamma UH shape θa (α = θa + 0.1)"),
    ParamSpec("route_b", 0.0, 6.5, "d", "gamma UH scale θb (θ = θb + 0.5 days)"),
)

ALL_PARAMETERS = {p.name: p for p in (*HBV_PARAMETERS, GAMMA, *ROUTING_PARAMETERS)}

# States of one HBV component, all in mm, never negative.
HBV_STATES: tuple[str, ...] = ("SNOWPACK", "MELTWATER", "SM", "SUZ", "SLZ")

STATE_DESCRIPTIONS = {
    "SNOWPACK": "frozen water in the snowpack (SWE, solid part)",
    "MELTWATER": "liquid water held in the snowpack",
    "SM": "soil moisture",
    "SUZ": "upper groundwater zone storage",
    "SLZ": "lower groundwater zone storage",
}

# Fluxes (mm/d) returned by the HBV, component-averaged.
HBV_FLUXES: tuple[str, ...] = (
    "RAIN", "SNOW", "MELT", "REFREEZE", "TOSOIL", "RECHARGE", "EXCESS", "ET", "PERC",
    "Q0", "Q1", "Q2", "Q_unrouted",
)

FLUX_DESCRIPTIONS = {
    "RAIN": "rainfall (P where T ≥ TT)",
    "SNOW": "snowfall (P where T < TT)",
    "MELT": "snowmelt",
    "REFREEZE": "refreezing of liquid water in the snowpack",
    "TOSOIL": "water released from the snowpack to the soil",
    "RECHARGE": "recharge from the soil to the upper zone (effective rainfall)",
    "EXCESS": "soil moisture above FC, passed to the upper zone",
    "ET": "actual evapotranspiration",
    "PERC": "percolation from the upper to the lower zone",
    "Q0": "fast flow from the upper zone above UZL",
    "Q1": "interflow from the upper zone",
    "Q2": "baseflow from the lower zone",
    "Q_unrouted": "Q0 + Q1 + Q2 before routing",
    "Q_sim": "simulated streamflow after gamma unit-hydrograph routing",
}

OUTPUT_UNITS = {**{s: "mm" for s in HBV_STATES}, **{f: "mm d-1" for f in HBV_FLUXES}, "Q_sim": "mm d-1"}

#: Series written beside the model outputs so a run can be displayed alone: the forcing the
#: model was fed, observed streamflow and derived storages (name -> (units, long_name)).
FORCING_OUTPUTS = {
    "P": ("mm d-1", "precipitation"),
    "T": ("degC", "mean air temperature"),
    "PET": ("mm d-1", "potential evapotranspiration"),
}
DERIVED_OUTPUTS = {
    "SWE": ("mm", "snow water equivalent (SNOWPACK + MELTWATER)"),
}

#: How a run of this backbone is displayed: linked time-series panels, in order. Each panel has
#: a title, the variables it draws (missing ones are skipped), a style (``lines``, ``stacked``
#: areas, ``bars``) for them, optionally ``right``: variables drawn as lines on a second y-axis
#: of their own units, and whether a log-scale toggle makes sense. Written into outputs.nc
#: (attribute ``panels``, JSON) so the explorer learns them from the run, not from HBV lists.
#: Five panels: each one is ~0.15 s of a page's start, so variables that share a panel's time
#: axis and units share it (forcing; the four storages in mm).
HBV_PANELS: tuple[dict, ...] = (
    {"title": "Forcing: precipitation P (bars) and air temperature T (right axis)",
     "variables": ["P", "T"], "style": "bars", "right": ["T"]},
    {"title": "Streamflow: observed vs simulated", "variables": ["Q_obs", "Q_sim"], "style": "lines",
     "log": True},
    {"title": "Runoff components Q0 (fast), Q1 (interflow), Q2 (baseflow)",
     "variables": ["Q0", "Q1", "Q2"], "style": "stacked"},
    {"title": "Storages: snow SWE, soil moisture SM, upper (SUZ) and lower (SLZ) groundwater zone",
     "variables": ["SWE", "SM", "SUZ", "SLZ"], "style": "lines"},
    {"title": "Evapotranspiration: ET vs PET", "variables": ["PET", "ET"], "style": "lines"},
)


def spec(name: str) -> ParamSpec:
    """The ParamSpec called ``name``.

    Raises:
        KeyError: unknown parameter (the message lists the known names).
    """
    try:
        return ALL_PARAMETERS[name]
    except KeyError:
        raise KeyError(f"unknown parameter {name!r}; known: {', '.join(ALL_PARAMETERS)}") from None
