"""Spatial and water-balance diagnostics for the SMAP benchmark (issue 10).

- ``morans_test`` / ``morans_i``: Moran's I of a field over sites (Moran 1950) with a permutation
  p-value, computed by PySAL (``esda.Moran``) with row-standardised k-nearest-neighbour weights on
  great-circle distances (``libpysal.weights.KNN``). Li & Lu (2023, Fig. 5) contrast
  ParaFormer_Z's smooth ``infiltr`` field with SCE-UA's noisy one; I quantifies that.
- ``fu_evaporative_index``: Fu's (1981) form of the Budyko curve, ET/P = 1 + φ − (1 + φ^ω)^(1/ω)
  with aridity φ = PET/P (Zhang et al. 2004), the long-term water-balance check of simulated ET.

PySAL is imported when a Moran's I is asked for (it takes ~2 s to import; the rest of
``core.evaluation`` does not need it).
"""

from __future__ import annotations

import warnings

import numpy as np

#: mean Earth radius (km), for libpysal's great-circle (arc) distances on lon/lat
EARTH_RADIUS_KM = 6371.0088


def knn_weights(lat, lon, k: int = 4):
    """Row-standardised k-nearest-neighbour weights (``libpysal.weights.KNN`` on great-circle
    distances): each site's ``k`` nearest other sites get 1/k.

    Returns:
        the libpysal ``W`` (``.full()[0]`` gives the dense [n, n] matrix).

    Raises:
        ValueError: fewer than k + 1 sites, or lat/lon of different lengths.
    """
    from libpysal.weights import KNN

    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    n = lat.size
    if lon.size != n:
        raise ValueError(f"lat has {n} values, lon {lon.size}")
    if n < k + 1:
        raise ValueError(f"Moran's I with {k} neighbours needs at least {k + 1} sites, got {n}")
    with warnings.catch_warnings():  # "not fully connected": expected for kNN on a sparse grid
        warnings.simplefilter("ignore", UserWarning)
        w = KNN.from_array(np.c_[lon, lat], k=k, radius=EARTH_RADIUS_KM)
    w.transform = "r"
    return w


def morans_test(values, lat, lon, k: int = 4, permutations: int = 999, seed: int = 0) -> dict[str, float]:
    """Moran's I of ``values`` over sites at (``lat``, ``lon``) in degrees with ``knn_weights``,
    and its pseudo p-value from ``permutations`` random permutations (``esda.Moran``; one-sided
    toward the observed sign, (M + 1)/(permutations + 1)); sites with a NaN value are dropped.
    I near +1: neighbours alike (smooth field); about −1/(n − 1): no spatial structure; < 0:
    neighbours unlike (checkerboard).

    Returns:
        {"I": I, "p": the permutation p-value, "EI": the expectation −1/(n − 1), "n": sites}.

    Raises:
        ValueError: fewer than k + 1 finite values, or a constant field.
    """
    from esda.moran import Moran

    x = np.asarray(values, float)
    ok = np.isfinite(x)
    x, lat, lon = x[ok], np.asarray(lat, float)[ok], np.asarray(lon, float)[ok]
    if x.size and np.ptp(x) == 0:
        raise ValueError("Moran's I of a constant field is undefined")
    w = knn_weights(lat, lon, k)
    state = np.random.get_state()
    np.random.seed(seed)  # esda draws its permutations from numpy's global generator
    try:
        m = Moran(x, w, transformation="r", permutations=permutations)
    finally:
        np.random.set_state(state)
    return {"I": float(m.I), "p": float(m.p_sim) if permutations else float("nan"), "EI": float(m.EI),
            "n": int(x.size)}


def morans_i(values, lat, lon, k: int = 4) -> float:
    """Moran's I alone (``morans_test`` without permutations).

    Raises:
        ValueError: fewer than k + 1 finite values, or a constant field.
    """
    return morans_test(values, lat, lon, k=k, permutations=0)["I"]


def fu_evaporative_index(aridity, omega: float = 2.6):
    """ET/P from Fu's equation, 1 + φ − (1 + φ^ω)^(1/ω), for aridity φ = PET/P ≥ 0 (array or
    scalar, dimensionless); ω = 2.6 is the typical catchment value (Zhang et al. 2004).

    Raises:
        ValueError: ω ≤ 1 (the curve needs ω > 1) or a negative aridity.
    """
    if omega <= 1:
        raise ValueError(f"Fu's ω must be > 1, got {omega}")
    phi = np.asarray(aridity, float)
    if np.any(phi < 0):
        raise ValueError("aridity PET/P must be ≥ 0")
    return 1.0 + phi - (1.0 + phi ** omega) ** (1.0 / omega)
