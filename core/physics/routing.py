"""Gamma unit-hydrograph routing (Feng et al. 2022, eq. 3-4; Mizukami et al. 2016).

The unit hydrograph of a basin is a gamma density with shape α = θa + 0.1 and scale
θ = θb + 0.5 (days), evaluated at t = 0.5, 1.5, ..., L − 0.5 days and normalised to sum 1, so
routing conserves mass apart from what is still in transit at the end of a window.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

UH_LENGTH = 15  # days


def gamma_unit_hydrograph(route_a: torch.Tensor, route_b: torch.Tensor, length: int = UH_LENGTH) -> torch.Tensor:
    """Unit-hydrograph ordinates.

    Args:
        route_a: θa [site], in [0, 2.9] (ROUTING_PARAMETERS).
        route_b: θb [site], in [0, 6.5] days.
        length: number of ordinates L (days).

    Returns:
        weights [L, basin], each column ≥ 0 and summing to 1.

    Computed in log space: w_t ∝ t^(α−1) exp(−t/θ); the constants Γ(α) θ^α cancel in the
    normalisation, so a softmax over t is exact and stable.
    """
    alpha = route_a + 0.1
    theta = route_b + 0.5
    t = torch.arange(length, dtype=route_a.dtype, device=route_a.device).add_(0.5).unsqueeze(1)
    logw = (alpha - 1.0) * torch.log(t) - t / theta
    return torch.softmax(logw, dim=0)


def route(q: torch.Tensor, uh: torch.Tensor, q_before: torch.Tensor | None = None) -> torch.Tensor:
    """Convolve runoff with per-basin unit hydrographs: Q_sim[t] = Σ_k uh[k]·q[t − k].

    Args:
        q: unrouted runoff [time, site] (mm/d).
        uh: unit hydrographs [L, basin] from ``gamma_unit_hydrograph``.
        q_before: the L − 1 days of unrouted runoff preceding the window [L − 1, basin]
            (e.g. the end of the warm-up), so the first days are not starved; zeros if None.

    Returns:
        routed runoff [time, site] (mm/d).
    """
    nt, nb = q.shape
    L = uh.shape[0]
    if uh.shape[1] != nb:
        raise ValueError(f"uh must be [L, {nb}], got {tuple(uh.shape)}")
    if q_before is None:
        q_before = q.new_zeros(L - 1, nb)
    elif q_before.shape != (L - 1, nb):
        raise ValueError(f"q_before must be [{L - 1}, {nb}], got {tuple(q_before.shape)}")
    x = torch.cat([q_before, q], dim=0).T.unsqueeze(0)  # [1, basin, L-1+time]
    w = uh.T.flip(-1).unsqueeze(1)  # [site, 1, L]
    return F.conv1d(x, w, groups=nb).squeeze(0).T
