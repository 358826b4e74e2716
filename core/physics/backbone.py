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
- ``site_inputs`` and ``site_properties(site_static [site, k])``: the dataset's physical
  per-site variables the model reads (VIC: bulk, clay, sand, ndvi) and how they become the
  ``site`` mapping (None for HBV).
- ``output_specs``: every named output (``OutputSpec``: units, long name, state or flux).
- ``state_names`` and ``initial_state(nsite)``.
- ``forward(forcing, params, state=None, return_components=False, *, site=None)`` ->
  ``BackboneResult``; parameters are ``[1 or time, site, nmul]`` in physical units (1 =
  static, time = one value per day).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Protocol, Sequence, runtime_checkable

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
    def site_inputs(self) -> tuple[str, ...]: ...

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


def run_days(day: Callable, forcing: torch.Tensor, params: Mapping[str, torch.Tensor],
             names: Sequence[str], state: tuple, output_names: Sequence[str],
             return_components: bool = False):
    """The reference time loop the backbones share (HBV, VIC): one ``day`` call per time step
    under autograd.

    The forcing is unbound once into per-day ``[site, 1]`` columns (one backward node per
    tensor instead of a full-size zero-fill per step). A static parameter (leading dim 1) is
    passed as its ``[site, nmul]`` value every day; a dynamic one as the day's slice.

    Args:
        day: ``day(forcing_t, state, p_t) -> (state, values)`` with ``forcing_t`` the tuple of
            the day's forcing columns in ``forcing``'s order, ``state`` a tuple of ``[site,
            nmul]`` tensors, ``p_t`` name -> ``[site, nmul]``, and ``values`` the day's outputs
            in ``output_names`` order, each ``[site, nmul]``.
        forcing: ``[time, site, nforcing]``; params: name -> ``[1 or time, site, nmul]``;
        names: the parameters ``day`` reads; state: the initial state tuple.
        return_components: also return the per-component series.

    Returns:
        (outputs name -> ``[time, site]`` component means, components name -> ``[time, site,
        nmul]`` or None, the final state tuple).
    """
    columns = [forcing[..., i].unsqueeze(-1).unbind(0) for i in range(forcing.shape[-1])]
    per_step = {n: (params[n][0] if params[n].shape[0] == 1 else params[n].unbind(0)) for n in names}
    dynamic = [n for n in names if params[n].shape[0] != 1]
    static_p = {n: v for n, v in per_step.items() if n not in dynamic}
    rows = []
    for t in range(forcing.shape[0]):
        p_t = static_p if not dynamic else {**static_p, **{n: per_step[n][t] for n in dynamic}}
        state, values = day(tuple(c[t] for c in columns), state, p_t)
        block = torch.stack(tuple(values))  # [n_out, site, nmul]
        rows.append(block if return_components else block.mean(-1))
    series = torch.stack(rows)  # [time, n_out, site(, nmul)]
    if return_components:
        comps = {n: series[:, i] for i, n in enumerate(output_names)}
        return {n: v.mean(-1) for n, v in comps.items()}, comps, state
    return {n: series[:, i] for i, n in enumerate(output_names)}, None, state
