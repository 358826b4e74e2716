"""Caravan reader (Kratzert et al. 2023, Scientific Data 10, 61; data CC-BY-4.0).

Format: one netCDF file per basin, ``caravan/timeseries/netcdf/camels/camels_<id>.nc``, with
variables on dimension ``date`` (``days since ...``). HydroLens reads four of Caravan's
variables (ERA5-Land forcing and USGS streamflow, all daily):

=========== ============================ ========
HydroLens   Caravan                      units
=========== ============================ ========
``P``       ``total_precipitation_sum``  mm d-1
``T``       ``temperature_2m_mean``      degC
``PET``     ``potential_evaporation_sum`` mm d-1
``Q``       ``streamflow``               mm d-1
=========== ============================ ========

Basin metadata: ``caravan/attributes/camels/attributes_other_camels.csv`` (``gauge_id`` as
``camels_<id>``, ``gauge_name``, ``country``, ``gauge_lat``, ``gauge_lon``, ``area`` km²).

Note: Caravan's ERA5-Land ``potential_evaporation_sum`` is several times larger than CAMELS
``pet_mean`` (median 5.2x over the 432 basins, 1989-2009; 6.9x for 01022500, 14.6 vs 2.1 mm/d)
and is negative on ~0.2 % of days; ``PET`` carries this in its ``comment`` attr.

Note (observed in this workspace for the 4 basins with raw CAMELS-US streamflow): Caravan's
``streamflow`` equals the USGS ft³/s series normalised by the basin area of the CAMELS forcing
file header, not by ``area_gages2``; e.g. for 01022500 Caravan Q is 2.4 % lower than
``cfs -> mm/d`` with ``area_gages2`` (573.6 vs 587.7 km²), at correlation > 0.9999.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import xarray as xr

from .camels_us import attach_camels_attributes, basin_site_table
from .paths import require_dir, resolve_data_root
from .registry import SourceReader, register
from .schema import (
    COORDINATE_BOUNDS,
    BasinNotFoundError,
    DataFormatError,
    daily_time_axis,
    dynamic_dataset,
    numeric_columns,
    pad_gauge_ids,
    units_match,
    VARIABLES,
)

__all__ = [
    "CARAVAN_VARIABLES",
    "caravan_timeseries_dir",
    "list_caravan_basins",
    "load_caravan",
    "read_caravan_attributes",
    "read_caravan_file",
]

TIMESERIES_SUBDIR = Path("caravan") / "timeseries" / "netcdf" / "camels"
ATTRIBUTES_FILE = Path("caravan") / "attributes" / "camels" / "attributes_other_camels.csv"
KRATZERT2023 = "Caravan (Kratzert et al. 2023, Sci. Data 10, 61; CC-BY-4.0)"

CARAVAN_VARIABLES: dict[str, str] = {
    "P": "total_precipitation_sum",
    "T": "temperature_2m_mean",
    "PET": "potential_evaporation_sum",
    "Q": "streamflow",
}
"""HydroLens variable -> Caravan variable."""

PET_COMMENT = (
    "ERA5-Land potential evaporation (sign flipped). Known to be far above other PET estimates "
    "over land: in the 432 CAMELS basins its 1989-2009 mean is a median 5.2x CAMELS pet_mean "
    "(Priestley-Taylor), ~0.2% of days are negative. Check before using it in a water balance.")
_CARAVAN_ORIGIN = {
    "P": "ERA5-Land", "T": "ERA5-Land", "PET": "ERA5-Land", "Q": "USGS observed (CAMELS-US)",
}
_FILE_RE = re.compile(r"^camels_(\d{8})\.nc$")
_DAYS_SINCE = re.compile(
    r"^\s*days\s+since\s+(\d{4}-\d{1,2}-\d{1,2})(?:[ T]00:00(?::00)?(?:\.0*)?)?\s*Z?\s*$")
_ATTR_COLUMNS = ("gauge_id", "gauge_name", "gauge_lat", "gauge_lon", "area")


def caravan_timeseries_dir(root: str | Path) -> Path:
    """Return ``<root>/caravan/timeseries/netcdf/camels``.

    Raises:
        FileNotFoundError: the folder does not exist (the message names it).
    """
    return require_dir(Path(root) / TIMESERIES_SUBDIR, "Caravan time-series folder",
                       "camels_<gauge_id>.nc files from the Caravan netCDF download")


def list_caravan_basins(root: str | Path) -> list[str]:
    """Sorted 8-character gauge ids of the Caravan CAMELS-US basins in the data root
    (one per ``caravan/timeseries/netcdf/camels/camels_<id>.nc``).

    Raises:
        FileNotFoundError: the time-series folder is missing.
    """
    d = caravan_timeseries_dir(root)
    ids = []
    for p in d.iterdir():
        m = _FILE_RE.match(p.name)
        if m:
            ids.append(m.group(1))
    return sorted(ids)


def read_caravan_attributes(root: str | Path) -> pd.DataFrame:
    """Read Caravan's ``attributes_other_camels.csv``.

    Returns:
        ``pandas.DataFrame`` indexed by the 8-character gauge id (the ``camels_`` prefix
        removed) with ``gauge_name`` (str), ``gauge_lat``, ``gauge_lon`` (degrees), ``area``
        (km²) and any other columns of the file (e.g. ``country``).

    Raises:
        FileNotFoundError: the file is missing.
        DataFormatError: a required column is missing or a ``gauge_id`` is not ``camels_<id>``.
    """
    path = Path(root) / ATTRIBUTES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"Caravan attributes file not found: {path}")
    try:
        df = pd.read_csv(path, dtype={"gauge_id": str, "gauge_name": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: not a ','-separated Caravan attribute table ({exc}).") from exc
    missing = [c for c in _ATTR_COLUMNS if c not in df.columns]
    if missing:
        raise DataFormatError(
            f"{path}: missing column(s) {missing}; expected a ','-separated table with columns "
            f"{list(_ATTR_COLUMNS)} (Caravan attributes_other); found {list(df.columns)}.")
    ids = df["gauge_id"].astype(str).str.strip()
    ok = ids.str.fullmatch(r"camels_\d{8}")
    if not ok.all():
        raise DataFormatError(f"{path}: gauge_id should look like 'camels_01022500'; found "
                              f"{ids[~ok].iloc[0]!r}.")
    df["gauge_id"] = ids.str.slice(7)
    if df["gauge_id"].duplicated().any():
        raise DataFormatError(f"{path}: gauge_id camels_{df.loc[df['gauge_id'].duplicated(), 'gauge_id'].iloc[0]} "
                              f"appears more than once.")
    numeric_columns(df, path, ("gauge_lat", "gauge_lon", "area"), "gauge_id", bounds=COORDINATE_BOUNDS)
    return df.set_index("gauge_id")


@functools.lru_cache(maxsize=64)
def _days_since_origin(units: str) -> np.datetime64 | None:
    m = _DAYS_SINCE.match(units)
    return np.datetime64(pd.Timestamp(m.group(1)).date(), "D") if m else None


def _parse_time(path: Path, var) -> np.ndarray:
    """Return the ``date`` variable as datetime64[D]."""
    units = getattr(var, "units", None)
    raw = np.asarray(var[:])
    if units is None:
        raise DataFormatError(f"{path}: variable 'date' has no units attribute; expected "
                              f"'days since YYYY-MM-DD'.")
    origin = _days_since_origin(str(units))
    if origin is not None and np.issubdtype(raw.dtype, np.integer):
        return origin + raw.astype("timedelta64[D]")
    try:
        cal = getattr(var, "calendar", "standard")
        dt = netCDF4.num2date(raw, str(units), calendar=cal, only_use_cftime_datetimes=False,
                              only_use_python_datetimes=True)
        return pd.to_datetime(np.asarray(dt)).values.astype("datetime64[D]")
    except Exception as exc:  # noqa: BLE001 - any failure is a format problem
        raise DataFormatError(f"{path}: cannot decode 'date' with units {units!r} "
                              f"(expected 'days since YYYY-MM-DD'): {exc}") from exc


def _basin_of(path: Path) -> str:
    """The gauge id in a Caravan file name (``camels_<id>.nc``), for messages."""
    m = _FILE_RE.match(path.name)
    return m.group(1) if m else path.stem


def _unpack(var) -> np.ndarray:
    """Read a variable and apply CF packing by hand (``_FillValue``/``missing_value`` -> NaN,
    then ``scale_factor``/``add_offset``); about twice as fast as netCDF4's masked arrays."""
    var.set_auto_maskandscale(False)
    raw = np.asarray(var[:])
    out = raw.astype(np.float64)
    bad = np.zeros(raw.shape, dtype=bool)
    attrs = set(var.ncattrs())
    for key in ("_FillValue", "missing_value"):
        if key in attrs:
            for fv in np.atleast_1d(np.asarray(var.getncattr(key), dtype=raw.dtype)):
                bad |= raw == fv
    if np.issubdtype(raw.dtype, np.floating):
        bad |= np.isnan(raw)
    if "scale_factor" in attrs:
        out *= float(var.getncattr("scale_factor"))
    if "add_offset" in attrs:
        out += float(var.getncattr("add_offset"))
    out[bad] = np.nan
    return out.astype(np.float32)


