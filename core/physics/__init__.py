"""Process models ("backbones"): the backbone contract, the parameter spec, HBV, the VIC-type
model and routing."""

from .backbone import Backbone, BackboneResult, OutputSpec, check_params
from .hbv import FORCING_NAMES, HBV, OUTPUT_NAMES, HBVResult, RechargeNet, hbv_step
from .routing import UH_LENGTH, gamma_unit_hydrograph, route
from .snow import degree_day_snow
from .spec import (ALL_PARAMETERS, DERIVED_OUTPUTS, FLUX_DESCRIPTIONS, FORCING_OUTPUTS, GAMMA, HBV_PANELS, HBV_FLUXES, HBV_PARAMETERS,
                   HBV_STATES, OUTPUT_UNITS, ROUTING_PARAMETERS, STATE_DESCRIPTIONS, ParamSpec,
                   spec)
from .vic import VIC, VIC_OUTPUTS, VIC_PANELS, VIC_PARAMETERS, VIC_STATES, soil_properties, vic_step

__all__ = [
    "ALL_PARAMETERS", "Backbone", "BackboneResult", "DERIVED_OUTPUTS", "FLUX_DESCRIPTIONS", "FORCING_OUTPUTS",
    "HBV_PANELS", "FORCING_NAMES", "GAMMA", "HBV", "HBVResult",
    "HBV_FLUXES", "HBV_PARAMETERS", "HBV_STATES", "OUTPUT_NAMES", "OUTPUT_UNITS", "OutputSpec",
    "ROUTING_PARAMETERS", "RechargeNet", "STATE_DESCRIPTIONS", "UH_LENGTH", "ParamSpec", "VIC", "VIC_OUTPUTS",
    "VIC_PANELS", "VIC_PARAMETERS", "VIC_STATES", "check_params", "degree_day_snow", "gamma_unit_hydrograph",
    "hbv_step", "route", "soil_properties", "spec", "vic_step",
]
