"""Skill metrics, vectorised over sites, ignoring missing observations (numpy only: the lowest
layer, used by models, training, evaluation, the benchmarks and the explorer).

All functions take ``sim`` and ``obs`` as ``[time]`` or ``[time, site]`` arrays (NaN in ``obs``
= missing; those days are dropped pair-wise) and return a float or ``[site]`` array; a basin
with fewer than 2 observed days gets NaN.
"""

from __future__ import annotations

import warnings

import numpy as np


def _quiet(fn):
    """All-missing basins are expected (they give NaN); silence numpy's empty-slice warnings."""

    def wrapped(sim, obs, *args, **kwargs):
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(sim, obs, *args, **kwargs)

    wrapped.__name__, wrapped.__doc__ = fn.__name__, fn.__doc__
    return wrapped


def _prep(sim, obs):
    sim = np.asarray(sim, dtype=np.float64)
    obs = np.asarray(obs, dtype=np.float64)
    if sim.shape != obs.shape:
        raise ValueError(f"sim {sim.shape} and obs {obs.shape} differ in shape")
    squeeze = sim.ndim == 1
    if squeeze:
        sim, obs = sim[:, None], obs[:, None]
    mask = np.isfinite(obs) & np.isfinite(sim)
    n = mask.sum(0)
    return np.where(mask, sim, np.nan), np.where(mask, obs, np.nan), n, squeeze


def _out(v, n, squeeze, min_pairs: int = 2):
    v = np.where(n >= min_pairs, v, np.nan)
    return float(v[0]) if squeeze else v


@_quiet
def nse(sim, obs):
    """Nash-Sutcliffe efficiency (Nash & Sutcliffe 1970): 1 − Σ(s − o)² / Σ(o − ō)²."""
    s, o, n, sq = _prep(sim, obs)
    num = np.nansum((s - o) ** 2, 0)
    den = np.nansum((o - np.nanmean(o, 0)) ** 2, 0)
    return _out(1.0 - num / den, n, sq)


def _moments(s, o):
    ms, mo = np.nanmean(s, 0), np.nanmean(o, 0)
    ss, so = np.nanstd(s, 0), np.nanstd(o, 0)
    r = np.nanmean((s - ms) * (o - mo), 0) / (ss * so)
    return ms, mo, ss, so, r


@_quiet
def kge(sim, obs):
    """Kling-Gupta efficiency (Gupta et al. 2009): 1 − √((r − 1)² + (α − 1)² + (β − 1)²),
    α = σ_s/σ_o, β = μ_s/μ_o (population standard deviations)."""
    s, o, n, sq = _prep(sim, obs)
    ms, mo, ss, so, r = _moments(s, o)
    return _out(1.0 - np.sqrt((r - 1) ** 2 + (ss / so - 1) ** 2 + (ms / mo - 1) ** 2), n, sq)


@_quiet
def rmse(sim, obs):
    """Root-mean-square error, in the units of the inputs."""
    s, o, n, sq = _prep(sim, obs)
    return _out(np.sqrt(np.nanmean((s - o) ** 2, 0)), n, sq)


@_quiet
def pcc(sim, obs, min_pairs: int = 2):
    """Pearson correlation coefficient r over the pairs where both are finite.

    The one Pearson r of HydroLens: skill of a series (PCC of Li & Lu 2023, Table 2) and r
    across sites (BFI r, ET r of Feng et al. 2022, the explorer's scatter plots).

    Args:
        sim, obs: ``[time]`` or ``[time, site]`` (any pairing of two variables).
        min_pairs: fewer finite pairs than this give NaN (2 for a series; 3 for r across
            sites, where two points always give ±1). A constant input gives NaN.
    """
    s, o, n, sq = _prep(sim, obs)
    return _out(_moments(s, o)[4], n, sq, min_pairs)


METRICS = {"NSE": nse, "KGE": kge, "RMSE": rmse, "PCC": pcc}
