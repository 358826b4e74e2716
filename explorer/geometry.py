"""Deprecated shim over `explorer.geomap` (kept while views still import it; to be removed).

`albers` and `conus_states` keep their old signatures and kilometre units, but the projection is
now `explorer.geomap.project` (CONUS Albers, EPSG:5070 parameters on GRS80, via pyproj): there is
one projection implementation. New code should use `explorer.geomap` (metres) directly.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from explorer.geomap import NON_CONUS, project, state_outlines

__all__ = ["NON_CONUS", "albers", "conus_states"]


def albers(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Project longitude/latitude (degrees) to CONUS Albers x/y (km). NaN stays NaN."""
    x, y = project(lon, lat)
    return x / 1000.0, y / 1000.0


@lru_cache(maxsize=1)
def conus_states() -> dict[str, list]:
    """Projected outlines (km) of the 48 contiguous states and DC, ready for Bokeh ``patches``.

    Returns a column mapping: ``xs``/``ys`` (one array per state; NaN separates the parts of a
    multi-part state) and ``name``. Computed once per process.
    """
    outlines = state_outlines()
    return {
        "xs": [x / 1000.0 for x in outlines["x"]],
        "ys": [y / 1000.0 for y in outlines["y"]],
        "name": list(outlines["name"]),
    }
