"""CAMELS-US readers: catchment attributes v2.0 and the raw basin time series v1.2.

Sources and formats
-------------------
* Attributes: Addor et al. (2017, HESS 21, 5293-5313), ``camels_attributes_v2.0/camels_*.txt``
  (7 ``;``-separated files keyed by ``gauge_id``; ``NA`` = missing), 671 basins.
* Forcing: Newman et al. (2015, HESS 19, 209-223), ``basin_timeseries_v1p2_metForcing_obsFlow``:
  ``basin_mean_forcing/<source>/<huc_02>/<id>_lump_<tag>_forcing_leap.txt`` with 3 header lines
  (basin-centroid latitude in degrees, mean elevation in m, area in m²), a column header row
  ``Year Mnth Day Hr dayl(s) prcp(mm/day) srad(W/m2) swe(mm) tmax(C) tmin(C) vp(Pa)`` (case
  differs between sources) and whitespace/tab-separated daily rows.
* Streamflow: ``usgs_streamflow/<huc_02>/<id>_streamflow_qc.txt``, whitespace-separated
  ``id year month day discharge(ft3/s) flag`` with flag ``A`` (approved), ``A:e`` (approved,
  estimated) or ``M`` (missing); ``-999`` = missing.

Known quirk of the CAMELS v1.2 files: in the ``maurer`` and ``nldas`` forcing, the ``tmax`` and
``tmin`` columns are identical (the daily mean), so Hargreaves PET from them is 0;
:func:`load_camels_us` warns about it. ``maurer_extended`` (and ``daymet``) have real Tmax/Tmin.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .paths import require_dir, resolve_data_root
from .registry import SourceReader, register
from .schema import (
    CATEGORICAL_ATTRIBUTES,
    COORDINATE_BOUNDS,
    FENG2022_ATTRIBUTES,
    MISSING_CATEGORY_CODE,
    SIGNATURES,
    SITE_COLUMNS,
    BasinNotFoundError,
    DataFormatError,
    cfs_to_mm_per_day,
    daily_time_axis,
    dynamic_dataset,
    join_names,
    numeric_columns,
    pad_gauge_id,
    pad_gauge_ids,
)

__all__ = [
    "ATTRIBUTE_FILES",
    "FORCING_SOURCES",
    "FENG2022_ATTRIBUTES",
    "attach_camels_attributes",
    "camels_attributes_dir",
    "categorical_levels",
    "forcing_path",
    "list_camels_us_basins",
    "load_camels_us",
    "read_camels_attributes",
    "read_forcing",
    "read_streamflow",
    "static_attributes",
    "streamflow_path",
]

ATTRIBUTES_SUBDIR = Path("camels_us") / "camels_attributes_v2.0"
FORCING_SUBDIR = Path("camels_us") / "basin_mean_forcing"
STREAMFLOW_SUBDIR = Path("camels_us") / "usgs_streamflow"

ATTRIBUTE_FILES: tuple[str, ...] = ("clim", "geol", "hydro", "name", "soil", "topo", "vege")
"""The 7 CAMELS-US v2.0 attribute files ``camels_<name>.txt``."""

# Columns HydroLens needs from each attribute file (checked when reading).
_REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "clim": ("p_mean", "pet_mean", "p_seasonality", "frac_snow", "aridity", "high_prec_freq",
             "high_prec_dur", "low_prec_freq", "low_prec_dur"),
    "geol": ("geol_1st_class", "glim_1st_class_frac", "geol_2nd_class", "glim_2nd_class_frac",
             "carbonate_rocks_frac", "geol_porostiy", "geol_permeability"),
    "hydro": ("q_mean", "runoff_ratio", "baseflow_index"),
    "name": ("huc_02", "gauge_name"),
    "soil": ("soil_depth_pelletier", "soil_depth_statsgo", "soil_porosity", "soil_conductivity",
             "max_water_content", "sand_frac", "silt_frac", "clay_frac"),
    "topo": ("gauge_lat", "gauge_lon", "elev_mean", "slope_mean", "area_gages2"),
    "vege": ("frac_forest", "lai_max", "lai_diff", "gvf_max", "gvf_diff", "dom_land_cover_frac",
             "dom_land_cover", "root_depth_50"),
}
# String-valued CAMELS columns (everything else must be numeric).
_STRING_COLUMNS = set(CATEGORICAL_ATTRIBUTES) | {
    "gauge_name", "huc_02", "high_prec_timing", "low_prec_timing"}

FORCING_SOURCES: dict[str, str] = {
    "daymet": "cida",
    "maurer": "maurer",
    "maurer_extended": "maurer",
    "nldas": "nldas",
    "nldas_extended": "nldas",
}
"""Forcing folder name -> file tag in ``<id>_lump_<tag>_forcing_leap.txt``."""

# canonical forcing column -> expected unit (lower case, as in the header "name(unit)")
_FORCING_COLUMNS: dict[str, str] = {
    "dayl": "s", "prcp": "mm/day", "srad": "w/m2", "swe": "mm", "tmax": "c", "tmin": "c",
    "vp": "pa",
}
_FORCING_HEADER = "Year Mnth Day Hr dayl(s) prcp(mm/day) srad(W/m2) swe(mm) tmax(C) tmin(C) vp(Pa)"
_FORCING_TO_VAR = {"prcp": "P", "tmax": "Tmax", "tmin": "Tmin", "srad": "srad", "swe": "swe",
                   "vp": "vp", "dayl": "dayl"}
_STREAMFLOW_FORMAT = ("6 whitespace-separated columns: gauge id, year, month, day, "
                      "discharge (ft3/s, -999 = missing), QC flag (A, A:e, M)")

ADDOR2017 = "CAMELS-US attributes v2.0 (Addor et al. 2017, HESS 21, 5293-5313)"
NEWMAN2015 = "CAMELS-US time series v1.2 (Newman et al. 2015, HESS 19, 209-223)"


# ============================================================================ attributes


def camels_attributes_dir(root: str | Path) -> Path:
    """Return ``<root>/camels_us/camels_attributes_v2.0``.

    Raises:
        FileNotFoundError: the folder does not exist (the message names it).
    """
    return require_dir(Path(root) / ATTRIBUTES_SUBDIR, "CAMELS-US attribute folder",
                       f"camels_{{{','.join(ATTRIBUTE_FILES)}}}.txt from camels_attributes_v2.0.zip")


def _read_attribute_file(path: Path, part: str) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"CAMELS-US attribute file not found: {path}")
    try:
        df = pd.read_csv(path, sep=";", dtype={"gauge_id": str, "huc_02": str},
                         keep_default_na=False, na_values=["NA", ""])
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataFormatError(
            f"{path}: not a ';'-separated CAMELS attribute table ({exc}).") from exc
    expected = ("gauge_id",) + _REQUIRED_COLUMNS[part]
    missing = [c for c in expected if c not in df.columns]
    if missing:
        raise DataFormatError(
            f"{path}: missing column(s) {missing}. Expected a ';'-separated table with columns "
            f"{list(expected)} (CAMELS-US v2.0); found {list(df.columns)}.")
    ids = df["gauge_id"].astype(str).str.strip()
    bad = ids[~ids.str.fullmatch(r"\d{1,8}")]
    if len(bad):
        raise DataFormatError(
            f"{path}: gauge_id must be a USGS id of up to 8 digits; found {bad.iloc[0]!r}.")
    df["gauge_id"] = ids.str.zfill(8)
    if df["gauge_id"].duplicated().any():
        dup = df.loc[df["gauge_id"].duplicated(), "gauge_id"].iloc[0]
        raise DataFormatError(f"{path}: gauge_id {dup} appears more than once.")
    for col in df.columns:
        if df[col].dtype == object and col != "gauge_id":
            df[col] = df[col].str.strip()
    # the numeric columns HydroLens reads: a text value names file, line, column and gauge here
    # (not pandas' bare 'Unable to parse string "abc"' later)
    numeric_columns(df, path, [c for c in _REQUIRED_COLUMNS[part] if c not in _STRING_COLUMNS],
                    "gauge_id", bounds=COORDINATE_BOUNDS)
    return df.set_index("gauge_id")


@functools.lru_cache(maxsize=8)
def _attribute_table(attr_dir: str, stamp: tuple) -> tuple[pd.DataFrame, dict[str, str]]:
    parts, column_file = [], {}
    for part in ATTRIBUTE_FILES:
        path = Path(attr_dir) / f"camels_{part}.txt"
        df = _read_attribute_file(path, part)
        df = df[[c for c in df.columns if c not in column_file]]
        for c in df.columns:
            column_file[c] = path.name
        parts.append(df)
    table = pd.concat(parts, axis=1, join="outer").sort_index()
    table.index.name = "gauge_id"
    if "huc_02" in table:
        huc = table["huc_02"]  # a gauge without a camels_name.txt row stays NaN (see _check_rows)
        table["huc_02"] = huc.astype(str).str.zfill(2).where(huc.notna())
    return table, column_file


def _load_table(root: str | Path) -> tuple[pd.DataFrame, dict[str, str]]:
    d = camels_attributes_dir(root)
    stamp = tuple((p, (d / f"camels_{p}.txt").stat().st_mtime_ns
                   if (d / f"camels_{p}.txt").exists() else None) for p in ATTRIBUTE_FILES)
    return _attribute_table(str(d.resolve()), stamp)


def _check_basins(ids: Sequence[str], available: pd.Index, where: str) -> None:
    known = set(available)
    for b in ids:
        if b not in known:
            raise BasinNotFoundError(b, where, available)


def _check_rows(root: str | Path, table: pd.DataFrame, column_file: dict[str, str],
                ids: Sequence[str]) -> None:
    """Each requested gauge has a row in every attribute file: the outer join of the 7 files
    leaves NaN where one lacks the gauge, which would otherwise pass as missing values (a
    missing camels_topo.txt row gave 0 PET, a missing camels_name.txt row the region 'nan')."""
    files: dict[str, list[str]] = {}
    for col, name in column_file.items():
        files.setdefault(name, []).append(col)
    sub = table.loc[list(ids)]
    for name, cols in files.items():
        empty = sub[cols].isna().all(axis=1)
        if empty.any():
            raise DataFormatError(
                f"{camels_attributes_dir(root) / name}: no row for gauge {empty[empty].index[0]} (the other "
                f"CAMELS attribute files have one); expected one row per gauge_id in each file.")


def read_camels_attributes(root: str | Path, basins: Iterable[str | int] | None = None
                           ) -> pd.DataFrame:
    """Read and join the 7 CAMELS-US v2.0 attribute files.

    Args:
        root: data root (holding ``camels_us/camels_attributes_v2.0/``).
        basins: gauge ids (str or int, padded to 8 digits) to return, in this order;
            ``None`` = all 671 basins, sorted by id.

    Returns:
        ``pandas.DataFrame`` indexed by the 8-character ``gauge_id`` with every column of
        ``camels_{clim,geol,hydro,name,soil,topo,vege}.txt`` (raw units of the CAMELS
        documentation, e.g. ``p_mean`` mm/d, ``area_gages2`` km², ``elev_mean`` m). ``NA`` is
        NaN, string columns are whitespace-stripped, ``huc_02`` is a 2-character string.
        ``df.attrs["column_file"]`` maps each column to its file name.

    Raises:
        FileNotFoundError: the folder or one of the 7 files is missing.
        DataFormatError: a file is not ``;``-separated, lacks ``gauge_id`` or a column HydroLens
            needs, or has a malformed/duplicated id.
        BasinNotFoundError: a requested basin is not among the 671.
    """
    table, column_file = _load_table(root)
    if basins is None:
        out = table.copy()
        out.attrs["column_file"] = dict(column_file)
        return out
    table = table.copy(deep=False)
    table.attrs["column_file"] = dict(column_file)
    return camels_rows(root, table, basins)


def camels_rows(root: str | Path, table: pd.DataFrame, basins: Iterable[str | int]) -> pd.DataFrame:
    """The rows of ``basins`` (in this order) of a full attribute table that
    ``read_camels_attributes(root)`` returned: a loader reads the files once and takes its
    basins' rows from that table.

    Raises:
        BasinNotFoundError: a basin is not among the table's gauges.
        DataFormatError: an attribute file has no row for a basin.
    """
    ids = pad_gauge_ids(basins)
    column_file = table.attrs["column_file"]
    _check_basins(ids, table.index, f"CAMELS-US attributes ({camels_attributes_dir(root)})")
    _check_rows(root, table, column_file, ids)
    out = table.loc[ids].copy()
    out.attrs["column_file"] = dict(column_file)
    return out


def categorical_levels(root: str | Path,
                       names: Sequence[str] = CATEGORICAL_ATTRIBUTES) -> dict[str, list[str]]:
    """Levels of the categorical CAMELS attributes: ``{name: sorted unique stripped strings}``.

    Computed over all 671 basins, so code ``i`` (the index in the list) means the same category
    whichever basins are loaded. Missing values are not a level (their code is
    :data:`~core.datasets.schema.MISSING_CATEGORY_CODE`).
    """
    table, _ = _load_table(root)
    return {n: sorted(table[n].dropna().astype(str).str.strip().unique().tolist()) for n in names}


def static_attributes(root: str | Path, basins: Iterable[str | int] | None = None,
                      names: Sequence[str] = FENG2022_ATTRIBUTES) -> pd.DataFrame:
    """Numeric static attributes for model input (Feng et al. 2022, WRR, Table A1, by default).

    * Categorical attributes (``dom_land_cover``, ``geol_1st_class``, ``geol_2nd_class``) become
      integer codes: the index of the stripped string in the sorted unique values over all 671
      basins (:func:`categorical_levels`); a missing category gets code -1
      (``geol_2nd_class`` is NA where a basin has no second geology class).
    * Missing numeric values (``NA``; e.g. ``root_depth_50`` for 24 basins, ``geol_porostiy``
      for 3) are filled with the median of that attribute over all 671 basins.

    Args:
        root: data root; basins: ids (``None`` = all 671); names: attribute names, in order.

    Returns:
        ``pandas.DataFrame`` (index ``gauge_id``, columns ``names``, float32, no NaN) with
        ``df.attrs``: ``filled`` (names of the attributes that were median-filled for at least
        one of the returned basins), ``fill_values`` ``{name: median over 671 basins}`` for
        those, ``categories`` ``{name: levels}``, ``column_file``.

    Raises:
        ValueError: an unknown attribute name. DataFormatError: a numeric attribute holds text.
        Plus the errors of :func:`read_camels_attributes`.
    """
    table, column_file = _load_table(root)
    unknown = [n for n in names if n not in table.columns]
    if unknown:
        raise ValueError(f"Unknown CAMELS attribute(s) {unknown}; available: {list(table.columns)}")
    ids = list(table.index) if basins is None else pad_gauge_ids(basins)
    _check_basins(ids, table.index, f"CAMELS-US attributes ({camels_attributes_dir(root)})")

    full = pd.DataFrame(index=table.index)
    categories: dict[str, list[str]] = {}
    fill_values: dict[str, float] = {}
    was_na: dict[str, pd.Series] = {}
    for n in names:
        col = table[n]
        if n in _STRING_COLUMNS:
            levels = sorted(col.dropna().astype(str).str.strip().unique().tolist())
            lookup = {v: i for i, v in enumerate(levels)}
            codes = col.map(lambda v: lookup.get(str(v).strip(), MISSING_CATEGORY_CODE)
                            if isinstance(v, str) else MISSING_CATEGORY_CODE)
            full[n] = codes.astype(np.float64)
            categories[n] = levels
            continue
        if col.dtype == object:
            num = pd.to_numeric(col, errors="coerce")
            bad = col[num.isna() & col.notna()]
            if len(bad):
                raise DataFormatError(
                    f"{column_file.get(n, 'camels_*.txt')}: attribute {n!r} must be numeric; "
                    f"found {bad.iloc[0]!r} for basin {bad.index[0]}.")
            col = num
        col = col.astype(np.float64)
        if col.isna().any():
            med = float(col.median())
            was_na[n] = col.isna()
            col = col.fillna(med)
            fill_values[n] = med
        full[n] = col
    out = full.loc[ids, list(names)].astype(np.float32)
    filled = [n for n in names if n in was_na and bool(was_na[n].loc[ids].any())]
    fill_values = {n: fill_values[n] for n in filled}
    out.index.name = "gauge_id"
    out.attrs.update(filled=filled, fill_values=fill_values, categories=categories,
                     column_file={n: column_file.get(n, "") for n in names})
    return out


def attach_camels_attributes(ds: xr.Dataset, root: str | Path,
                             names: Sequence[str] = FENG2022_ATTRIBUTES,
                             attributes: pd.DataFrame | None = None) -> xr.Dataset:
    """Add CAMELS static attributes, signatures and basin coordinates to a dataset.

    Adds, on dim ``basin``: the ``names`` attributes (float32, encoded and filled as in
    :func:`static_attributes`), the signatures ``baseflow_index``, ``q_mean`` (mm/d),
    ``runoff_ratio`` (float32, NaN kept), and coordinates ``gauge_lat``, ``gauge_lon``
    (degrees), ``gauge_name``, ``area`` (km², ``area_gages2``), ``huc_02``. Sets
    ``ds.attrs`` ``static_attributes``, ``filled_attributes``, ``categorical_attributes``,
    ``signatures`` (comma-joined strings), ``missing_category_code``.

    ``attributes``: the full table of ``read_camels_attributes(root)`` when the caller has read
    it already (the loader reads it once per data set); else it is read here.

    Returns:
        A new ``xarray.Dataset``.

    Raises:
        BasinNotFoundError: a basin of ``ds`` has no CAMELS attributes; plus the errors of
        :func:`read_camels_attributes`.
    """
    ids = [str(b) for b in ds["site"].values]
    table = read_camels_attributes(root, ids) if attributes is None else camels_rows(root, attributes, ids)
    column_file = table.attrs["column_file"]
    stat = static_attributes(root, ids, names)
    ds = ds.copy()
    for n in names:
        attrs = {"long_name": f"CAMELS attribute {n}",
                 "source": f"{ADDOR2017}: {column_file.get(n, '')}"}
        if n in stat.attrs["categories"]:
            levels = stat.attrs["categories"][n]
            attrs["flag_values"] = np.arange(len(levels), dtype=np.int32)
            attrs["flag_meanings"] = " ".join(v.replace(" ", "_") for v in levels)
            attrs["missing_code"] = np.int32(MISSING_CATEGORY_CODE)
            attrs["long_name"] += " (integer code of the sorted CAMELS categories)"
        if n in stat.attrs["fill_values"]:
            attrs["fill_value_median"] = stat.attrs["fill_values"][n]
        ds[n] = ("site", stat[n].to_numpy(np.float32), attrs)
    sig_units = {"baseflow_index": "1", "q_mean": "mm d-1", "runoff_ratio": "1"}
    for n in SIGNATURES:
        ds[n] = ("site", pd.to_numeric(table[n]).to_numpy(np.float32),
                 {"units": sig_units[n], "long_name": f"CAMELS hydrological signature {n}",
                  "source": f"{ADDOR2017}: camels_hydro.txt"})
    ds = ds.assign_coords(
        gauge_lat=("site", table["gauge_lat"].to_numpy(np.float64),
                   {"units": "degrees_north", "source": "camels_topo.txt"}),
        gauge_lon=("site", table["gauge_lon"].to_numpy(np.float64),
                   {"units": "degrees_east", "source": "camels_topo.txt"}),
        gauge_name=("site", table["gauge_name"].astype(str).to_numpy(dtype=str),
                    {"source": "camels_name.txt"}),
        area=("site", table["area_gages2"].to_numpy(np.float64),
              {"units": "km2", "long_name": "basin area (CAMELS area_gages2)",
               "source": "camels_topo.txt"}),
        huc_02=("site", table["huc_02"].astype(str).to_numpy(dtype=str),
                {"long_name": "USGS 2-digit hydrologic unit code", "source": "camels_name.txt"}),
    )
    ds.attrs.update(
        static_attributes=join_names(list(names)),
        filled_attributes=join_names(stat.attrs["filled"]),
        categorical_attributes=join_names(list(stat.attrs["categories"])),
        signatures=join_names(list(SIGNATURES)),
        missing_category_code=np.int32(MISSING_CATEGORY_CODE),
        attributes_source=str(camels_attributes_dir(root)),
    )
    return ds


# ============================================================================ time series


def _huc_of(root: str | Path, basin: str) -> str:
    table, _ = _load_table(root)
    if basin not in table.index:
        raise BasinNotFoundError(
            basin, f"CAMELS-US camels_name.txt ({camels_attributes_dir(root)})", table.index)
    return str(table.at[basin, "huc_02"])


def forcing_path(root: str | Path, basin: str | int, source: str = "daymet") -> Path:
    """Path of a basin's CAMELS-US forcing file
    ``camels_us/basin_mean_forcing/<source>/<huc_02>/<id>_lump_<tag>_forcing_leap.txt``.

    The ``huc_02`` folder comes from ``camels_name.txt``; if the file is not there, the other
    region folders are searched. Raises ValueError (unknown source), BasinNotFoundError
    (id not in CAMELS) or FileNotFoundError (naming the expected path).
    """
    if source not in FORCING_SOURCES:
        raise ValueError(f"Unknown CAMELS-US forcing {source!r}; expected one of "
                         f"{sorted(FORCING_SOURCES)}.")
    basin = pad_gauge_id(basin)
    name = f"{basin}_lump_{FORCING_SOURCES[source]}_forcing_leap.txt"
    return _find_in_region(root, Path(root) / FORCING_SUBDIR / source, basin, name, f"{source} forcing")


def streamflow_path(root: str | Path, basin: str | int) -> Path:
    """Path of ``camels_us/usgs_streamflow/<huc_02>/<id>_streamflow_qc.txt`` (other region folders
    searched as a fallback). Raises BasinNotFoundError or FileNotFoundError (naming the path)."""
    basin = pad_gauge_id(basin)
    name = f"{basin}_streamflow_qc.txt"
    return _find_in_region(root, Path(root) / STREAMFLOW_SUBDIR, basin, name, "streamflow")


def _find_in_region(root: str | Path, base: Path, basin: str, name: str, what: str) -> Path:
    """``base/<huc_02 of basin>/name``, else the first ``base/*/name``; FileNotFoundError names
    the expected path."""
    path = base / _huc_of(root, basin) / name
    if path.is_file():
        return path
    found = sorted(base.glob(f"*/{name}"))
    if found:
        return found[0]
    raise FileNotFoundError(f"CAMELS-US {what} file not found: {path}")


