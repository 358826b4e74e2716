"""Reading a run's outputs for display: variables with units and bounds, one site at a time.

A run's evaluation writes ``outputs.nc`` (series, dims (site, time)) and ``parameters.nc``
(learned parameters: static (site,), dynamic (site, time)), each variable with ``units``,
``long_name`` and, for parameters, ``valid_min``/``valid_max`` and ``parameter_type``
static|dynamic (core.evaluation.evaluate.simulate). Readers learn names, units and bounds from
these attributes, so a second backbone (other variables, other panels) is displayed without new
code. ``outputs.nc`` also carries ``panels`` (the backbone's time-series groups, JSON) and
``site_kind`` (``basin``: points; ``grid_cell``: grid cells drawn as squares; the value
``core.datasets.load_smap`` gives its cells).

Files are opened lazily and kept open per file version (path, inode, mtime) in a small
process-wide cache, so a click reads one site's rows (a few hundred kB), never the whole file,
and sessions of one server share the handles. An atomic rewrite (re-evaluation) changes the
inode, so the next read opens the new file.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

_OPEN: "OrderedDict[tuple, xr.Dataset]" = OrderedDict()
_LOCK = threading.RLock()  # netCDF4 handles are not thread-safe
MAX_OPEN = 16


#: Units and descriptions of the metrics.csv columns (core.evaluation.evaluate.basin_metrics):
#: what the explorer's maps and tables show.
METRIC_SPECS: dict[str, dict] = {
    "NSE": {"units": "1", "long_name": "Nash-Sutcliffe efficiency (test period)", "group": "metric"},
    "KGE": {"units": "1", "long_name": "Kling-Gupta efficiency (test period)", "group": "metric"},
    "RMSE": {"units": "mm d-1", "long_name": "root-mean-square error of Q", "group": "metric"},
    "PCC": {"units": "1", "long_name": "Pearson correlation of Q_sim with Q_obs", "group": "metric"},
    "BFI_sim": {"units": "1", "long_name": "simulated baseflow index ΣQ2/ΣQ", "group": "signature"},
    "BFI_camels": {"units": "1", "long_name": "CAMELS baseflow_index", "group": "signature"},
    "BFI_diff": {"units": "1", "long_name": "BFI_sim − CAMELS baseflow_index", "group": "signature"},
    "ET_mean": {"units": "mm d-1", "long_name": "mean simulated ET", "group": "signature"},
    "P_mean": {"units": "mm d-1", "long_name": "mean precipitation", "group": "signature"},
    "Q_obs_mean": {"units": "mm d-1", "long_name": "mean observed streamflow", "group": "signature"},
    "P_minus_Q": {"units": "mm d-1", "long_name": "P − Q (water-balance ET)", "group": "signature"},
}


@dataclass(frozen=True)
class Variable:
    """A displayable variable of a run.

    Attributes:
        name: variable name in the file (Q_sim, SM, BETA, ...).
        units: UDUNITS string (mm d-1, mm, degC, 1, d-1).
        long_name: one-line description.
        kind: forcing | state | flux | observation | parameter.
        dims: ("site", "time") for a series or a dynamic parameter; ("site",) for a static one.
        parameter_type: static | dynamic for parameters, else None.
        bounds: (valid_min, valid_max) for parameters, else None.
    """

    name: str
    units: str
    long_name: str
    kind: str
    dims: tuple[str, ...]
    parameter_type: str | None = None
    bounds: tuple[float, float] | None = None


def _key(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (str(path), st.st_ino, st.st_mtime_ns, st.st_size)


def open_run_file(path: str | os.PathLike, **kw) -> xr.Dataset:
    """``xr.open_dataset`` of a run's outputs.nc / parameters.nc with the site dimension named
    ``site``: runs evaluated before sites were generalised (HydroLens ≤ 0.9) call it ``basin``.

    Raises:
        OSError/ValueError: not netCDF.
    """
    ds = xr.open_dataset(path, **kw)
    if "basin" in ds.dims and "site" not in ds.dims:
        ds = ds.rename({"basin": "site"})
        ds.attrs.setdefault("site_kind", "basin")
    return ds


def open_cached(path: str | os.PathLike) -> xr.Dataset:
    """``xr.open_dataset(path)`` kept open per file version (LRU of :data:`MAX_OPEN`).

    Raises:
        FileNotFoundError: no such file. OSError/ValueError: not netCDF.
    """
    path = Path(path)
    key = _key(path)
    if key is None:
        raise FileNotFoundError(f"{path} does not exist")
    with _LOCK:
        ds = _OPEN.get(key)
        if ds is not None:
            _OPEN.move_to_end(key)
            return ds
        for old in [k for k in _OPEN if k[0] == key[0]]:  # an older version of this file
            _OPEN.pop(old).close()
        ds = open_run_file(path, cache=False)
        _OPEN[key] = ds
        while len(_OPEN) > MAX_OPEN:
            _OPEN.popitem(last=False)[1].close()
        return ds


def variables_of(ds: xr.Dataset, default_kind: str) -> list[Variable]:
    """The :class:`Variable` of every data variable of ``ds`` with (site,) or (site, time) dims."""
    out = []
    for name, da in ds.data_vars.items():
        if da.dims not in (("site",), ("site", "time")):
            continue
        a = da.attrs
        bounds = None
        if "valid_min" in a and "valid_max" in a:
            bounds = (float(a["valid_min"]), float(a["valid_max"]))
        kind = a.get("kind", "parameter" if "parameter_type" in a else default_kind)
        if name == "Q_obs":
            kind = "observation"
        out.append(Variable(name=str(name), units=str(a.get("units", "")),
                            long_name=str(a.get("long_name", name)), kind=str(kind),
                            dims=tuple(da.dims), parameter_type=a.get("parameter_type"),
                            bounds=bounds))
    return out


def panels_of(ds: xr.Dataset) -> list[dict]:
    """The time-series panels a run asks for (``panels`` attribute), restricted to the variables
    it has; without the attribute, one panel per (site, time) variable. Each panel: ``title``,
    ``variables``, ``style`` (lines, stacked, bars), ``log`` (log-scale toggle), ``right``
    (variables drawn on a second y-axis; see ``core.physics.spec.HBV_PANELS``) and ``markers``
    (variables drawn as dots: sparse observations such as SMAP)."""
    have = {n for n, v in ds.data_vars.items() if v.dims == ("site", "time")}
    try:
        panels = json.loads(ds.attrs.get("panels", "[]"))
    except ValueError:
        panels = []
    out = []
    for p in panels if isinstance(panels, list) else []:
        names = [v for v in p.get("variables", []) if v in have]
        if names:
            right, dots = p.get("right", []), p.get("markers", [])
            out.append({"title": str(p.get("title", ", ".join(names))), "variables": names,
                        "style": str(p.get("style", "lines")), "log": bool(p.get("log", False)),
                        "right": [v for v in right if v in names] if isinstance(right, list) else [],
                        "markers": [v for v in dots if v in names] if isinstance(dots, list) else []})
    if not out:
        out = [{"title": n, "variables": [n], "style": "lines", "log": False} for n in sorted(have)]
    return out


def site_frame(datasets: list[xr.Dataset], site: str, names: list[str] | None = None) -> pd.DataFrame:
    """One site's (site, time) variables of ``datasets`` as a frame indexed by time.

    Only that site's rows are read. Raises KeyError naming the site when it is not in the files.
    """
    cols: dict[str, np.ndarray] = {}
    time = None
    with _LOCK:
        for ds in datasets:
            basins = ds.indexes["site"]
            if site not in basins:
                raise KeyError(f"site {site!r} is not in this run's outputs")
            i = basins.get_loc(site)
            for n, da in ds.data_vars.items():
                if da.dims != ("site", "time") or (names is not None and n not in names):
                    continue
                cols[str(n)] = np.asarray(da.isel(site=i).values, dtype=float)
                if time is None:
                    time = ds.indexes["time"]
    return pd.DataFrame(cols, index=pd.Index(time if time is not None else [], name="time"))


def static_table(ds: xr.Dataset) -> pd.DataFrame:
    """Per-site values of ``ds``: static variables as they are, dynamic ones as their time mean
    (read in blocks of sites, so memory stays bounded). Index: site id."""
    out = {}
    with _LOCK:
        for n, da in ds.data_vars.items():
            if da.dims == ("site",):
                out[str(n)] = np.asarray(da.values, dtype=float)
            elif da.dims == ("site", "time"):
                nb = da.sizes["site"]
                out[str(n)] = np.concatenate([
                    np.nanmean(np.asarray(da.isel(site=slice(b, b + 64)).values, dtype=float), axis=1)
                    for b in range(0, nb, 64)]) if nb else np.zeros(0)
    return pd.DataFrame(out, index=pd.Index([str(b) for b in ds.indexes["site"]], name="site"))
