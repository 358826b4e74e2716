"""Loss of the δ models (Feng et al. 2022, eq. 1-2)."""

from __future__ import annotations

import torch


def _masked_rmse(sim: torch.Tensor, obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """RMSE over ``mask``; ``obs`` must already be finite everywhere (zero-filled)."""
    diff = torch.where(mask, sim - obs, torch.zeros_like(sim))
    return torch.sqrt((diff**2).sum() / mask.sum().clamp(min=1))


def rmse_comb_loss(sim: torch.Tensor, obs: torch.Tensor, alpha: float = 0.25) -> torch.Tensor:
    """``(1 − α)·RMSE(Q) + α·RMSE(log10(√(Q + 1e-6) + 0.1))`` over observed days.

    Args:
        sim: simulated streamflow [time, basin] (mm/d).
        obs: observed streamflow [time, basin] (mm/d), NaN where missing (excluded).
        alpha: weight of the transformed (low-flow) term; the paper uses 0.25.

    Returns:
        scalar loss. The RMSEs pool all observed (day, basin) pairs of the batch, as the MHPI
        ``RmseLossComb``.

    Raises:
        ValueError: shapes differ.
    """
    if sim.shape != obs.shape:
        raise ValueError(f"sim {tuple(sim.shape)} and obs {tuple(obs.shape)} differ in shape")
    mask = torch.isfinite(obs)
    obs0 = torch.where(mask, obs, torch.zeros_like(obs))
    t_sim = torch.log10(torch.sqrt(sim.clamp(min=0) + 1e-6) + 0.1)
    t_obs = torch.log10(torch.sqrt(obs0.clamp(min=0) + 1e-6) + 0.1)
    return (1 - alpha) * _masked_rmse(sim, obs0, mask) + alpha * _masked_rmse(t_sim, t_obs, mask)
