"""LSTM networks: the parameter learner g_A of the δ models (Feng et al. 2022, Fig. 1)."""

from __future__ import annotations

import torch
from torch import nn

from .dropout import Dropout


def with_static(x_dyn: torch.Tensor, x_static: torch.Tensor) -> torch.Tensor:
    """Learner input: [time, site, n_dynamic] ⊕ [site, n_static] (repeated over time) →
    [time, site, n_dynamic + n_static]."""
    nt = x_dyn.shape[0]
    return torch.cat([x_dyn, x_static.unsqueeze(0).expand(nt, -1, -1)], dim=-1)


class LSTMNet(nn.Module):
    """Linear(nx→H) + ReLU → LSTM(H) → dropout → Linear(H→ny), as the MHPI CudnnLstmModel.

    Args:
        nx: inputs per time step (normalised forcings + static attributes).
        ny: outputs per time step.
        hidden: LSTM hidden size H (paper: 256).
        dropout: dropout on the LSTM output (paper: 0.5).
        forget_bias: initial forget-gate bias (the input-side bias of the forget gate; the
            hidden-side one starts at 0), as neuralhydrology's ``initial_forget_bias`` (3 in its
            CAMELS configs; Gers et al. 2000); None: PyTorch's uniform initialisation.

    Shapes: ``forward(x [time, site, nx]) -> [time, site, ny]`` (raw, unbounded).
    """

    def __init__(self, nx: int, ny: int, hidden: int = 256, dropout: float = 0.5,
                 forget_bias: float | None = None):
        super().__init__()
        self.linear_in = nn.Linear(nx, hidden)
        self.lstm = nn.LSTM(hidden, hidden)
        if forget_bias is not None:  # PyTorch's gate order: input, forget, cell, output
            with torch.no_grad():
                self.lstm.bias_ih_l0[hidden:2 * hidden].fill_(float(forget_bias))
                self.lstm.bias_hh_l0[hidden:2 * hidden].zero_()
        # the CPU mask from 16-bit uniform integers: bernoulli_ took 18 % of a bf16 paper432 step
        self.dropout = Dropout(dropout)
        self.linear_out = nn.Linear(hidden, ny)

    def features(self, x: torch.Tensor, no_grad_days: int = 0) -> torch.Tensor:
        """LSTM hidden states before dropout: [time, site, nx] -> [time, site, H].

        Args:
            x: normalised inputs [time, site, nx].
            no_grad_days: run the first ``no_grad_days`` days without recording a graph and go on
                from their final (h, c) with it: truncated back-propagation through time at that
                day. The hidden states are the same as one pass (to rounding); the gradient stops
                at the cut, and the recurrent forward and backward over those days cost no graph
                (the δ models' warm-up year, ``DeltaModel``). 0, or no gradient enabled: one pass.

        Raises:
            ValueError: ``no_grad_days`` outside ``[0, time)``.
        """
        if not 0 <= no_grad_days < max(x.shape[0], 1):
            raise ValueError(f"no_grad_days must be in [0, {x.shape[0]}), got {no_grad_days}")
        if no_grad_days == 0 or not torch.is_grad_enabled():
            h, _ = self.lstm(torch.relu(self.linear_in(x)))
            return h
        with torch.no_grad():
            h0, state = self.lstm(torch.relu(self.linear_in(x[:no_grad_days])))
        h1, _ = self.lstm(torch.relu(self.linear_in(x[no_grad_days:])), state)
        return torch.cat([h0.to(h1.dtype), h1])

    def head(self, h: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Dropout + output layer on hidden states ``h`` [..., H] -> [..., ny or len(rows)].

        ``rows`` selects output units (indices into ny), so a caller that needs a few outputs on
        many days, and the rest on one day, computes (and back-propagates) only those.
        """
        h = self.dropout(h)
        if rows is None:
            return self.linear_out(h)
        return nn.functional.linear(h, self.linear_out.weight[rows], self.linear_out.bias[rows])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