def _first_non_number(raw: pd.DataFrame, labels: dict) -> tuple[int, str, str] | None:
    """``(row position, column label, text)`` of the first value of ``raw`` (a table read as
    text, ``keep_default_na=False``) in the columns of ``labels`` (column -> label) that is not a
    finite number; a missing field (empty or NaN) is skipped. None when every value is a number."""
    cols = list(labels)
    text = raw[cols].astype(object)
    num = text.apply(pd.to_numeric, errors="coerce").astype(np.float64)
    given = (text.notna() & (text.astype(str) != "")).to_numpy()
    bad = given & ~np.isfinite(num.to_numpy())
    rows = np.flatnonzero(bad.any(axis=1))
    if not len(rows):
        return None
    i = int(rows[0])
    j = int(np.flatnonzero(bad[i])[0])
    return i, labels[cols[j]], str(text.iat[i, j])


def _first_bad_date(years, months, days) -> int | None:
    """Position of the first (year, month, day) that is not a calendar date, or None."""
    dates = pd.to_datetime(pd.DataFrame({"year": years, "month": months, "day": days}), errors="coerce")
    bad = np.flatnonzero(dates.isna().to_numpy())
    return int(bad[0]) if len(bad) else None


def parse_forcing_file(path: str | Path) -> pd.DataFrame:
    """Parse one CAMELS-US basin-mean forcing file (any source; see the module docstring).

    Returns:
        ``pandas.DataFrame`` indexed by daily ``date`` with float64 columns ``dayl`` (s),
        ``prcp`` (mm/d), ``srad`` (W m-2), ``swe`` (mm), ``tmax``, ``tmin`` (°C), ``vp`` (Pa);
        ``df.attrs``: ``latitude`` (degrees, basin centroid), ``elevation_m``, ``area_m2``,
        ``path``.

    Raises:
        FileNotFoundError: no such file.
        DataFormatError: the 3 numeric header lines, the column header row (names and units,
            compared case-insensitively), the number of fields or the dates are not as in the
            CAMELS-US format; the message names the file, expected and found.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CAMELS-US forcing file not found: {path}")
    with path.open("r", encoding="ascii", errors="replace") as fh:
        head = [fh.readline() for _ in range(4)]
    meta = {}
    labels = {"latitude": "latitude", "elevation_m": "elevation (m)", "area_m2": "area (m2)"}
    for i, key in enumerate(labels):
        try:
            meta[key] = float(head[i].strip())
        except ValueError:
            raise DataFormatError(
                f"{path}: line {i + 1} should be the basin {labels[key]} as a single number "
                f"(CAMELS-US forcing: 3 header lines latitude, elevation m, area m2, then the "
                f"column header row '{_FORCING_HEADER}'); found "
                f"{head[i].strip()!r}.") from None
    tokens = head[3].split()
    lowered = [t.lower() for t in tokens]
    expected_tokens = ["year", "mnth", "day", "hr"] + [
        f"{k}({u})" for k, u in _FORCING_COLUMNS.items()]
    if sorted(lowered) != sorted(expected_tokens) or lowered[:4] != expected_tokens[:4]:
        raise DataFormatError(
            f"{path}: unexpected column header row. Expected (case-insensitive) "
            f"'{_FORCING_HEADER}'; found '{' '.join(tokens)}'.")
    names = [t.split("(")[0] for t in lowered]
    basin = path.name[:8]

    def non_number() -> str | None:  # file, line, column, basin of a value that is no number
        try:
            text = pd.read_csv(path, sep=r"\s+", skiprows=4, header=None, dtype=str,
                               keep_default_na=False, engine="c")
        except (pd.errors.ParserError, ValueError):
            return None
        found = _first_non_number(text, dict(zip(text.columns[:len(tokens)], tokens)))
        if found is None:
            return None
        i, column, value = found
        return (f"{path}, line {i + 5}: column {column!r} of basin {basin} is {value!r}; expected a "
                f"finite number (CAMELS-US forcing has no missing values).")

    try:
        df = pd.read_csv(path, sep=r"\s+", skiprows=4, header=None, names=names,
                         dtype=np.float64, engine="c")
    except (pd.errors.ParserError, ValueError) as exc:
        where = non_number() if not isinstance(exc, pd.errors.ParserError) else None
        raise DataFormatError(where or (
            f"{path}: data rows do not match the {len(names)} columns of the header "
            f"'{' '.join(tokens)}' ({exc}).")) from exc
    if df.isna().any().any() or np.isinf(df.to_numpy()).any():
        where = non_number()
        if where:
            raise DataFormatError(where)
        row = int(np.where(df.isna().any(axis=1))[0][0]) + 5
        raise DataFormatError(f"{path}: line {row} has fewer than the {len(names)} fields "
                              f"of the header '{' '.join(tokens)}'.")
    bad = _first_bad_date(df["year"], df["mnth"], df["day"])
    if bad is not None:
        raise DataFormatError(
            f"{path}, line {bad + 5}: Year/Mnth/Day of basin {basin} is "
            f"{df['year'].iloc[bad]:g}/{df['mnth'].iloc[bad]:g}/{df['day'].iloc[bad]:g}; expected "
            f"a calendar date.")
    dates = pd.to_datetime(pd.DataFrame({"year": df["year"].astype(int),
                                         "month": df["mnth"].astype(int),
                                         "day": df["day"].astype(int)}))
    if not dates.is_monotonic_increasing or dates.duplicated().any():
        raise DataFormatError(f"{path}: dates are not strictly increasing.")
    out = df[list(_FORCING_COLUMNS)].set_index(pd.DatetimeIndex(dates, name="date"))
    out.attrs.update(meta, path=str(path))
    return out


def read_forcing(root: str | Path, basin: str | int, source: str = "daymet") -> pd.DataFrame:
    """Read a basin's CAMELS-US basin-mean daily forcing (Newman et al. 2015).

    Args:
        root: data root; basin: gauge id (str/int, padded); source: ``daymet``, ``maurer``,
            ``maurer_extended``, ``nldas`` or ``nldas_extended`` (the forcing folder).

    Returns:
        See :func:`parse_forcing_file` (columns ``dayl prcp srad swe tmax tmin vp``, daily
        ``date`` index, ``attrs`` with the header latitude/elevation/area); ``attrs["source"]``.

    Raises:
        ValueError, BasinNotFoundError, FileNotFoundError (see :func:`forcing_path`);
        DataFormatError (see :func:`parse_forcing_file`).
    """
    df = parse_forcing_file(forcing_path(root, basin, source))
    df.attrs["source"] = source
    return df


def parse_streamflow_file(path: str | Path, basin: str | int | None = None,
                          area_km2: float | None = None) -> pd.DataFrame:
    """Parse one CAMELS-US ``<id>_streamflow_qc.txt`` file.

    Returns:
        ``pandas.DataFrame`` indexed by daily ``date`` with ``Q_cfs`` (ft³/s, float64, NaN where
        the file says -999), ``qc_flag`` (str: A, A:e, M) and, when ``area_km2`` is given,
        ``Q`` (mm/d, :func:`~core.datasets.schema.cfs_to_mm_per_day`). ``attrs["path"]``.

    Raises:
        FileNotFoundError: no such file.
        DataFormatError: not 6 whitespace-separated columns, a non-numeric date/discharge, or a
            gauge id column different from ``basin``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CAMELS-US streamflow file not found: {path}")
    try:
        # as text, 'NaN' kept as written: a missing field reads as "" (a short line)
        raw = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, keep_default_na=False, engine="c")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataFormatError(f"{path}: expected {_STREAMFLOW_FORMAT} ({exc}).") from exc
    if raw.shape[1] != 6:
        raise DataFormatError(f"{path}: expected {_STREAMFLOW_FORMAT}; found {raw.shape[1]} "
                              f"columns, first row {raw.iloc[0].tolist()}.")
    short = (raw.isna() | (raw == "")).any(axis=1).to_numpy()
    if short.any():
        row = int(np.flatnonzero(short)[0]) + 1
        raise DataFormatError(f"{path}: line {row} has fewer than 6 fields; expected "
                              f"{_STREAMFLOW_FORMAT}.")
    if basin is not None:
        basin = pad_gauge_id(basin)
        ids = raw[0].str.zfill(8)
        if (ids != basin).any():
            raise DataFormatError(f"{path}: gauge id column should be {basin}; found "
                                  f"{ids[ids != basin].iloc[0]}.")
    site = basin if basin is not None else path.name[:8]
    found = _first_non_number(raw, {1: "year", 2: "month", 3: "day", 4: "discharge"})
    if found is not None:
        i, column, value = found
        raise DataFormatError(f"{path}, line {i + 1}: column {column!r} of gauge {site} is "
                              f"{value!r} (non-numeric); expected {_STREAMFLOW_FORMAT}.")
    bad = _first_bad_date(raw[1].astype(float), raw[2].astype(float), raw[3].astype(float))
    if bad is not None:
        raise DataFormatError(f"{path}, line {bad + 1}: year/month/day of gauge {site} is "
                              f"{raw[1].iloc[bad]}/{raw[2].iloc[bad]}/{raw[3].iloc[bad]}; expected a "
                              f"calendar date.")
    dates = pd.to_datetime(pd.DataFrame({"year": raw[1].astype(float).astype(int),
                                         "month": raw[2].astype(float).astype(int),
                                         "day": raw[3].astype(float).astype(int)}))
    q = raw[4].astype(np.float64).to_numpy()
    if not dates.is_monotonic_increasing or dates.duplicated().any():
        raise DataFormatError(f"{path}: dates are not strictly increasing.")
    q[q == -999] = np.nan
    out = pd.DataFrame({"Q_cfs": q, "qc_flag": raw[5].to_numpy()},
                       index=pd.DatetimeIndex(dates, name="date"))
    if area_km2 is not None:
        out["Q"] = cfs_to_mm_per_day(out["Q_cfs"].to_numpy(), area_km2)
    out.attrs["path"] = str(path)
    return out


