"""The backbone contract: what every differentiable process model of HydroLens provides.

A backbone is the physics (HBV for streamflow; the VIC-type land-surface model for SMAP soil
moisture). Learners, training, evaluation and the explorer talk to it only through this
contract, so a second process model needs no copy of the code around it (issue 10):

- ``name``: registry name ("hbv", "vic").
- ``forcing_names``: the order of the last axis of ``forcing [time, site, nforcing]``, with
  ``forcing_units``.
- ``parameter_specs``: the learnable parameters (``ParamSpec``: bounds, units; the learner's
  output size is read from it), ``nmul`` parallel components of each.
- ``site_property_names``: fixed per-site quantities the model needs besides θ (e.g. soil
  porosity from the data's statics); empty for HBV. Passed to ``forward`` as ``site``.
- ``output_specs``: every named output (``OutputSpec``: units, long name, state or flux).
- ``state_names`` and ``initial_state(nsite)``.
- ``forward(forcing, params, state=None, return_components=False, *, site=None)`` ->
  ``BackboneResult``; parameters are ``[1 or time, site, nmul]`` in physical units (1 =
  static, time = one value per day).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, runtime_checkable

import torch

from .spec import ParamSpec


@dataclass(frozen=True)
class OutputSpec:
    """A named output series of a backbone.

    Attributes:
        name: the field's symbol (SM, ET, Qb, W1, ...).
        units: UDUNITS-style ("mm", "mm d-1", "m3 m-3").
        long_name: one line for files and the explorer.
        kind: "state" (end-of-day storage), "flux" (per day) or "diagnostic" (derived).
    """

    name: str
    units: str
    long_name: str
    kind: str = "flux"


@dataclass
class BackboneResult:
    """What ``Backbone.forward`` returns.

    Attributes:
        outputs: name -> ``[time, site]``, component-averaged, in the units of ``output_specs``.
        final_state: name -> ``[site, nmul]``, to continue a run (warm-up).
        components: name -> ``[time, site, nmul]`` when asked for, else None.
    """

    outputs: dict[str, torch.Tensor]
    final_state: dict[str, torch.Tensor]
    components: dict[str, torch.Tensor] | None = None


@runtime_checkable
class Backbone(Protocol):
    """Structural type of a process model (see the module docstring)."""

    name: str
    nmul: int

    @property
    def forcing_names(self) -> tuple[str, ...]: ...

    @property
    def forcing_units(self) -> dict[str, str]: ...

    @property
    def parameter_specs(self) -> tuple[ParamSpec, ...]: ...

    @property
    def site_property_names(self) -> tuple[str, ...]: ...

    @property
    def output_specs(self) -> tuple[OutputSpec, ...]: ...

    @property
    def state_names(self) -> tuple[str, ...]: ...

    def initial_state(self, nsite: int, dtype=torch.float32, device=None, *,
                      site: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]: ...

    def forward(self, forcing: torch.Tensor, params: Mapping[str, torch.Tensor],
                state: Mapping[str, torch.Tensor] | None = None, return_components: bool = False, *,
                site: Mapping[str, torch.Tensor] | None = None) -> BackboneResult: ...


def check_params(backbone: Backbone, forcing: torch.Tensor, params: Mapping[str, torch.Tensor]) -> None:
    """Validate ``forcing [time, site, nforcing]`` and ``params`` (name -> ``[1 or time, site,
    nmul]``) against a backbone's spec.

    Raises:
        ValueError: wrong forcing or parameter shape (names the parameter and the shape expected).
        KeyError: a parameter of ``parameter_specs`` is missing.
    """
    names = backbone.forcing_names
    if forcing.ndim != 3 or forcing.shape[-1] != len(names):
        units = backbone.forcing_units
        raise ValueError(f"{backbone.name}: forcing must be [time, site, {len(names)}] with ("
                         + ", ".join(f"{n} {units.get(n, '')}".strip() for n in names)
                         + f"); got {tuple(forcing.shape)}")
    nt, ns = forcing.shape[:2]
    wanted = [s.name for s in backbone.parameter_specs]
    missing = [n for n in wanted if n not in params]
    if missing:
        raise KeyError(f"{backbone.name} parameters missing: {missing}")
    for n in wanted:
        v = params[n]
        if v.ndim != 3 or v.shape[1:] != (ns, backbone.nmul) or v.shape[0] not in (1, nt):
            raise ValueError(f"{backbone.name}: parameter {n} must be [1 or {nt}, {ns}, "
                             f"{backbone.nmul}], got {tuple(v.shape)}")