def read_caravan_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the four HydroLens variables from one Caravan netCDF file.

    Returns:
        ``(dates, values)``: ``dates`` datetime64[D] of length ``n``; ``values`` float32 array
        of shape ``(4, n)`` in the order ``P, T, PET, Q`` (mm/d, °C, mm/d, mm/d; NaN = missing;
        netCDF packing/scale_factor and _FillValue applied).

    Raises:
        FileNotFoundError: no such file.
        DataFormatError: the file is not netCDF, lacks dimension ``date`` or one of the Caravan
            variables, a variable is not on ``date``, a ``units`` attribute is not the expected
            unit (mm/d-like for P, PET, Q; degC for T), or dates are not strictly increasing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Caravan netCDF file not found: {path}")
    try:
        nc = netCDF4.Dataset(path, "r")
    except OSError as exc:
        raise DataFormatError(f"{path}: not a readable netCDF file ({exc}).") from exc
    try:
        expected = list(CARAVAN_VARIABLES.values())
        found = list(nc.variables)
        missing = [v for v in expected + ["date"] if v not in nc.variables]
        if "date" not in nc.dimensions or missing:
            raise DataFormatError(
                f"{path}: expected dimension 'date' and variables {expected + ['date']} "
                f"(Caravan netCDF layout); found dimensions {list(nc.dimensions)} and variables "
                f"{found}.")
        dates = _parse_time(path, nc.variables["date"])
        n = dates.shape[0]
        values = np.empty((len(CARAVAN_VARIABLES), n), dtype=np.float32)
        for k, (hl, cv) in enumerate(CARAVAN_VARIABLES.items()):
            var = nc.variables[cv]
            if var.dimensions != ("date",):
                raise DataFormatError(f"{path}: variable {cv!r} should have dims ('date',); "
                                      f"found {var.dimensions}.")
            if var.dtype == str or np.dtype(var.dtype).kind not in "fiu":
                raise DataFormatError(f"{path}: variable {cv!r} of basin {_basin_of(path)} holds "
                                      f"{np.dtype(var.dtype) if var.dtype != str else 'text'}; expected "
                                      f"numbers ({VARIABLES[hl]['units']}).")
            units = getattr(var, "units", None)
            if units is not None and not units_match(units, VARIABLES[hl]["units"]):
                raise DataFormatError(
                    f"{path}: variable {cv!r} has units {units!r}; expected "
                    f"{VARIABLES[hl]['units']!r} (Caravan {cv} is "
                    f"{'mm/d' if VARIABLES[hl]['units'] == 'mm d-1' else 'degC'}).")
            try:
                values[k] = _unpack(var)
            except (ValueError, TypeError) as exc:  # e.g. a scale_factor that is text
                raise DataFormatError(f"{path}: variable {cv!r} of basin {_basin_of(path)} cannot be "
                                      f"read as numbers: {exc}; check its scale_factor, add_offset and "
                                      f"_FillValue attributes.") from exc
    finally:
        nc.close()
    if n > 1 and not (np.diff(dates) > np.timedelta64(0, "D")).all():
        raise DataFormatError(f"{path}: dates are not strictly increasing.")
    return dates, values


