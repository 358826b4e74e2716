"""Process models ("backbones"): the parameter spec, HBV and routing."""

from .hbv import FORCING_NAMES, HBV, OUTPUT_NAMES, HBVResult, RechargeNet, hbv_step
from .routing import UH_LENGTH, gamma_unit_hydrograph, route
from .spec import (ALL_PARAMETERS, DERIVED_OUTPUTS, FLUX_DESCRIPTIONS, FORCING_OUTPUTS, GAMMA, HBV_PANELS, HBV_FLUXES, HBV_PARAMETERS,
                   HBV_STATES, OUTPUT_UNITS, ROUTING_PARAMETERS, STATE_DESCRIPTIONS, ParamSpec,
                   spec)

__all__ = [
    "ALL_PARAMETERS", "DERIVED_OUTPUTS", "FLUX_DESCRIPTIONS", "FORCING_OUTPUTS", "HBV_PANELS", "FORCING_NAMES", "GAMMA", "HBV", "HBVResult",
    "HBV_FLUXES", "HBV_PARAMETERS", "HBV_STATES", "OUTPUT_NAMES", "OUTPUT_UNITS",
    "ROUTING_PARAMETERS", "RechargeNet", "STATE_DESCRIPTIONS", "UH_LENGTH", "ParamSpec", "gamma_unit_hydrograph",
    "hbv_step", "route", "spec",
]
