"""Spatial and water-balance diagnostics for the SMAP benchmark (issue 10).

- ``morans_i``: Moran's I of a field over sites (Moran 1950), with row-standardised k-nearest-
  neighbour weights on great-circle distances (pyproj's WGS84 geodesic). Li & Lu (2023, Fig. 5)
  contrast ParaFormer_Z's smooth ``infiltr`` field with SCE-UA's noisy one; I quantifies that.
- ``fu_evaporative_index``: Fu's (1981) form of the Budyko curve, ET/P = 1 + φ − (1 + φ^ω)^(1/ω)
  with aridity φ = PET/P (Zhang et al. 2004), the long-term water-balance check of simulated ET.
"""

from __future__ import annotations

import numpy as np


def knn_weights(lat, lon, k: int = 4) -> np.ndarray:
    """Row-standardised weights [n, n]: 1/k for each of a site's ``k`` nearest other sites
    (geodesic distance on WGS84), 0 elsewhere.

    Raises:
        ValueError: fewer than k + 1 sites, or lat/lon of different lengths.
    """
    from pyproj import Geod

    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    n = lat.size
    if lon.size != n:
        raise ValueError(f"lat has {n} values, lon {lon.size}")
    if n < k + 1:
        raise ValueError(f"Moran's I with {k} neighbours needs at least {k + 1} sites, got {n}")
    i, j = np.triu_indices(n, 1)
    _, _, d = Geod(ellps="WGS84").inv(lon[i], lat[i], lon[j], lat[j])
    dist = np.zeros((n, n))
    dist[i, j] = dist[j, i] = d
    np.fill_diagonal(dist, np.inf)
    w = np.zeros((n, n))
    nearest = np.argsort(dist, axis=1, kind="stable")[:, :k]
    w[np.arange(n)[:, None], nearest] = 1.0 / k
    return w


def morans_i(values, lat, lon, k: int = 4) -> float:
    """Moran's I of ``values`` over sites at (``lat``, ``lon``) in degrees, with ``knn_weights``:
    I = (n / S0)·Σᵢⱼ wᵢⱼ zᵢ zⱼ / Σᵢ zᵢ², z = x − mean(x); sites with a NaN value are dropped.
    +1: neighbours alike (smooth field); about −1/(n − 1): no spatial structure; < 0: neighbours
    unlike (checkerboard).

    Raises:
        ValueError: fewer than k + 1 finite values, or a constant field.
    """
    x = np.asarray(values, float)
    ok = np.isfinite(x)
    x, lat, lon = x[ok], np.asarray(lat, float)[ok], np.asarray(lon, float)[ok]
    w = knn_weights(lat, lon, k)
    z = x - x.mean()
    den = float((z * z).sum())
    if den == 0:
        raise ValueError("Moran's I of a constant field is undefined")
    return float(x.size / w.sum() * (z @ w @ z) / den)


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
