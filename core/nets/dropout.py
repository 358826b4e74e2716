"""Dropout with a cheaper mask on CPU: the learners' (ParaFormer, FFN, LSTM_Z) and g_A's."""

from __future__ import annotations

import math

import torch
from torch import nn


#: resolution of :class:`Dropout`'s keep probability on CPU (16-bit uniform integers)
_LEVELS = 1 << 16


def _cpu_keep_mask(shape, p: float, dtype) -> torch.Tensor:
    """A dropout mask on CPU: 1/(1 − p') with probability 1 − p', else 0, where p' is ``p``
    rounded to a multiple of 1/65536 (0.1 -> 0.100006).

    The uniform numbers are 16-bit integers cut from 64-bit draws of the global generator
    (``torch.randint`` over the whole int64 range, four per draw): about 5× cheaper than
    ``bernoulli_`` for the same mask, which took a quarter of a ParaFormer_Z step
    (docs/performance.md). Seeded by ``torch.manual_seed`` like any other op.
    """
    n = math.prod(shape)
    draws = torch.randint(-2**63, 2**63 - 1, (-(-n // 4),), dtype=torch.int64)
    u = draws.view(torch.int16)[:n].view(shape)
    k = round(p * _LEVELS)
    keep = u >= (k - _LEVELS // 2)  # u is uniform on [-32768, 32767]
    return keep.to(dtype) * (_LEVELS / (_LEVELS - k))


class Dropout(nn.Dropout):
    """``nn.Dropout`` (inverted dropout: zeros with probability ``p``, the rest scaled by
    1/(1 − p); identity in eval mode) whose mask on CPU comes from :func:`_cpu_keep_mask`
    instead of ``bernoulli_`` (about 5× cheaper; the keep probability resolved to 1/65536). Other
    devices use ``nn.Dropout`` itself. The same state dict and ``p`` as ``nn.Dropout``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu":
            return super().forward(x)
        if round(self.p * _LEVELS) == _LEVELS:  # p within 1/131072 of 1: everything dropped
            return x * 0.0
        return x * _cpu_keep_mask(x.shape, self.p, x.dtype)