def load_caravan(root: str | Path, basins: Iterable[str | int] | None = None, start=None,
                 end=None, *, attributes: bool | pd.DataFrame = True) -> xr.Dataset:
    """Load Caravan CAMELS-US daily series for ``basins`` onto one daily time axis.

    Each file is opened with netCDF4, its 4 arrays copied into one preallocated float32 block
    and closed (no ``open_mfdataset``). Basins with different date ranges are aligned: NaN
    outside a file's range.

    Args:
        root: data root (``caravan/`` and, for ``attributes=True``, ``camels_us/``).
        basins: ids (str/int, padded to 8 digits); ``None`` = all Caravan CAMELS basins.
        start, end: inclusive dates; default = earliest to latest date over the files.
        attributes: join the CAMELS-US v2.0 static attributes, signatures and basin coordinates
            on the gauge id (:func:`core.datasets.camels_us.attach_camels_attributes`). With
            ``False`` only ``gauge_lat``, ``gauge_lon``, ``gauge_name``, ``area`` come from
            Caravan's ``attributes_other_camels.csv`` (no ``huc_02``, no statics). A table
            (the full ``read_camels_attributes(root)``, read once by the loader) is used as it is.

    Returns:
        The HydroLens dataset (:mod:`core.datasets.schema`): float32 ``P`` (mm d-1), ``T``
        (degC), ``PET`` (mm d-1), ``Q`` (mm d-1, NaN = missing) on ``(site, time)``;
        ``attrs["source"] = "caravan"``.

    Raises:
        FileNotFoundError: the Caravan folder or a file is missing.
        BasinNotFoundError: a requested id has no Caravan file (close ids suggested).
        DataFormatError: see :func:`read_caravan_file`.
    """
    tdir = caravan_timeseries_dir(root)
    available = list_caravan_basins(root)
    if basins is None:
        ids = available
    else:
        ids = pad_gauge_ids(basins)
        known = set(available)
        for b in ids:
            if b not in known:
                raise BasinNotFoundError(b, f"Caravan time series ({tdir}/camels_<id>.nc)",
                                         available)
    if not ids:
        raise ValueError(f"No basins to load from {tdir}.")
    per_file = [read_caravan_file(tdir / f"camels_{b}.nc") for b in ids]
    time = daily_time_axis([pd.Timestamp(d[0]) for d, _ in per_file if len(d)],
                           [pd.Timestamp(d[-1]) for d, _ in per_file if len(d)], start, end)
    t0 = time[0].to_datetime64().astype("datetime64[D]")
    nt = len(time)
    block = np.full((len(CARAVAN_VARIABLES), len(ids), nt), np.nan, dtype=np.float32)
    for i, (dates, values) in enumerate(per_file):
        idx = (dates - t0).astype(np.int64)
        keep = (idx >= 0) & (idx < nt)
        block[:, i, idx[keep]] = values[:, keep]
    arrays = {hl: block[k] for k, hl in enumerate(CARAVAN_VARIABLES)}
    sources = {hl: f"{KRATZERT2023}: caravan/timeseries/netcdf/camels/camels_<id>.nc, variable "
                   f"{cv} ({_CARAVAN_ORIGIN[hl]})" for hl, cv in CARAVAN_VARIABLES.items()}
    ds = dynamic_dataset(ids, time, arrays, sources, "caravan", Path(root).resolve())
    ds["PET"].attrs["comment"] = PET_COMMENT
    spans = [(d[0], d[-1]) for d, _ in per_file if len(d)]
    if spans:  # the days every file covers (forcing and streamflow share Caravan's date axis)
        ds.attrs["data_period"] = (f"{pd.Timestamp(max(a for a, _ in spans)).date()}.."
                                   f"{pd.Timestamp(min(b for _, b in spans)).date()}")
    if isinstance(attributes, pd.DataFrame):
        ds = attach_camels_attributes(ds, root, attributes=attributes)
    elif attributes:
        ds = attach_camels_attributes(ds, root)
    else:
        meta = read_caravan_attributes(root)
        missing = [b for b in ids if b not in meta.index]
        if missing:
            raise BasinNotFoundError(missing[0], f"Caravan attributes ({root}/{ATTRIBUTES_FILE})",
                                     meta.index)
        meta = meta.loc[ids]
        ds = ds.assign_coords(
            gauge_lat=("site", meta["gauge_lat"].to_numpy(np.float64), {"units": "degrees_north"}),
            gauge_lon=("site", meta["gauge_lon"].to_numpy(np.float64), {"units": "degrees_east"}),
            gauge_name=("site", meta["gauge_name"].astype(str).to_numpy(dtype=str)),
            area=("site", meta["area"].to_numpy(np.float64), {"units": "km2"}),
        )
    return ds


