"""Parameter-learning models for a backbone with static parameters: a learner (FFN_A, LSTM_Z,
ParaFormer_A, ParaFormer_Z) gives θ per site, the backbone (the VIC-type model) simulates with it.

Li & Lu (2023, *Remote Sensing* 15, 3536) and Tsai et al. (2021, dPL): the learner's raw output
lives in normalised parameter space; the range-boundary loss (eq. 13-14) is computed on it, then
it is clamped to [0, 1] and mapped to physical units by each ``ParamSpec``. The model returns a
``ParamOutput`` (outputs, params, final_state, like the δ models' ``DeltaOutput``) plus the
learner's range-boundary loss.

Both couplings of ``../shared/docs/paraformer_vic.md`` section 4: direct (dPL), where
gradients flow through the differentiable backbone itself, and surrogate (the paper), where a
frozen LSTM surrogate (``core.models.surrogate``) stands in for the backbone while training.
Testing always runs the backbone with the learned θ (a Z-learner's θ = the mean over the
training year's windows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch
from torch import nn

from .._runtime import learner_autocast
from ..losses import range_boundary_loss
from ..nets.learners import make_learner
from .surrogate import load_surrogate


@dataclass
class ParamOutput:
    """Outputs of a parameter-learning model over the target window.

    Attributes:
        outputs: name -> [time, site]: every backbone output (e.g. SM m³/m³, ET mm/d).
        params: name -> physical parameters [1, site, nmul].
        final_state: name -> [site, nmul], to continue the run.
        aux_loss: the learner's range-boundary loss (scalar), added to the data loss; None with
            the sigmoid bound.
        raw: the learner's raw output [site, p·nmul] (normalised space, before the bound).
    """

    outputs: dict[str, torch.Tensor]
    params: dict[str, torch.Tensor]
    final_state: dict[str, torch.Tensor]
    aux_loss: torch.Tensor | None = None
    raw: torch.Tensor | None = field(default=None, repr=False)


class ParamModel(nn.Module):
    """learner -> θ (bound: RBL + clamp or sigmoid; ParamSpec.scale) -> backbone (or, while
    training with the surrogate coupling, the frozen LSTM surrogate of the backbone).

    Args:
        learner: a ``core.nets.learners`` name ("ParaFormer_Z", ...).
        backbone: the process model (``core.physics.backbone`` contract), e.g. ``VIC()``.
        n_dynamic: per-day learner inputs (normalised forcing, target, mask).
        n_static: static learner inputs (normalised attributes).
        z_window: days of the input window a Z-learner reads (paper: 240).
        z_stride: stride of the windows whose θ are averaged at test time (paper default: 30).
        z_days: the days before the simulated part whose windows give the test θ (the training
            year: 365).
        surrogate: a surrogate job folder (``core.training.surrogate_fit``): train through that
            frozen surrogate instead of the backbone (Li & Lu 2023); None: the direct (dPL)
            coupling. Evaluation (``model.eval()``) always runs the backbone.
        param_bound: "rbl": the range-boundary loss on the raw output, then a clamp to [0, 1]
            (Li & Lu 2023 eq. 13-14); "sigmoid": u = sigmoid(raw) (hydrodl2
            ``change_param_range``), no boundary loss.
        learner_hyper: the learner's hyper-parameters (d_model, heads, hidden, ...).

    ``precision`` ("fp32" or "bf16", set by the trainer from ``train.precision``): the
    learner's forward runs under bf16 autocast; θ, the backbone and the surrogate stay fp32.

    The learner's output size is read from the backbone: len(parameter_specs) × nmul.
    """

    def __init__(self, learner: str, backbone: nn.Module, n_dynamic: int, n_static: int,
                 z_window: int = 240, z_stride: int = 30, z_days: int = 365, surrogate: str | None = None,
                 param_bound: str = "rbl", **learner_hyper):
        super().__init__()
        self.backbone = backbone
        self.specs = tuple(backbone.parameter_specs)
        self.nmul = backbone.nmul
        self.learner_name = learner
        self.learner = make_learner(learner, n_dynamic, n_static, len(self.specs) * self.nmul,
                                    **learner_hyper)
        self.z_window, self.z_stride, self.z_days = z_window, z_stride, z_days
        self.surrogate_path = surrogate
        if param_bound not in ("rbl", "sigmoid"):
            raise ValueError(f"param_bound must be 'rbl' or 'sigmoid', got {param_bound!r}")
        self.param_bound = param_bound
        self.precision = "fp32"
        self._surrogate: list = []  # loaded on first use, not a submodule: never in a checkpoint

    #: the output compared with the training target (surface soil moisture for SMAP)
    target_output = "SM"

    @property
    def site_inputs(self) -> tuple[str, ...]:
        """Physical per-site dataset variables the backbone reads (``site_static`` columns)."""
        return tuple(self.backbone.site_inputs)

    @property
    def coupling(self) -> str:
        return "surrogate" if self.surrogate_path else "direct"

    def prepare(self, target) -> None:
        """Data-dependent set-up before training (the model contract): none."""

    @property
    def reads_series(self) -> bool:
        """Whether the learner reads the per-day inputs (the Z-learners)."""
        return bool(getattr(self.learner, "uses_dynamic", True))

    def _learn(self, x_dyn: torch.Tensor | None, x_static: torch.Tensor) -> torch.Tensor:
        """The learner's static output [site, n_out] in fp32 (its forward under ``precision``)."""
        with learner_autocast(self.precision, x_static.device.type):
            return self.learner(x_dyn, x_static).static.float()

    def raw_parameters(self, x_dyn: torch.Tensor | None, x_static: torch.Tensor,
                       warmup: int | None = None) -> torch.Tensor:
        """The learner's raw output [site, p·nmul] (normalised space; parameter-major).

        A Z-learner reads ``z_window`` days of ``x_dyn``: while training, the history before the
        simulated part (days ``warmup − z_window .. warmup − 1``: the forcing/SMAP window that
        precedes the loss window of a mini-batch; a random window of the simulated part when the
        warm-up is shorter); otherwise the mean of the raw θ of the windows at stride
        ``z_stride`` over the ``z_days`` days before ``warmup`` (the training year before a test
        period; paper: "a cell's θ = mean over its training windows"). Without ``warmup``: the
        last ``z_window`` days.

        Raises:
            ValueError: a Z-learner without ``x_dyn``, or fewer days than ``z_window``.
        """
        if not self.reads_series:
            return self._learn(None, x_static)
        if x_dyn is None:
            raise ValueError(f"{self.learner_name} reads a window of per-day inputs; x_dyn is None")
        nt, z = x_dyn.shape[0], self.z_window
        if nt < z:
            raise ValueError(f"{self.learner_name} reads {z}-day windows; got {nt} days")
        if warmup is None:
            return self._learn(x_dyn[-z:], x_static)
        if self.training:
            if warmup >= z:
                return self._learn(x_dyn[warmup - z:warmup], x_static)
            lo = min(warmup, nt - z)
            s0 = int(torch.randint(lo, nt - z + 1, (1,)))
            return self._learn(x_dyn[s0:s0 + z], x_static)
        lo = max(0, warmup - self.z_days)
        if warmup - lo < z:  # too little before the simulated part: the first window there is
            starts = [max(0, min(lo, nt - z))]
        else:
            starts = list(range(lo, warmup - z + 1, self.z_stride))
        return torch.stack([self._learn(x_dyn[s0:s0 + z], x_static) for s0 in starts]).mean(0)

    def unit_parameters(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw [site, p·nmul] -> [site, p·nmul] in [0, 1]: a clamp (after the range-boundary
        loss) or a sigmoid, by ``param_bound``."""
        return torch.sigmoid(raw) if self.param_bound == "sigmoid" else torch.clamp(raw, 0.0, 1.0)

    def scale(self, raw: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw [site, p·nmul] -> name -> physical [1, site, nmul] (bounded by ``param_bound``)."""
        u = self.unit_parameters(raw).reshape(raw.shape[0], len(self.specs), self.nmul)
        return {s.name: s.scale(u[:, i]).unsqueeze(0) for i, s in enumerate(self.specs)}

    def surrogate(self):
        """The frozen surrogate of the surrogate coupling (loaded once; None for direct)."""
        if not self.surrogate_path:
            return None
        if not self._surrogate:
            model, _ = load_surrogate(self.surrogate_path)
            for p in model.parameters():
                p.requires_grad_(False)
            self._surrogate.append(model)
        return self._surrogate[0]

    def forward(self, x_dyn: torch.Tensor | None, x_static: torch.Tensor, forcing: torch.Tensor,
                warmup: int, state: Mapping[str, torch.Tensor] | None = None, *,
                site_static: torch.Tensor | None = None, site: Mapping[str, torch.Tensor] | None = None,
                raw: torch.Tensor | None = None) -> ParamOutput:
        """Simulate the window after ``warmup`` days with the learned θ.

        Args:
            x_dyn: per-day learner inputs [time, site, n_dynamic] (None for A-learners).
            x_static: [site, n_static].
            forcing: the backbone's physical forcing [time, site, nforcing].
            warmup: leading days that only spin up the states (no gradient), 0 ≤ warmup < time.
            state: initial state (default: the backbone's).
            site_static: physical per-site inputs [site, len(site_inputs)] (bulk, clay, sand,
                ndvi for the VIC), turned into ``site`` by the backbone.
            site: the backbone's per-site properties directly (instead of ``site_static``).
            raw: use these raw parameters instead of the learner's.

        Returns:
            ParamOutput over days ``warmup..time-1``. With the surrogate coupling in training
            mode, ``outputs`` holds the surrogate's SM and ET only and ``final_state`` is empty.
        """
        nt = forcing.shape[0]
        if not 0 <= warmup < nt:
            raise ValueError(f"warmup must be in [0, {nt}), got {warmup}")
        if raw is None:
            raw = self.raw_parameters(x_dyn, x_static, warmup)
        rbl = None
        if self.param_bound == "rbl":
            rbl = range_boundary_loss(raw.reshape(raw.shape[0], len(self.specs), self.nmul)
                                      .transpose(1, 2).reshape(-1, len(self.specs)))
        params = self.scale(raw)
        sur = self.surrogate() if self.training else None
        if sur is not None:
            if self.nmul != 1:
                raise ValueError("the surrogate coupling needs nmul = 1 (one θ per site)")
            burn = min(warmup, 120)
            sur = sur.to(forcing.device)
            theta01 = self.unit_parameters(raw).float()
            f, ss = forcing[warmup - burn:].float(), site_static.float()
            with torch.no_grad():  # the burn-in spins the surrogate's LSTM up, without gradient
                _, hc = sur.run(f[:burn], ss, theta01.detach())
            y, _ = sur.run(f[burn:], ss, theta01, hc)
            return ParamOutput(outputs={"SM": y[..., 0], "ET": y[..., 1]}, params=params, final_state={},
                               aux_loss=rbl, raw=raw)
        if site is None and site_static is not None and site_static.shape[-1]:
            site = self.backbone.site_properties(site_static.to(forcing.dtype))
        if warmup > 0:
            with torch.no_grad():
                warm = self.backbone(forcing[:warmup], {k: v.detach() for k, v in params.items()},
                                     state, site=site)
            state = warm.final_state
        res = self.backbone(forcing[warmup:], params, state, site=site)
        return ParamOutput(outputs=dict(res.outputs), params=params, final_state=res.final_state,
                           aux_loss=rbl, raw=raw)
