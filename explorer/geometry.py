"""Offline map geometry: the CONUS Albers projection and US state outlines.

No tile server and no download: the state outlines come from the `bokeh_sampledata` package
(a HydroLens dependency), Alaska and Hawaii dropped. Coordinates are projected with the
spherical Albers equal-area conic used for CONUS maps (standard parallels 29.5°N and 45.5°N,
origin 23°N 96°W), in kilometres, so the map keeps true areas without any GIS library.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

EARTH_RADIUS_KM = 6371.0
_LAT1, _LAT2, _LAT0, _LON0 = np.radians([29.5, 45.5, 23.0, -96.0])
_N = (np.sin(_LAT1) + np.sin(_LAT2)) / 2
_C = np.cos(_LAT1) ** 2 + 2 * _N * np.sin(_LAT1)
_RHO0 = EARTH_RADIUS_KM * np.sqrt(_C - 2 * _N * np.sin(_LAT0)) / _N

#: States left off the CONUS map.
NON_CONUS = ("AK", "HI")


def albers(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Project longitude/latitude (degrees) to CONUS Albers x/y (km). NaN stays NaN."""
    lon = np.radians(np.asarray(lon, dtype=float))
    lat = np.radians(np.asarray(lat, dtype=float))
    rho = EARTH_RADIUS_KM * np.sqrt(_C - 2 * _N * np.sin(lat)) / _N
    theta = _N * (lon - _LON0)
    return rho * np.sin(theta), _RHO0 - rho * np.cos(theta)


@lru_cache(maxsize=1)
def conus_states() -> dict[str, list]:
    """Projected outlines of the 48 contiguous states and DC, ready for Bokeh ``patches``.

    Returns a column mapping: ``xs``/``ys`` (one array per state; NaN separates the parts of a
    multi-part state) and ``name``. Computed once per process.
    """
    from bokeh.sampledata.us_states import data

    cols: dict[str, list] = {"xs": [], "ys": [], "name": []}
    for code in sorted(data):
        if code in NON_CONUS:
            continue
        state = data[code]
        x, y = albers(state["lons"], state["lats"])
        cols["xs"].append(x)
        cols["ys"].append(y)
        cols["name"].append(state["name"])
    return cols