def read_streamflow(root: str | Path, basin: str | int, area_km2: float | None = None
                    ) -> pd.DataFrame:
    """Read a basin's USGS daily streamflow from CAMELS-US and convert it to mm/d.

    ``Q [mm/d] = Q_cfs * 0.0283168 * 86400 / (area_km2 * 1e3)``; ``area_km2`` defaults to the
    basin's CAMELS ``area_gages2``. ``-999`` (missing) becomes NaN.

    Returns:
        ``pandas.DataFrame`` indexed by daily ``date``: ``Q_cfs`` (ft³/s), ``qc_flag``, ``Q``
        (mm/d); ``attrs`` ``path`` and ``area_km2``.

    Raises:
        BasinNotFoundError, FileNotFoundError (see :func:`streamflow_path`), DataFormatError
        (see :func:`parse_streamflow_file`), ValueError (non-positive area).
    """
    basin = pad_gauge_id(basin)
    path = streamflow_path(root, basin)
    if area_km2 is None:
        area_km2 = float(read_camels_attributes(root, [basin])["area_gages2"].iloc[0])
    out = parse_streamflow_file(path, basin, area_km2)
    out.attrs["area_km2"] = float(area_km2)
    return out


def list_camels_us_basins(root: str | Path, forcing: str = "daymet") -> list[str]:
    """Sorted 8-character ids of basins that have both a ``forcing`` file and a streamflow file
    under ``<root>/camels_us``. Raises FileNotFoundError when the forcing folder is missing."""
    if forcing not in FORCING_SOURCES:
        raise ValueError(f"Unknown CAMELS-US forcing {forcing!r}; expected one of "
                         f"{sorted(FORCING_SOURCES)}.")
    fdir = Path(root) / FORCING_SUBDIR / forcing
    if not fdir.is_dir():
        raise FileNotFoundError(f"CAMELS-US forcing folder not found: {fdir}")
    tag = FORCING_SOURCES[forcing]
    f_ids = {p.name[:8] for p in fdir.glob(f"*/*_lump_{tag}_forcing_leap.txt")}
    q_ids = {p.name[:8] for p in (Path(root) / STREAMFLOW_SUBDIR).glob("*/*_streamflow_qc.txt")}
    return sorted(f_ids & q_ids)


