"""LSTM networks: the parameter learner g_A of the δ models (Feng et al. 2022, Fig. 1)."""

from __future__ import annotations

import torch
from torch import nn


class LSTMNet(nn.Module):
    """Linear(nx→H) + ReLU → LSTM(H) → dropout → Linear(H→ny), as the MHPI CudnnLstmModel.

    Args:
        nx: inputs per time step (normalised forcings + static attributes).
        ny: outputs per time step.
        hidden: LSTM hidden size H (paper: 256).
        dropout: dropout on the LSTM output (paper: 0.5).

    Shapes: ``forward(x [time, basin, nx]) -> [time, basin, ny]`` (raw, unbounded).
    """

    def __init__(self, nx: int, ny: int, hidden: int = 256, dropout: float = 0.5):
        super().__init__()
        self.linear_in = nn.Linear(nx, hidden)
        self.lstm = nn.LSTM(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.linear_out = nn.Linear(hidden, ny)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.linear_in(x))
        h, _ = self.lstm(h)
        return self.linear_out(self.dropout(h))
