"""The regional streamflow LSTM baseline (Kratzert et al. 2019; the "LSTM" of Feng et al. 2022).

One LSTM for all basins reads the normalised forcings (P, T, PET) and the static attributes each
day and predicts streamflow directly, with no process model. Inputs use the same normalisation as
the δ models' learner (``core.datasets.normalize``). The output is a standardised transformed
discharge z; following the MHPI convention for streamflow (Feng et al. 2020, 2022)

    Q = (10^(z·σ + μ) − 0.1)²,   clamped at 0,

where μ, σ are the mean/std of log10(√Q + 0.1) over the training basins and period (stored as
buffers, so a checkpoint carries them). The model is trained on Q in mm/d with the same loss and
windows as the δ models (the first ``warmup`` days spin up the LSTM state and carry no loss), so
every comparison is side by side.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from torch import nn

from .._runtime import learner_autocast
from ..nets import LSTMNet, with_static
from .delta import DeltaOutput


class StreamflowLSTM(nn.Module):
    """Forcings + attributes → LSTM → Q (mm/d).

    Args:
        n_dynamic: dynamic inputs per day (normalised forcings).
        n_static: static attributes.
        hidden: LSTM hidden size (Feng et al. 2022: 256).
        dropout: dropout on the LSTM output.
        forget_bias: initial forget-gate bias (``LSTMNet``; neuralhydrology: 3; None: PyTorch's).

    Shapes: ``forward(x_dyn [time, site, n_dynamic], x_static [site, n_static], forcing,
    warmup)`` -> ``DeltaOutput`` with ``outputs["Q_sim"]`` [time - warmup, basin] (mm/d); no HBV
    states, fluxes or parameters (``params`` and ``final_state`` are empty).
    """

    family = "lstm"
    #: the output compared with the training target
    target_output = "Q_sim"
    #: physical per-site inputs (the model contract): none
    site_inputs: tuple[str, ...] = ()

    def __init__(self, n_dynamic: int, n_static: int, hidden: int = 256, dropout: float = 0.5,
                 forget_bias: float | None = None):
        super().__init__()
        self.learner = LSTMNet(n_dynamic + n_static, 1, hidden=hidden, dropout=dropout, forget_bias=forget_bias)
        #: the LSTM's arithmetic, set by the trainer from ``train.precision`` ("bf16": autocast;
        #: the output transform and the loss stay fp32)
        self.precision = "fp32"
        # statistics of log10(sqrt(Q) + 0.1) on the training data (set by fit_target)
        self.register_buffer("q_mean", torch.tensor(0.0))
        self.register_buffer("q_std", torch.tensor(1.0))

    def prepare(self, target: np.ndarray) -> None:
        """Data-dependent set-up before training (the model contract): ``fit_target``."""
        self.fit_target(target)

    def fit_target(self, q_obs: np.ndarray) -> None:
        """Set μ, σ of log10(√Q + 0.1) from observed training streamflow [time, site] (mm/d).

        Raises:
            ValueError: no finite, non-negative observation.
        """
        q = np.asarray(q_obs, dtype=np.float64)
        q = q[np.isfinite(q) & (q >= 0)]
        if q.size == 0:
            raise ValueError("no finite streamflow observation to fit the LSTM target scaling")
        z = np.log10(np.sqrt(q) + 0.1)
        self.q_mean.fill_(float(z.mean()))
        self.q_std.fill_(float(max(z.std(), 1e-6)))

    def forward(self, x_dyn: torch.Tensor, x_static: torch.Tensor, forcing: torch.Tensor | None = None,
                warmup: int = 0, state: Mapping[str, torch.Tensor] | None = None,
                site_static: torch.Tensor | None = None) -> DeltaOutput:
        """Q over days ``warmup..time-1``; ``forcing``, ``state`` and ``site_static`` are accepted
        for the common model interface and not used (the LSTM reads the normalised forcings in ``x_dyn``)."""
        nt = x_dyn.shape[0]
        if not 0 <= warmup < nt:
            raise ValueError(f"warmup must be in [0, {nt}), got {warmup}")
        with learner_autocast(self.precision, x_dyn.device.type):
            h = self.learner.features(with_static(x_dyn, x_static))
            z = self.learner.head(h[warmup:]).squeeze(-1)                  # [time - warmup, basin]
        if z.dtype == torch.bfloat16:
            z = z.float()
        root = torch.clamp(torch.pow(10.0, z * self.q_std + self.q_mean) - 0.1, min=0.0)
        return DeltaOutput(outputs={"Q_sim": root * root}, params={}, final_state={})