def hargreaves_pet(tmax: pd.Series, tmin: pd.Series, lat_deg: float) -> pd.Series:
    """Hargreaves & Samani (1985) PET in mm/d via ``pyet.hargreaves`` (Jensen et al. 2016 form,
    k = 0.0135), with ``tmean = (tmax + tmin) / 2`` (°C) and latitude in degrees (converted to
    radians for pyet). Needs a daily ``DatetimeIndex``. Days with ``tmax < tmin`` give NaN."""
    import pyet

    tmean = (tmax + tmin) / 2.0
    with np.errstate(invalid="ignore"):
        pet = pyet.hargreaves(tmean, tmax, tmin, lat=float(np.deg2rad(lat_deg)))
    return pd.Series(np.asarray(pet, dtype=np.float64), index=tmax.index, name="PET")


def load_camels_us(root: str | Path, basins: Iterable[str | int] | None = None,
                   forcing: str = "daymet", start=None, end=None, *,
                   attributes: pd.DataFrame | None = None) -> xr.Dataset:
    """Load raw CAMELS-US time series (Newman et al. 2015) with CAMELS attributes.

    Per basin: ``P`` = ``prcp``, ``Tmax``, ``Tmin``, ``T = (Tmax + Tmin) / 2``, ``PET`` =
    Hargreaves via ``pyet.hargreaves(tmean, tmax, tmin, lat)`` with the forcing-header latitude
    (radians), ``srad``, ``swe``, ``vp``, ``dayl`` and ``Q`` = USGS streamflow converted to mm/d
    with ``area_gages2``.

    Args:
        root: data root; basins: ids (``None`` = every basin with forcing and streamflow files);
        forcing: forcing folder (``daymet``, ``maurer``, ``maurer_extended``, ``nldas``, ...);
        start, end: inclusive dates (str or datetime); default = union of the files' ranges.
        attributes: the full CAMELS attribute table (``read_camels_attributes(root)``) when the
            caller has it; else read here.

    Returns:
        The HydroLens dataset (see :mod:`core.datasets.schema`): dims ``(site, time)``,
        float32 ``P T PET Q Tmax Tmin srad swe vp dayl`` plus the static attributes, signatures
        and basin coordinates; ``attrs["source"] = "camels_us/<forcing>"``. Days outside a file's
        range are NaN.

    Raises:
        BasinNotFoundError, FileNotFoundError, DataFormatError (see :func:`read_forcing`,
        :func:`read_streamflow`).

    Warns:
        UserWarning: when a forcing file has ``tmax == tmin`` on every day (CAMELS v1.2
        ``maurer``/``nldas``), where Hargreaves PET is 0.
    """
    if basins is None:
        ids = list_camels_us_basins(root, forcing)
    else:
        ids = pad_gauge_ids(basins)
    if attributes is None:
        attributes = read_camels_attributes(root)
    table = camels_rows(root, attributes, ids)
    frames, flows = [], []
    for b in ids:
        f = read_forcing(root, b, forcing)
        q = read_streamflow(root, b, float(table.at[b, "area_gages2"]))
        frames.append(f)
        flows.append(q)
    time = daily_time_axis([x.index[0] for x in frames + flows],
                           [x.index[-1] for x in frames + flows], start, end)
    nb, nt = len(ids), len(time)
    arrays = {v: np.full((nb, nt), np.nan, np.float32)
              for v in ("P", "T", "PET", "Q", "Tmax", "Tmin", "srad", "swe", "vp", "dayl")}
    degenerate = []
    for i, (f, q) in enumerate(zip(frames, flows)):
        pet = hargreaves_pet(f["tmax"], f["tmin"], f.attrs["latitude"])
        if (f["tmax"] == f["tmin"]).all():
            degenerate.append(f.attrs["path"])
        cols = {_FORCING_TO_VAR[c]: f[c] for c in _FORCING_COLUMNS}
        cols["T"] = (f["tmax"] + f["tmin"]) / 2.0
        cols["PET"] = pet
        for v, s in cols.items():
            arrays[v][i] = s.reindex(time).to_numpy(np.float32)
        arrays["Q"][i] = q["Q"].reindex(time).to_numpy(np.float32)
    if degenerate:
        warnings.warn(
            f"tmax == tmin on every day in {len(degenerate)} {forcing} forcing file(s) "
            f"(e.g. {degenerate[0]}): a known defect of the CAMELS v1.2 {forcing} files; "
            f"Hargreaves PET is 0 there and T is the file's daily mean. Use 'maurer_extended' "
            f"or 'daymet' for real Tmax/Tmin.", UserWarning, stacklevel=2)
    tag = FORCING_SOURCES[forcing]
    fsrc = f"{NEWMAN2015}: basin_mean_forcing/{forcing}/<huc_02>/<id>_lump_{tag}_forcing_leap.txt"
    sources = {v: f"{fsrc}, column {c}" for c, v in _FORCING_TO_VAR.items()}
    sources["T"] = f"(tmax + tmin) / 2 from {fsrc}"
    sources["PET"] = (f"Hargreaves (pyet.hargreaves, k=0.0135) from tmax/tmin and header latitude "
                      f"of {fsrc}")
    sources["Q"] = (f"{NEWMAN2015}: usgs_streamflow/<huc_02>/<id>_streamflow_qc.txt, ft3/s "
                    f"converted with area_gages2")
    ds = dynamic_dataset(ids, time, arrays, sources, f"camels_us/{forcing}", Path(root).resolve())
    # the days every forcing file covers (streamflow may have gaps; they are allowed)
    ds.attrs["data_period"] = (f"{max(f.index[0] for f in frames).date()}.."
                               f"{min(f.index[-1] for f in frames).date()}")
    ds = attach_camels_attributes(ds, root, attributes=attributes)
    ds["header_latitude"] = ("site", np.array([f.attrs["latitude"] for f in frames], np.float64),
                             {"units": "degrees_north",
                              "long_name": "basin-centroid latitude from the forcing file header"})
    ds = ds.set_coords("header_latitude")
    ds.attrs["pet_method"] = "hargreaves (pyet)"
    return ds