# ------------------------------------------------------------------------------ the reader
def _site_table(root: str | Path | None, variant: str | None) -> pd.DataFrame:
    root = resolve_data_root(root)
    ids = list_caravan_basins(root)
    try:
        names = read_caravan_attributes(root)
    except FileNotFoundError:
        names = None
    return basin_site_table(root, ids, names)


def _load(root: Path, ids: list[str], variant: str | None, start, end, attributes: pd.DataFrame | None) -> xr.Dataset:
    return load_caravan(root, ids, start, end, attributes=True if attributes is None else attributes)


def _source_file(ds: xr.Dataset, basin: str, variable: str) -> str:
    """The Caravan netCDF file (and its variable name) ``variable`` of ``basin`` comes from."""
    file = Path(str(ds.attrs.get("data_root", "."))) / TIMESERIES_SUBDIR / f"camels_{basin}.nc"
    return f"{file} (variable {CARAVAN_VARIABLES.get(variable, variable)})"


#: Caravan (Kratzert et al. 2023) netCDF time series of the CAMELS-US basins.
READER = register(SourceReader("caravan", "basin", sites=lambda root, variant: list_caravan_basins(root),
                               load=_load, site_table=_site_table, source_file=_source_file,
                               describe=lambda root, v: f"Caravan time series ({caravan_timeseries_dir(root)})"))
