"""Shared names, units, conversions and errors of the HydroLens dataset type.

Every reader in :mod:`core.datasets` returns one ``xarray.Dataset`` layout:

* dims ``basin`` (coordinate: 8-character zero-padded USGS gauge id, e.g. ``"01022500"``) and
  ``time`` (``datetime64[ns]``, daily, contiguous);
* dynamic variables on ``(site, time)``, float32: ``P``, ``T``, ``PET``, ``Q`` (see
  :data:`VARIABLES` for units), plus ``Tmax``, ``Tmin``, ``srad``, ``swe``, ``vp``, ``dayl`` for
  raw CAMELS-US forcing;
* static variables on ``(site,)``, float32: the 35 CAMELS attributes of Feng et al. (2022,
  WRR 58, e2022WR032404, Table A1), :data:`FENG2022_ATTRIBUTES`, and the CAMELS hydrological
  signatures :data:`SIGNATURES` (checks only, not model inputs);
* basin coordinates ``gauge_lat``, ``gauge_lon`` (degrees), ``gauge_name``, ``area`` (km²,
  CAMELS ``area_gages2``), ``huc_02``;
* ``ds.attrs``: ``source`` (``"caravan"`` or ``"camels_us/<forcing>"``), ``data_root`` and the
  name lists below.

Name lists in ``ds.attrs`` (``static_attributes``, ``filled_attributes``,
``categorical_attributes``, ``signatures``) are stored as **comma-joined strings** (no spaces),
because a plain string round-trips through every netCDF backend unchanged (a one-element list
does not). Read them back with :func:`attr_list`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence

import numpy as np

# ----------------------------------------------------------------------------- names

FENG2022_ATTRIBUTES: tuple[str, ...] = (
    "p_mean", "pet_mean", "p_seasonality", "frac_snow", "aridity", "high_prec_freq",
    "high_prec_dur", "low_prec_freq", "low_prec_dur", "elev_mean", "slope_mean", "area_gages2",
    "frac_forest", "lai_max", "lai_diff", "gvf_max", "gvf_diff", "dom_land_cover_frac",
    "dom_land_cover", "root_depth_50", "soil_depth_pelletier", "soil_depth_statsgo",
    "soil_porosity", "soil_conductivity", "max_water_content", "sand_frac", "silt_frac",
    "clay_frac", "geol_1st_class", "glim_1st_class_frac", "geol_2nd_class",
    "glim_2nd_class_frac", "carbonate_rocks_frac", "geol_porostiy", "geol_permeability",
)
"""The 35 CAMELS static attributes of Feng et al. (2022, WRR, e2022WR032404) Table A1, in the
paper's order. ``geol_porostiy`` is CAMELS's own spelling."""

CATEGORICAL_ATTRIBUTES: tuple[str, ...] = ("dom_land_cover", "geol_1st_class", "geol_2nd_class")
"""String-valued CAMELS attributes; encoded as integer codes of the sorted unique stripped
strings over the whole 671-basin table (missing -> :data:`MISSING_CATEGORY_CODE`)."""

MISSING_CATEGORY_CODE = -1
"""Code of a missing categorical value (CAMELS ``geol_2nd_class`` is NA for 138 basins that have
no second geology class); same convention as ``pandas.factorize``."""

SIGNATURES: tuple[str, ...] = ("baseflow_index", "q_mean", "runoff_ratio")
"""CAMELS hydrological signatures (``camels_hydro.txt``; Addor et al. 2017) kept for checks.
``baseflow_index`` is the Ladson et al. (2013) BFI. Not filled: NaN stays NaN."""

BASIN_COORDS: tuple[str, ...] = ("gauge_lat", "gauge_lon", "gauge_name", "area", "huc_02")
"""Coordinates on the ``basin`` dimension."""

DYNAMIC_VARS: tuple[str, ...] = ("P", "T", "PET", "Q")
"""The dynamic variables every reader returns."""

CAMELS_EXTRA_VARS: tuple[str, ...] = ("Tmax", "Tmin", "srad", "swe", "vp", "dayl")
"""Additional dynamic variables of raw CAMELS-US forcing."""

VARIABLES: dict[str, dict[str, str]] = {
    "P": {"units": "mm d-1", "long_name": "precipitation"},
    "T": {"units": "degC", "long_name": "daily mean air temperature"},
    "PET": {"units": "mm d-1", "long_name": "potential evapotranspiration"},
    "Q": {"units": "mm d-1", "long_name": "observed streamflow (area-normalised; NaN = missing)"},
    "Tmax": {"units": "degC", "long_name": "daily maximum air temperature"},
    "Tmin": {"units": "degC", "long_name": "daily minimum air temperature"},
    "srad": {"units": "W m-2", "long_name": "incident shortwave radiation (daylight average)"},
    "swe": {"units": "mm", "long_name": "snow water equivalent"},
    "vp": {"units": "Pa", "long_name": "water vapour pressure"},
    "dayl": {"units": "s", "long_name": "day length"},
}
"""CF/UDUNITS units and long names of the dynamic variables."""

CFS_TO_M3S = 0.0283168
"""One cubic foot per second in m³/s (as used by the CAMELS-US documentation)."""

# ----------------------------------------------------------------------------- errors


class DataFormatError(ValueError):
    """A data file does not follow its publisher's format.

    The message names the file, what was expected (columns, header, units) and what was found.
    """


class BasinNotFoundError(KeyError):
    """A requested basin id is not available.

    The message names the id, where it was looked for and, when cheap, close ids.
    ``str(err)`` is the plain message (not the quoted ``KeyError`` repr).
    """

    def __init__(self, basin: str, where: str, candidates: Iterable[str] | None = None,
                 kind: str = "Basin"):
        self.basin = basin
        self.where = where
        close: list[str] = []
        if candidates is not None:
            close = difflib.get_close_matches(str(basin), list(candidates), n=3, cutoff=0.75)
        msg = f"{kind} {basin!r} not found in {where}."
        if close:
            msg += f" Close ids: {', '.join(close)}."
        self.message = msg
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would print repr(msg) with quotes
        return self.message


class SiteNotFoundError(BasinNotFoundError):
    """A requested site id that is not a basin (e.g. a grid cell of a gridded dataset) is not
    available.

    Same contract as :class:`BasinNotFoundError` (a subclass, so code catching that one also
    catches this): the message names the id, where it was looked for and, when cheap, close
    ids. ``kind`` words the message (``"Grid cell '4120' not found in ..."``); ``site`` (and
    ``basin``, for the parent's interface) hold the id.
    """

    def __init__(self, site: str, where: str, candidates: Iterable[str] | None = None,
                 kind: str = "Site"):
        super().__init__(site, where, candidates, kind=kind)
        self.site = site


#: Site coordinates that must be present and physically possible wherever a table gives them.
COORDINATE_BOUNDS: dict[str, tuple] = {
    "area": (lambda v: v > 0, "a basin area > 0 km²"),
    "area_gages2": (lambda v: v > 0, "a basin area > 0 km²"),
    "gauge_lat": (lambda v: -90 <= v <= 90, "a latitude in degrees, -90..90"),
    "gauge_lon": (lambda v: -180 <= v <= 180, "a longitude in degrees, -180..180"),
}


def numeric_columns(df, path, columns: Iterable[str], site_column: str, *, first_line: int = 2,
                    site: str = "gauge", bounds: dict | None = None):
    """Check and convert columns of a table read from a file to float64, in place.

    A value that is not a number (``NA``/empty, already NaN, means missing and is kept) or not
    finite (``inf``), or one that fails its ``bounds`` predicate (``{column: (predicate,
    "what is expected")}``, checked for missing values too), raises a DataFormatError naming the
    file, the line (``first_line`` = the line of the first data row), the column, the site (the
    row's ``site_column``) and what was expected.

    Returns:
        ``df`` (the same frame).
    """
    import pandas as pd

    bounds = bounds or {}
    for col in columns:
        if col not in df.columns:
            continue
        text = df[col]
        num = pd.to_numeric(text, errors="coerce").astype(np.float64)
        given = text.notna() & (text.astype(str).str.strip() != "")
        problem = ((given & num.isna()) | np.isinf(num)).to_numpy()
        expected = "a finite number (NA = missing)"
        if not problem.any() and col in bounds:
            test, expected = bounds[col]
            with np.errstate(invalid="ignore"):
                problem = ~np.asarray([bool(test(v)) for v in num.to_numpy()])
        if problem.any():
            i = int(np.flatnonzero(problem)[0])
            value = text.iloc[i]
            shown = repr(value) if isinstance(value, str) else str(value)  # 'abc', but inf, -5.0
            raise DataFormatError(
                f"{path}, line {first_line + i}: column {col!r} of {site} {df[site_column].iloc[i]} is "
                f"{shown}; expected {expected}.")
        df[col] = num
    return df


# ----------------------------------------------------------------------------- helpers

_ID_RE = re.compile(r"^(?:camels_|us_)?(\d{1,8})$")


#: Columns of a site table besides the CAMELS attributes: what a map of sites needs.
SITE_COLUMNS: tuple[str, ...] = ("gauge_name", "gauge_lat", "gauge_lon", "area", "huc_02")


def pad_gauge_id(basin: str | int | np.integer) -> str:
    """Return the 8-character zero-padded USGS gauge id of ``basin``.

    Accepts an int (``1022500``), a digit string with or without its leading zero
    (``"1022500"``, ``"01022500"``, surrounding whitespace ignored) or a Caravan-style id
    (``"camels_01022500"``).

    Raises:
        ValueError: ``basin`` is not 1-8 digits (after removing a ``camels_`` prefix).
    """
    if isinstance(basin, (bool, np.bool_)):
        raise ValueError(f"Invalid gauge id {basin!r}: expected up to 8 digits, e.g. '01022500'.")
    if isinstance(basin, (int, np.integer)):
        if basin < 0:
            raise ValueError(f"Invalid gauge id {basin!r}: must be non-negative.")
        text = str(int(basin))
    else:
        text = str(basin).strip()
    m = _ID_RE.match(text)
    if not m:
        raise ValueError(
            f"Invalid gauge id {basin!r}: expected up to 8 digits (USGS gauge id, e.g. '01022500')."
        )
    return m.group(1).zfill(8)


def pad_gauge_ids(basins: Iterable[str | int]) -> list[str]:
    """:func:`pad_gauge_id` over an iterable; returns a list of 8-character ids (order kept)."""
    return [pad_gauge_id(b) for b in basins]


def cfs_to_mm_per_day(q_cfs, area_km2):
    """Convert discharge from ft³/s to area-normalised runoff in mm/d.

    ``mm/d = cfs * 0.0283168 * 86400 / (area_km2 * 1e3)`` (m³/s -> m³/d, divided by the area in
    m² and multiplied by 1000 mm/m). Works on scalars and numpy arrays; NaN propagates.

    Raises:
        ValueError: ``area_km2`` is not a positive finite number.
    """
    area = float(area_km2)
    if not np.isfinite(area) or area <= 0:
        raise ValueError(f"Basin area must be a positive number of km², got {area_km2!r}.")
    factor = CFS_TO_M3S * 86400.0 / (area * 1e3)
    if np.isscalar(q_cfs):
        return float(q_cfs) * factor
    return np.asarray(q_cfs, dtype=np.float64) * factor


_MM_PER_DAY = {"mm d-1", "mm/d", "mm/day", "mm day-1", "mm d^-1", "mm d**-1", "mm.d-1",
               "mm per day", "kg m-2 d-1"}
_DEG_C = {"degc", "°c", "deg_c", "deg c", "celsius", "degree_celsius", "degrees_celsius", "c"}


def _norm_units(units: str) -> str:
    return " ".join(str(units).strip().lower().replace("day-1", "d-1").split())


_MM_PER_DAY_NORM = frozenset(_norm_units(u) for u in _MM_PER_DAY)


def units_match(found: str, expected: str) -> bool:
    """Whether a file's ``units`` string denotes the ``expected`` CF unit.

    Only the spellings HydroLens needs are recognised: mm/d-like (``"mm d-1"``, ``"mm/day"``,
    ...) and degC-like (``"degC"``, ``"°C"``, ``"Celsius"``...); anything else compares as a
    normalised string.
    """
    f, e = _norm_units(found), _norm_units(expected)
    if e in _MM_PER_DAY_NORM:
        return f in _MM_PER_DAY_NORM
    if e in _DEG_C:
        return f in _DEG_C
    return f == e


def attr_list(ds_or_attrs, key: str) -> list[str]:
    """Read a name-list attribute (stored comma-joined) back as a list of names.

    Accepts an ``xarray.Dataset`` or an attrs mapping; also tolerates a list/tuple/array value
    (e.g. after a netCDF backend turned it into one). Missing or empty -> ``[]``.
    """
    attrs = getattr(ds_or_attrs, "attrs", ds_or_attrs)
    value = attrs.get(key, "")
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in np.atleast_1d(value)]


def join_names(names: Sequence[str]) -> str:
    """Store a name list as an attribute value (comma-joined; see :func:`attr_list`)."""
    return ",".join(names)


def daily_time_axis(starts, ends, start=None, end=None):
    """Daily, contiguous ``DatetimeIndex`` (``datetime64[ns]``) for a set of series.

    Spans from ``start`` (default: the earliest of ``starts``) to ``end`` (default: the latest
    of ``ends``), both inclusive; dates are floored to the day.

    Raises:
        ValueError: ``start`` is after ``end``, or there is nothing to span.
    """
    import pandas as pd

    lo = pd.Timestamp(start) if start is not None else (min(starts) if len(starts) else None)
    hi = pd.Timestamp(end) if end is not None else (max(ends) if len(ends) else None)
    if lo is None or hi is None:
        raise ValueError("Cannot build a time axis: no series and no start/end given.")
    lo, hi = pd.Timestamp(lo).floor("D"), pd.Timestamp(hi).floor("D")
    if lo > hi:
        raise ValueError(f"start {lo.date()} is after end {hi.date()}.")
    return pd.DatetimeIndex(pd.date_range(lo, hi, freq="D").values.astype("datetime64[ns]"),
                            name="time")


def dynamic_dataset(basins, time, arrays, var_sources, source, data_root):
    """Assemble the dynamic part of the HydroLens dataset.

    Args:
        basins: 8-character gauge ids (length ``n_basin``).
        time: daily ``DatetimeIndex`` (length ``n_time``).
        arrays: ``{name: float array (n_basin, n_time)}`` with names from :data:`VARIABLES`.
        var_sources: ``{name: text}`` stored as each variable's ``source`` attr.
        source: ``ds.attrs["source"]``; data_root: ``ds.attrs["data_root"]``.

    Returns:
        ``xarray.Dataset`` with dims ``(site, time)``, float32 variables carrying ``units``,
        ``long_name`` and ``source`` attrs.
    """
    import xarray as xr

    basin_coord = np.asarray([str(b) for b in basins], dtype="<U8")
    time_coord = np.asarray(time, dtype="datetime64[ns]")
    data_vars = {}
    for name, arr in arrays.items():
        attrs = dict(VARIABLES[name])
        attrs["source"] = var_sources.get(name, source)
        data_vars[name] = (("site", "time"), np.asarray(arr, dtype=np.float32), attrs)
    ds = xr.Dataset(data_vars, coords={"site": basin_coord, "time": time_coord})
    ds["site"].attrs = {"long_name": "USGS gauge id (8 characters, zero-padded)"}
    ds["time"].attrs = {"long_name": "date (daily values)"}
    ds.attrs["source"] = source
    ds.attrs["data_root"] = str(data_root)
    return ds