# ------------------------------------------------------------------------------ the reader
def basin_site_table(root: str | Path, ids: Sequence[str], names: pd.DataFrame | None = None) -> pd.DataFrame:
    """The site table of gauged basins ``ids``: every CAMELS-US attribute where the root has
    them (NaN otherwise), ``area`` = ``area_gages2`` (km²), and the map columns
    (``SITE_COLUMNS``); ``names`` (a source's own gauge names and coordinates, e.g. Caravan's)
    take precedence where given. Index ``site`` (8-character ids)."""
    try:
        camels = read_camels_attributes(root)
    except (FileNotFoundError, ValueError):
        camels = pd.DataFrame(index=pd.Index([], name="gauge_id"))
    table = camels.reindex(list(ids))
    if "area" not in table and "area_gages2" in table:
        table["area"] = table["area_gages2"]
    if names is not None:
        names = names.reindex(list(ids))
        for c in ("gauge_name", "gauge_lat", "gauge_lon", "area"):
            if c in names:
                table[c] = names[c].where(names[c].notna(), table.get(c))
    for c in SITE_COLUMNS:
        if c not in table:
            table[c] = np.nan
    table.index.name = "site"
    return table


def _site_table(root: str | Path | None, forcing: str | None) -> pd.DataFrame:
    root = resolve_data_root(root)
    return basin_site_table(root, list_camels_us_basins(root, forcing))


