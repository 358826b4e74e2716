"""Mini-batch sampler: basins × (warm-up + ρ) day windows from the training period.

Follows the dPL protocol (Feng et al. 2022; Tsai et al. 2021): each mini-batch draws
``batch_size`` basins without replacement and, for each, a random window of ``warmup + rho`` days
inside the training period; the first ``warmup`` days only spin up the HBV states and carry no
loss. A window whose target part (the last ``rho`` days) has no streamflow observation for that
basin is never drawn.
"""

from __future__ import annotations

import math

import numpy as np


class WindowSampler:
    """Draws (basin, start) pairs.

    Args:
        q_obs: observed streamflow of the training period ``[time, site]`` (NaN = missing).
        warmup: warm-up days (no loss), ≥ 0.
        rho: target days per window (loss), ≥ 1.
        batch_size: basins per mini-batch (capped at the number of usable basins).
        seed: RNG seed.
        sites: indices of the sites that may be drawn (the training sites when some are held
            out for validation); None: all.

    Raises:
        ValueError: the training period is shorter than ``warmup + rho`` or no basin has any
            observation in a drawable window (the message says which).
    """

    def __init__(self, q_obs: np.ndarray, warmup: int, rho: int, batch_size: int, seed: int = 0,
                 sites: np.ndarray | None = None):
        nt, nb = q_obs.shape
        self.window = warmup + rho
        if rho < 1 or warmup < 0:
            raise ValueError(f"need rho ≥ 1 and warmup ≥ 0, got rho={rho}, warmup={warmup}")
        if nt < self.window:
            raise ValueError(
                f"training period has {nt} days, shorter than warm-up + rho = {self.window}"
            )
        self.warmup, self.rho = warmup, rho
        self.n_starts = nt - self.window + 1
        obs = np.isfinite(q_obs).astype(np.int64)
        csum = np.concatenate([np.zeros((1, nb), np.int64), np.cumsum(obs, axis=0)])
        starts = np.arange(self.n_starts)
        # observations in the target part of the window starting at s: days s+warmup .. s+window-1
        n_obs = csum[starts + self.window] - csum[starts + warmup]  # [n_starts, basin]
        self.valid = n_obs > 0
        usable = self.valid.any(axis=0)
        if sites is not None:
            usable &= np.isin(np.arange(nb), np.asarray(sites, dtype=np.int64))
        self.basins = np.nonzero(usable)[0]
        if self.basins.size == 0:
            raise ValueError("no site has an observation of the target in any training window")
        self.batch_size = min(batch_size, self.basins.size)
        self.rng = np.random.default_rng(seed)
        self._valid_starts = {int(b): np.nonzero(self.valid[:, b])[0] for b in self.basins}
        # site-days a target window can cover (the first warm-up days never carry loss)
        self.total_days = int(nt - warmup) * int(self.basins.size)

    def iterations_per_epoch(self) -> int:
        """dPL convention (hydroDL ``model/settings.py``): iterations such that each site-day
        after the warm-up is drawn with probability 0.99 per epoch,
        ``ceil(log 0.01 / log(1 − batch·ρ / (n_site·(n_days − warmup))))``."""
        frac = self.batch_size * self.rho / self.total_days
        if frac >= 1:
            return 1
        return max(1, math.ceil(math.log(0.01) / math.log(1.0 - frac)))

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """One mini-batch: (basin indices [batch], window start indices [batch])."""
        basins = self.rng.choice(self.basins, size=self.batch_size, replace=False)
        starts = np.array([self.rng.choice(self._valid_starts[int(b)]) for b in basins])
        return basins, starts

    def gather(self, arr: np.ndarray, basins: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Cut windows out of ``arr [time, site, ...]`` -> ``[window, batch, ...]``."""
        t_idx = starts[None, :] + np.arange(self.window)[:, None]  # [window, batch]
        return arr[t_idx, basins[None, :]]
