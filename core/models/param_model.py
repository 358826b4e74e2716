"""Parameter-learning models for a backbone with static parameters: a learner (FFN_A, LSTM_Z,
ParaFormer_A, ParaFormer_Z) gives θ per site, the backbone (the VIC-type model) simulates with it.

Li & Lu (2023, *Remote Sensing* 15, 3536) and Tsai et al. (2021, dPL): the learner's raw output
lives in normalised parameter space; the range-boundary loss (eq. 13-14) is computed on it, then
it is clamped to [0, 1] and mapped to physical units by each ``ParamSpec``. The model returns a
``ParamOutput`` (outputs, params, final_state, like the δ models' ``DeltaOutput``) plus the
learner's range-boundary loss.

This is the direct (dPL) coupling of ``../shared/docs/paraformer_vic.md`` section 4: gradients
flow through the differentiable backbone itself. The surrogate coupling (the paper: a frozen
LSTM surrogate, ``core.models.surrogate``, in place of the backbone during training) and the
wiring into the trainer (loss = masked RMSE + RBL, the doc's Adadelta settings, test θ = the mean
over a cell's training windows via ``raw=``) are not built yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch
from torch import nn

from ..nets.learners import make_learner


@dataclass
class ParamOutput:
    """Outputs of a parameter-learning model over the target window.

    Attributes:
        outputs: name -> [time, site]: every backbone output (e.g. SM m³/m³, ET mm/d).
        params: name -> physical parameters [1, site, nmul].
        final_state: name -> [site, nmul], to continue the run.
        aux_loss: the learner's range-boundary loss (scalar), added to the data loss.
        raw: the learner's raw output [site, p·nmul] (normalised space, before the clamp).
    """

    outputs: dict[str, torch.Tensor]
    params: dict[str, torch.Tensor]
    final_state: dict[str, torch.Tensor]
    aux_loss: torch.Tensor | None = None
    raw: torch.Tensor | None = field(default=None, repr=False)


class ParamModel(nn.Module):
    """learner -> θ (RBL, clamp, ParamSpec.scale) -> backbone.

    Args:
        learner: a ``core.nets.learners`` name ("ParaFormer_Z", ...).
        backbone: the process model (``core.physics.backbone`` contract), e.g. ``VIC()``.
        n_dynamic: per-day learner inputs (normalised forcing, target, mask).
        n_static: static learner inputs (normalised attributes).
        z_window: days of the input window a Z-learner reads (the last ones; paper: 240).
        learner_hyper: the learner's hyper-parameters (d_model, heads, hidden, ...).

    The learner's output size is read from the backbone: len(parameter_specs) × nmul.
    """

    def __init__(self, learner: str, backbone: nn.Module, n_dynamic: int, n_static: int,
                 z_window: int = 240, **learner_hyper):
        super().__init__()
        self.backbone = backbone
        self.specs = tuple(backbone.parameter_specs)
        self.nmul = backbone.nmul
        self.learner_name = learner
        self.learner = make_learner(learner, n_dynamic, n_static, len(self.specs) * self.nmul,
                                    **learner_hyper)
        self.z_window = z_window

    #: the output compared with the training target (surface soil moisture for SMAP)
    target_output = "SM"

    def prepare(self, target) -> None:
        """Data-dependent set-up before training (the model contract): none."""

    @property
    def reads_series(self) -> bool:
        """Whether the learner reads the per-day inputs (the Z-learners)."""
        return bool(getattr(self.learner, "uses_dynamic", True))

    def raw_parameters(self, x_dyn: torch.Tensor | None, x_static: torch.Tensor) -> torch.Tensor:
        """The learner's raw output [site, p·nmul] (normalised space; parameter-major)."""
        if self.reads_series:
            if x_dyn is None:
                raise ValueError(f"{self.learner_name} reads a window of per-day inputs; x_dyn is None")
            x_dyn = x_dyn[-self.z_window:]
        return self.learner(x_dyn, x_static).static

    def scale(self, raw: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw [site, p·nmul] -> name -> physical [1, site, nmul] (clamped to the bounds)."""
        u = torch.clamp(raw, 0.0, 1.0).reshape(raw.shape[0], len(self.specs), self.nmul)
        return {s.name: s.scale(u[:, i]).unsqueeze(0) for i, s in enumerate(self.specs)}

    def forward(self, x_dyn: torch.Tensor | None, x_static: torch.Tensor, forcing: torch.Tensor,
                warmup: int, state: Mapping[str, torch.Tensor] | None = None, *,
                site: Mapping[str, torch.Tensor] | None = None,
                raw: torch.Tensor | None = None) -> ParamOutput:
        """Simulate the window after ``warmup`` days with the learned θ.

        Args:
            x_dyn: per-day learner inputs [time, site, n_dynamic] (None for A-learners).
            x_static: [site, n_static].
            forcing: the backbone's physical forcing [time, site, nforcing].
            warmup: leading days that only spin up the states (no gradient), 0 ≤ warmup < time.
            state: initial state (default: the backbone's).
            site: the backbone's per-site properties.
            raw: use these raw parameters instead of the learner's (e.g. the mean over a
                cell's training windows at test time).

        Returns:
            ParamOutput over days ``warmup..time-1``.
        """
        nt = forcing.shape[0]
        if not 0 <= warmup < nt:
            raise ValueError(f"warmup must be in [0, {nt}), got {warmup}")
        if raw is None:
            raw = self.raw_parameters(x_dyn, x_static)
        params = self.scale(raw)
        if warmup > 0:
            with torch.no_grad():
                warm = self.backbone(forcing[:warmup], {k: v.detach() for k, v in params.items()},
                                     state, site=site)
            state = warm.final_state
        res = self.backbone(forcing[warmup:], params, state, site=site)
        from ..training.losses import range_boundary_loss  # here: core.training imports core.models

        return ParamOutput(outputs=dict(res.outputs), params=params, final_state=res.final_state,
                           aux_loss=range_boundary_loss(raw.reshape(raw.shape[0], len(self.specs), self.nmul)
                                                        .transpose(1, 2).reshape(-1, len(self.specs))),
                           raw=raw)