def _load(root: Path, ids: list[str], forcing: str | None, start, end, attributes: pd.DataFrame | None) -> xr.Dataset:
    return load_camels_us(root, ids, forcing, start, end, attributes=attributes)


def _source_file(ds: xr.Dataset, basin: str, variable: str) -> str:
    """The CAMELS-US file (and column) ``variable`` of ``basin`` comes from."""
    root = Path(str(ds.attrs.get("data_root", ".")))
    forcing = str(ds.attrs.get("source", "")).split("/", 1)[-1]
    try:
        file = streamflow_path(root, basin) if variable == "Q" else forcing_path(root, basin, forcing)
    except (FileNotFoundError, ValueError, KeyError):
        file = root / "camels_us"
    col = {"P": "prcp(mm/day)", "T": "tmax/tmin", "PET": "Hargreaves from tmax/tmin", "Q": "discharge"}
    return f"{file} ({col.get(variable, variable)})"


#: Raw CAMELS-US (Newman et al. 2015): ``camels_us/<forcing>`` (daymet, maurer, ...).
READER = register(SourceReader("camels_us", "basin", sites=list_camels_us_basins, load=_load,
                               site_table=_site_table, source_file=_source_file,
                               variants=tuple(FORCING_SOURCES), default_variant="daymet",
                               describe=lambda root, forcing: f"CAMELS-US {forcing} forcing + streamflow "
                                                              f"({Path(root) / 'camels_us'})"))
