"""Losses: the δ models' (Feng et al. 2022, eq. 1-2), the ParaFormer family's (Li & Lu 2023,
eq. 13-14: masked RMSE + range-boundary loss) and the basin-normalised NSE* of Kratzert et al.
(2019, HESS 23, 5089, eq. 2)."""

from __future__ import annotations

import torch


def _masked_rmse(sim: torch.Tensor, obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """RMSE over ``mask``; ``obs`` must already be finite everywhere (zero-filled)."""
    diff = torch.where(mask, sim - obs, torch.zeros_like(sim))
    return torch.sqrt((diff**2).sum() / mask.sum().clamp(min=1))


def rmse_comb_loss(sim: torch.Tensor, obs: torch.Tensor, alpha: float = 0.25) -> torch.Tensor:
    """``(1 − α)·RMSE(Q) + α·RMSE(log10(√(Q + 1e-6) + 0.1))`` over observed days.

    Args:
        sim: simulated streamflow [time, site] (mm/d).
        obs: observed streamflow [time, site] (mm/d), NaN where missing (excluded).
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


def range_boundary_loss(theta: torch.Tensor, eps: float = 0.01) -> torch.Tensor:
    """Range-boundary loss of Li & Lu (2023, eq. 13-14) on raw parameters in normalised space.

    RBL = p·Σⱼ ReLU(θⱼ − 1) / (ε + #{θⱼ > 1}) + p·Σⱼ ReLU(−θⱼ) / (ε + #{θⱼ < 0}) per site,
    averaged over sites; p = number of parameters. Zero when every θⱼ is in [0, 1], so it only
    pulls a learner's raw output back into the range the clamp would cut it to.

    Args:
        theta: raw learner output in normalised parameter space [site, p] (1 = upper bound,
            0 = lower bound of each ``ParamSpec``); any leading dims before p are sites.
        eps: ε of eq. 14 (0.01).

    Returns:
        scalar loss (≥ 0).
    """
    p = theta.shape[-1]
    flat = theta.reshape(-1, p)
    over, under = torch.relu(flat - 1.0), torch.relu(-flat)
    n_over = (flat > 1.0).sum(-1).to(flat.dtype)
    n_under = (flat < 0.0).sum(-1).to(flat.dtype)
    per_site = p * over.sum(-1) / (eps + n_over) + p * under.sum(-1) / (eps + n_under)
    return per_site.mean()


def masked_rmse(sim: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
    """RMSE over the finite entries of ``obs`` (NaN = no observation), pooled over the batch:
    the soil-moisture term of Li & Lu (2023, eq. 13) (m³/m³ for SMAP).

    Raises:
        ValueError: shapes differ.
    """
    if sim.shape != obs.shape:
        raise ValueError(f"sim {tuple(sim.shape)} and obs {tuple(obs.shape)} differ in shape")
    mask = torch.isfinite(obs)
    return _masked_rmse(sim, torch.where(mask, obs, torch.zeros_like(obs)), mask)


def nse_star_loss(sim: torch.Tensor, obs: torch.Tensor, scale: torch.Tensor, eps: float = 0.1) -> torch.Tensor:
    """NSE* (Kratzert et al. 2019, eq. 2): the squared error of each (day, basin) divided by
    (s_b + ε)², s_b the standard deviation of basin b's observed discharge over the training
    period, averaged over the observed pairs. Weights every basin alike, whatever its flow
    volume (a squared-error loss is dominated by the wettest basins).

    Args:
        sim: simulated streamflow [time, site] (mm/d).
        obs: observed streamflow [time, site] (mm/d), NaN where missing (excluded).
        scale: s_b [site] (mm/d).
        eps: ε (0.1 mm/d, the paper's).

    Returns:
        scalar loss (≥ 0).

    Raises:
        ValueError: shapes differ.
    """
    if sim.shape != obs.shape or scale.shape != sim.shape[1:]:
        raise ValueError(f"sim {tuple(sim.shape)}, obs {tuple(obs.shape)} and scale {tuple(scale.shape)} "
                         "do not fit ([time, site], [time, site], [site])")
    mask = torch.isfinite(obs)
    err = torch.where(mask, sim - torch.where(mask, obs, torch.zeros_like(obs)), torch.zeros_like(sim))
    return ((err / (scale + eps)) ** 2).sum() / mask.sum().clamp(min=1)
