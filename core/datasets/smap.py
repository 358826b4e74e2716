"""SMAP + NLDAS-2 grid-cell reader (the ParaFormer / dPL soil-moisture data set).

Source: ``docs/paraformer_vic.md`` section 2 ("The data here") and ``data/README.md`` of the
shared workspace. The file ``<data root>/smap_conus/smap_nldas_conus_412.nc`` holds the 412
cells of hydroDL's ``CONUSv4f1`` example data (Fang et al. 2017, GRL 44, 11030): SMAP 36 km
EASE-Grid 2.0 pixels over CONUS, every 4th row and column (about 130-160 km apart), on dims
``(cell, time)``:

============ =========== ===================================================================
variable     units       what
============ =========== ===================================================================
``prcp``     mm d-1      NLDAS-2 precipitation (daily mean of hourly APCP x 24)
``tair``     K           NLDAS-2 2 m air temperature, daily mean
``swdown``   W m-2       NLDAS-2 downward shortwave radiation, daily mean
``lwdown``   W m-2       NLDAS-2 downward longwave radiation, daily mean
``spfh``     kg kg-1     NLDAS-2 2 m specific humidity, daily mean
``wind_u``   m s-1       NLDAS-2 10 m zonal wind, daily mean
``wind_v``   m s-1       NLDAS-2 10 m meridional wind, daily mean
``smap_am``  m3 m-3      SMAP L3 enhanced (SPL3SMP_E) AM surface soil moisture, NaN = none
``bulk``     g cm-3      soil bulk density (static)
``capa``     %           soil water holding capacity (static)
``clay``     %           clay fraction (static)
``sand``     %           sand fraction (static)
``silt``     %           silt fraction (static)
``ndvi``     -           long-term mean NDVI (static)
``lat/lon``  degrees     cell centre
============ =========== ===================================================================

Forcing covers 2015-04-01..2018-03-31 (1096 days); SMAP retrievals exist 2015-04-01..2017-03-31
only (about 42 % of those cell-days have one). :func:`load_smap` returns these on dims
``("site", "time")`` (a site is a grid cell; ids are the cell numbers as strings, ``"0"`` ..
``"411"``) plus the model forcing ``P``, ``T``, ``PET`` under the engine's standard names, and
the grid index ``row``/``col`` used by :func:`smap_splits`.

Known bad cells (doc section 2), each checked against the file by ``tests/test_smap_data.py``:
``386``, ``22``, ``290``, ``302`` have near-constant SMAP (standard deviation of ``smap_am`` <
0.01 m3 m-3; 386 is constant to 1e-7), ``57`` has no soil statics (``bulk``, ``capa``, ``clay``,
``sand``, ``silt`` are NaN). Cell 57 is also broken beyond the doc's note: its ``tair`` is
236-249 K (mean -31 degC) at 30.6 N in Baja California, while the other cells of that grid row
average 17-22 degC, and its specific humidity is then far above saturation.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyet
import xarray as xr

from .paths import DataRootError, candidate_roots
from .registry import SourceReader, register
from .schema import DataFormatError, SiteNotFoundError, join_names, units_match

__all__ = [
    "SMAP_BAD_CELLS",
    "SMAP_DOWNLOAD_HELP",
    "SMAP_FILE",
    "SMAP_PERIODS",
    "SMAP_RAW_DYNAMIC",
    "SMAP_STATICS",
    "fao56_pet",
    "grid_index",
    "load_smap",
    "smap_file",
    "smap_splits",
]

SMAP_FILE = Path("smap_conus") / "smap_nldas_conus_412.nc"
"""Path of the data file relative to the data root."""

SMAP_RAW_DYNAMIC: dict[str, str] = {
    "prcp": "mm d-1", "tair": "K", "swdown": "W m-2", "lwdown": "W m-2", "spfh": "kg kg-1",
    "wind_u": "m s-1", "wind_v": "m s-1", "smap_am": "m3 m-3",
}
"""Dynamic variables of the file (dims ``(cell, time)``) and their expected units."""

SMAP_STATICS: dict[str, str] = {
    "bulk": "g cm-3", "capa": "%", "clay": "%", "sand": "%", "silt": "%", "ndvi": "-",
}
"""Static variables of the file (dim ``(cell,)``) and their expected units."""

_DEFAULT_LONG_NAMES = {
    "prcp": "NLDAS-2 precipitation", "tair": "NLDAS-2 2 m air temperature, daily mean",
    "swdown": "NLDAS-2 downward shortwave radiation, daily mean",
    "lwdown": "NLDAS-2 downward longwave radiation, daily mean",
    "spfh": "NLDAS-2 2 m specific humidity, daily mean",
    "wind_u": "NLDAS-2 10 m zonal wind, daily mean",
    "wind_v": "NLDAS-2 10 m meridional wind, daily mean",
    "smap_am": "SMAP L3 enhanced AM surface soil moisture, NaN = no retrieval",
    "bulk": "soil bulk density", "capa": "soil water holding capacity", "clay": "clay fraction",
    "sand": "sand fraction", "silt": "silt fraction", "ndvi": "long-term mean NDVI",
}

SMAP_BAD_CELLS: dict[str, str] = {
    "386": "near-constant SMAP (sd of smap_am < 0.01 m3 m-3)",
    "22": "near-constant SMAP (sd of smap_am < 0.01 m3 m-3)",
    "290": "near-constant SMAP (sd of smap_am < 0.01 m3 m-3)",
    "302": "near-constant SMAP (sd of smap_am < 0.01 m3 m-3)",
    "57": "no soil statics (bulk, capa, clay, sand, silt NaN); tair also implausible "
          "(mean -31 degC at 30.6 N)",
}
"""Known bad cells (docs/paraformer_vic.md section 2) -> reason; excluded by
:func:`load_smap` unless ``exclude_bad=False``."""

SMAP_PERIODS: dict[str, tuple[str, str]] = {
    "train": ("2015-04-01", "2016-03-31"),
    "test": ("2016-04-01", "2017-03-31"),
    "smap": ("2015-04-01", "2017-03-31"),
    "full": ("2015-04-01", "2018-03-31"),
}
"""Inclusive date ranges (``ds.sel(time=slice(*SMAP_PERIODS["train"]))``). ``train``/``test``
from docs/paraformer_vic.md section 2 (the paper's 2017-18 test year is impossible here: SMAP
ends 2017-03-31); ``smap`` = days with SMAP data in the file; ``full`` = the forcing span."""

COL_ORIGIN_LON = -123.4232
"""Longitude (degrees east) of grid column 0 (doc section 2)."""
COL_SPACING_DEG = 1.49379
"""Column spacing in degrees of longitude: 4 x 360/964, every 4th 36 km EASE-Grid 2.0 column."""

P_KPA = 101.3
"""Air pressure used for PET and vapour pressure (kPa; sea level, FAO-56 eq. 7 at z = 0)."""
ALBEDO = 0.23
"""FAO-56 reference-grass albedo."""
SIGMA_MJ = 4.903e-9
"""Stefan-Boltzmann constant in MJ K-4 m-2 d-1 (FAO-56)."""
_W_TO_MJ_D = 0.0864
"""1 W m-2 over a day in MJ m-2 d-1."""

SMAP_DOWNLOAD_HELP = f"""\
The SMAP + NLDAS-2 grid-cell data set is one netCDF file, expected at

  <root>/{SMAP_FILE.as_posix()}

Layout: dims (cell, time), time daily 2015-04-01..2018-03-31, cell 0..411; variables prcp
(mm d-1), tair (K), swdown, lwdown (W m-2), spfh (kg kg-1), wind_u, wind_v (m s-1, 10 m),
smap_am (m3 m-3, NaN = no retrieval) on (cell, time); bulk (g cm-3), capa, clay, sand, silt (%),
ndvi (-), lat, lon on (cell).

Download
  * hydroDL's CONUSv4f1 example data (Fang et al. 2017, GRL 44, 11030), folder
    example/data/CONUSv4f1 of https://github.com/mhpi/hydroDL: yearly CSV files (each year runs
    April 1 to March 31; -9999 = NaN) 2015/, 2016/, 2017/ with APCP_FORA, TMP_2_FORA,
    DSWRF_FORA, DLWRF_FORA, SPFH_2_FORA, UGRD_10_FORA, VGRD_10_FORA, SMAP_AM, const/ with
    Bulk, Capa, Clay, Sand, Silt, NDVI, and crd.csv (lat, lon). Map them in that order to the
    variable names above (APCP_FORA is kg m-2 per hour: x 24 gives mm d-1) and write the
    netCDF file.
  * original sources: NLDAS-2 forcing (Xia et al. 2012), NASA GES DISC, NLDAS_FORA0125_H;
    SMAP L3 enhanced soil moisture SPL3SMP_E (O'Neill et al.), NASA NSIDC DAAC.

Then pass the root (the folder holding smap_conus/) or set HYDROLENS_DATA_ROOT=<root>.
"""


# ----------------------------------------------------------------------------- files


def smap_file(root: str | os.PathLike | None = None) -> Path:
    """Return the path of ``smap_conus/smap_nldas_conus_412.nc`` under the data root.

    With ``root=None`` the roots of :func:`core.datasets.paths.candidate_roots` are tried in
    order (``HYDROLENS_DATA_ROOT``, ``../shared/data`` beside the repository, ``./data``) and
    the first one holding the file wins.

    Raises:
        DataRootError: no root holds the file; the message lists each expected path and what
            to download (:data:`SMAP_DOWNLOAD_HELP`).
    """
    tried = candidate_roots(root)
    for r in tried:
        path = r / SMAP_FILE
        if path.is_file():
            return path.resolve()
    listing = "\n".join(f"  - {r / SMAP_FILE}" for r in tried)
    raise DataRootError(f"SMAP + NLDAS-2 data file not found. Looked for:\n{listing}\n\n"
                        f"{SMAP_DOWNLOAD_HELP}")


def _check_units(path: Path, name: str, var: xr.DataArray, expected: str) -> None:
    units = var.attrs.get("units")
    if units is None:
        return
    ok = units_match(str(units), expected)
    if expected == "K":
        ok = ok or str(units).strip().lower() in {"k", "kelvin", "degk", "deg_k"}
    if expected == "-":
        ok = ok or str(units).strip().lower() in {"1", "", "none", "dimensionless"}
    if not ok:
        raise DataFormatError(f"{path}: variable {name!r} has units {units!r}; expected "
                              f"{expected!r}.")


def _read_file(path: Path) -> xr.Dataset:
    """Open, validate and load the file (dims ``(cell, time)``)."""
    try:
        with xr.open_dataset(path) as f:
            raw = f.load()
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"{path}: not a readable netCDF file ({exc}).") from exc
    for dim in ("cell", "time"):
        if dim not in raw.dims:
            raise DataFormatError(f"{path}: missing dimension {dim!r}; expected dims "
                                  f"('cell', 'time'), found {tuple(raw.dims)}.")
    for name, units in {**SMAP_RAW_DYNAMIC, **SMAP_STATICS}.items():
        want = ("cell", "time") if name in SMAP_RAW_DYNAMIC else ("cell",)
        if name not in raw.variables:
            found = sorted(map(str, raw.variables))
            raise DataFormatError(f"{path}: missing variable {name!r} (expected on dims {want} "
                                  f"in {units}); found variables {found}.")
        if raw[name].dims != want:
            raise DataFormatError(f"{path}: variable {name!r} has dims {raw[name].dims}; "
                                  f"expected {want}.")
        if raw[name].dtype.kind not in "fiu":
            kind = "text" if raw[name].dtype.kind in "OSU" else f"{raw[name].dtype}"
            raise DataFormatError(f"{path}: variable {name!r} holds {kind} values; expected numbers "
                                  f"(units {units!r}).")
        _check_units(path, name, raw[name], units)
    for name, (lo, hi) in {"lat": (-90, 90), "lon": (-180, 180)}.items():
        if name not in raw.variables or raw[name].dims != ("cell",):
            raise DataFormatError(f"{path}: missing variable {name!r} on dims ('cell',) (cell "
                                  f"centre in degrees).")
        values = raw[name].values
        if values.dtype.kind not in "fiu":
            raise DataFormatError(f"{path}: variable {name!r} holds {values.dtype} values; expected "
                                  f"degrees.")
        off = ~((values >= lo) & (values <= hi))
        if off.any():
            i = int(np.flatnonzero(off)[0])
            raise DataFormatError(f"{path}: variable {name!r} of cell {raw['cell'].values[i]} is "
                                  f"{values[i]}; expected degrees in {lo}..{hi}.")
    cells = pd.Index([_normalise_id(c) for c in raw["cell"].values])
    if cells.duplicated().any():
        raise DataFormatError(f"{path}: cell id {cells[cells.duplicated()][0]!r} appears more than "
                              f"once in 'cell'.")
    time = raw["time"].values
    if not np.issubdtype(time.dtype, np.datetime64):
        raise DataFormatError(f"{path}: 'time' is not a decodable CF time axis "
                              f"(dtype {time.dtype}).")
    if len(time) > 1 and not (np.diff(time) == np.timedelta64(1, "D")).all():
        raise DataFormatError(f"{path}: 'time' is not daily and contiguous.")
    return raw


# ----------------------------------------------------------------------------- grid index


def grid_index(lat, lon, *, path: str | os.PathLike = "<lat/lon>") -> tuple[np.ndarray, np.ndarray]:
    """Grid row and column of each cell (docs/paraformer_vic.md section 2).

    * row r = rank of the cell's latitude, 0 = northernmost. The cells lie on rows of the
      EASE-Grid 2.0 (a cylindrical equal-area grid), so every cell of a grid row has the same
      latitude: in the real file the 412 latitudes take 18 distinct values, each shared
      bit-for-bit by 9-31 cells (rows 0..17; row spacing 1.26-1.71 degrees, widest in the
      south). Ties are therefore the rule, and the rank is a *dense* rank (pandas
      ``method="dense"``) of the latitudes rounded to 1e-4 degree: tied cells share a row and
      rows are consecutive integers. An ordinal or "min" rank would number cells, not rows, and
      break the parity rules of :func:`smap_splits`.
    * column c = round((lon + 123.4232) / 1.49379) (0..37 in the real file, off-grid by at most
      0.0004 columns).

    Args:
        lat, lon: cell centres (degrees), 1-D arrays of equal length.
        path: named in errors.

    Returns:
        ``(row, col)``, int64 arrays of the same length.

    Raises:
        DataFormatError: a longitude is more than 0.1 column off the grid, or two cells get the
            same (row, col).
    """
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    row = (pd.Series(-np.round(lat, 4)).rank(method="dense").to_numpy() - 1).astype(np.int64)
    x = (lon + 123.4232) / COL_SPACING_DEG
    col = np.round(x).astype(np.int64)
    off = np.abs(x - col)
    if off.size and off.max() > 0.1:
        i = int(off.argmax())
        raise DataFormatError(f"{path}: longitude {lon[i]} of cell index {i} is {off[i]:.2f} "
                              f"columns off the grid c = (lon + 123.4232) / 1.49379.")
    pairs = pd.Series(list(zip(row.tolist(), col.tolist())))
    if pairs.duplicated().any():
        i = int(np.flatnonzero(pairs.duplicated().to_numpy())[0])
        raise DataFormatError(f"{path}: two cells share grid row/col {pairs.iloc[i]}.")
    return row, col


# ----------------------------------------------------------------------------- PET


def fao56_pet(tair, spfh, swdown, lwdown, wind_u, wind_v, *, pressure: float = P_KPA,
              albedo: float = ALBEDO):
    """FAO-56 Penman-Monteith reference evapotranspiration (Allen et al. 1998, eq. 6) from
    NLDAS-2 daily means, computed with ``pyet.pm_fao56``.

    Inputs (same shape, xarray DataArrays or numpy arrays): ``tair`` (K), ``spfh`` (kg kg-1),
    ``swdown``, ``lwdown`` (W m-2), ``wind_u``, ``wind_v`` (m s-1, at 10 m). Steps:

    * T = tair - 273.15 (degC), the daily mean (no Tmax/Tmin in the data: e_s = e°(T), eq. 11).
    * Pressure ``pressure`` = 101.3 kPa everywhere (the file has no elevation; this is the
      sea-level value of FAO-56 eq. 7, so the psychrometric constant gamma = 0.665e-3 P (eq. 8)
      is overestimated at high cells: by ~17 % at 1500 m).
    * Actual vapour pressure e_a = q P / (0.622 + 0.378 q) (kPa), capped at e_s: daily-mean q and
      T are not a consistent pair (e° is convex), and e_a > e_s happens on 3.6 % of the usable
      cell-days (up to 1.33 e_s; cell 57 up to 39 e_s), which would make the aerodynamic term
      negative.
    * Wind: u10 = |(wind_u, wind_v)| of the daily-mean components (a lower bound of the daily
      mean speed), u2 = u10 * 4.87 / ln(67.8 * 10 - 5.42) (FAO-56 eq. 47, u2 = 0.748 u10).
    * Net radiation (MJ m-2 d-1) from the NLDAS fluxes instead of FAO-56's empirical eq. 39:
      Rn = (1 - albedo) Rs + Rl_down - sigma T_K^4, albedo 0.23 (reference grass), surface
      emissivity 1 at air temperature, as in FAO-56 eq. 39's sigma T^4 term; W m-2 x 0.0864.
      Compared with pyet's own eq. 39 net longwave (from Rs, latitude and e_a) this gives a
      lower annual PET on every usable cell (per-cell ratio 0.72-0.96, median 0.87; median
      annual PET 2.52 vs 2.95 mm d-1).
    * Soil heat flux G = 0 (daily step, FAO-56 eq. 42). PET < 0 (Rn < 0 on cold days) is set
      to 0 (``clip_zero``; 2.7 % of the usable cell-days).

    On the 407 usable cells the 2015-04..2018-03 mean PET ranges 1.05 (cell 5, 49.9 N, British
    Columbia) .. 4.77 mm d-1 (cell 81, 32.0 N, Arizona), median 2.52.

    Returns:
        PET in mm d-1, float64, same shape/type as the inputs (NaN where an input is NaN).
    """
    tmean = tair - 273.15
    es = 0.6108 * np.exp(17.27 * tmean / (tmean + 237.3))
    ea = spfh * pressure / (0.622 + 0.378 * spfh)
    ea = np.minimum(ea, es)
    u2 = np.hypot(wind_u, wind_v) * 4.87 / np.log(67.8 * 10.0 - 5.42)
    rn = ((1.0 - albedo) * swdown + lwdown) * _W_TO_MJ_D - SIGMA_MJ * tair ** 4
    if not isinstance(tmean, xr.DataArray):  # pyet's clip_zero needs pandas/xarray objects
        tmean, u2, rn, ea = (xr.DataArray(np.asarray(a, dtype=np.float64))
                             for a in (tmean, u2, rn, ea))
        return np.asarray(pyet.pm_fao56(tmean, u2, rn=rn, g=0, pressure=pressure, ea=ea,
                                        clip_zero=True))
    return pyet.pm_fao56(tmean, u2, rn=rn, g=0, pressure=pressure, ea=ea, clip_zero=True)


# ----------------------------------------------------------------------------- reader


def _normalise_id(cell) -> str:
    if isinstance(cell, (bool, np.bool_)):
        raise ValueError(f"Invalid grid-cell id {cell!r}: expected a cell number, e.g. '386'.")
    if isinstance(cell, (int, np.integer)):
        return str(int(cell))
    text = str(cell).strip()
    return str(int(text)) if text.isdigit() else text


def load_smap(root: str | os.PathLike | None = None, cells: Iterable[str | int] | None = None,
              *, exclude_bad: bool = True) -> xr.Dataset:
    """Load the SMAP + NLDAS-2 grid-cell data set (docs/paraformer_vic.md section 2).

    Args:
        root: data root holding ``smap_conus/smap_nldas_conus_412.nc``; ``None`` = the first of
            ``HYDROLENS_DATA_ROOT``, ``../shared/data``, ``./data`` that holds the file.
        cells: cell ids (``"386"`` or ``386``; order kept), names of cell sets of
            :func:`smap_splits` (``"SPARSE"``, ``"ng"``: their cells in file order) or a mix of
            both (a cell kept once, at its first place); ``None`` = every usable cell (all 412
            minus :data:`SMAP_BAD_CELLS` when ``exclude_bad``), in file order.
        exclude_bad: drop the known bad cells :data:`SMAP_BAD_CELLS` (386, 22, 290, 302: sd of
            SMAP < 0.01; 57: no statics).

    Returns:
        ``xarray.Dataset`` on dims ``("site", "time")`` (n_site <= 412, n_time = 1096, daily
        2015-04-01..2018-03-31):

        * coordinates ``site`` (str cell id), ``time``, and per site ``lat``, ``lon`` (degrees),
          ``row``, ``col`` (int grid index, see :func:`grid_index`; computed on all 412 cells,
          so it does not depend on ``cells``);
        * raw variables under the publisher's names, float32: ``prcp`` (mm d-1), ``tair`` (K),
          ``swdown``, ``lwdown`` (W m-2), ``spfh`` (kg kg-1), ``wind_u``, ``wind_v`` (m s-1),
          ``smap_am`` (m3 m-3, NaN = no retrieval; all NaN after 2017-03-31) on
          ``(site, time)``; statics ``bulk`` (g cm-3), ``capa``, ``clay``, ``sand``, ``silt``
          (%), ``ndvi`` (-) on ``(site,)``;
        * model forcing, float32 on ``(site, time)``: ``P`` = prcp (mm d-1), ``T`` = tair -
          273.15 (degC), ``PET`` (mm d-1, >= 0, FAO-56 Penman-Monteith, :func:`fao56_pet`);
          the target is ``smap_am``.

        Every variable carries ``units``, ``long_name`` and ``source``. ``ds.attrs``:
        ``source`` ("smap_conus"), ``data_root``, ``file``, ``site_kind`` ("grid_cell"),
        ``static_attributes`` (comma-joined, read with ``attr_list``), ``bad_cells`` (the known
        bad ids), ``excluded_cells`` (the ids dropped in this load; "" when none),
        ``excluded_cells_reason``, ``data_period``, ``smap_period``.

    Raises:
        DataRootError: the file is missing (the message names the expected path and what to
            download).
        DataFormatError: the file is not netCDF, lacks dim ``cell``/``time`` or a required
            variable, a variable has unexpected dims or units, time is not daily and
            contiguous, or the cells are not on the grid (:func:`grid_index`).
        SiteNotFoundError: a requested cell id is not in the file (a ``KeyError``; the message
            names the file and the id).
        ValueError: a requested cell is a known bad cell while ``exclude_bad`` is true, a cell
            is requested twice, or ``cells`` is empty.
    """
    path = smap_file(root)
    raw = _read_file(path)
    ids = np.asarray([_normalise_id(c) for c in raw["cell"].values])
    row, col = grid_index(raw["lat"].values, raw["lon"].values, path=path)
    bad = [c for c in SMAP_BAD_CELLS if c in set(ids)] if exclude_bad else []
    position = {c: i for i, c in enumerate(ids)}
    if cells is None:
        wanted = [c for c in ids if c not in set(bad)]
    else:
        tokens = [cells] if isinstance(cells, (str, int)) else list(cells)
        if any(not str(t).strip().isdigit() for t in tokens):  # set names: expand in place
            splits = _splits(ids, row, col, exclude_bad)
            expanded = []
            for t in tokens:
                name = str(t).strip().upper()
                # an unknown name is checked as an id below (SiteNotFoundError)
                expanded += splits[name] if name in splits else [t]
            tokens = list(dict.fromkeys(_normalise_id(t) for t in expanded))
        wanted = [_normalise_id(c) for c in tokens]
        for c in wanted:
            if c not in position:
                raise SiteNotFoundError(c, f"the SMAP grid cells of {path} (ids 0..{len(ids) - 1}, or a "
                                        f"cell set: {', '.join(_splits([], [], []))})", ids, kind="Grid cell")
            if c in bad:
                raise ValueError(f"Grid cell {c!r} of {path} is a known bad cell "
                                 f"({SMAP_BAD_CELLS[c]}); pass exclude_bad=False to load it.")
        dup = pd.Index(wanted)[pd.Index(wanted).duplicated()]
        if len(dup):
            raise ValueError(f"Grid cell {dup[0]!r} requested twice.")
    if not wanted:
        raise ValueError(f"No grid cells to load from {path}.")
    idx = np.asarray([position[c] for c in wanted], dtype=np.int64)
    sub = raw.isel(cell=idx)

    src = f"{path.name} (hydroDL CONUSv4f1; NLDAS-2, SMAP SPL3SMP_E)"
    data_vars = {}
    for name, units in {**SMAP_RAW_DYNAMIC, **SMAP_STATICS}.items():
        dims = ("site", "time") if name in SMAP_RAW_DYNAMIC else ("site",)
        attrs = {"units": units,
                 "long_name": str(raw[name].attrs.get("long_name", _DEFAULT_LONG_NAMES[name])),
                 "source": f"{src}, variable {name}"}
        data_vars[name] = (dims, sub[name].values.astype(np.float32), attrs)
    pet = fao56_pet(sub["tair"].astype("float64"), sub["spfh"].astype("float64"),
                    sub["swdown"].astype("float64"), sub["lwdown"].astype("float64"),
                    sub["wind_u"].astype("float64"), sub["wind_v"].astype("float64"))
    data_vars["P"] = (("site", "time"), sub["prcp"].values.astype(np.float32),
                      {"units": "mm d-1", "long_name": "precipitation (NLDAS-2 prcp)",
                       "source": f"{src}, variable prcp"})
    data_vars["T"] = (("site", "time"), (sub["tair"].values.astype(np.float64) - 273.15)
                      .astype(np.float32),
                      {"units": "degC", "long_name": "daily mean air temperature (tair - 273.15)",
                       "source": f"{src}, variable tair"})
    data_vars["PET"] = (("site", "time"), np.asarray(pet.transpose("cell", "time").values,
                                                     dtype=np.float32),
                        {"units": "mm d-1",
                         "long_name": "potential evapotranspiration (FAO-56 Penman-Monteith, "
                                      "pyet.pm_fao56)",
                         "source": f"{src}, variables tair, spfh, swdown, lwdown, wind_u, wind_v",
                         "comment": f"P = {P_KPA} kPa, albedo {ALBEDO}, Rn = (1-albedo) swdown "
                                    "+ lwdown - sigma tair^4, u2 = 0.748 |u10|, e_a from spfh "
                                    "capped at e_s(T), G = 0, PET >= 0; see "
                                    "core.datasets.smap.fao56_pet"})
    ds = xr.Dataset(data_vars, coords={
        "site": ("site", np.asarray(wanted, dtype=str),
                 {"long_name": "grid-cell id (cell number in the file, as a string)"}),
        "time": ("time", raw["time"].values.astype("datetime64[ns]"),
                 {"long_name": "date (daily values)"}),
        "lat": ("site", sub["lat"].values.astype(np.float64),
                {"units": "degrees_north", "long_name": "cell-centre latitude"}),
        "lon": ("site", sub["lon"].values.astype(np.float64),
                {"units": "degrees_east", "long_name": "cell-centre longitude"}),
        "row": ("site", row[idx], {"units": "1", "long_name": "grid row (dense rank of latitude, "
                                   "0 = northernmost)"}),
        "col": ("site", col[idx], {"units": "1", "long_name": "grid column, round((lon + "
                                   "123.4232) / 1.49379)"}),
    })
    t = pd.DatetimeIndex(ds["time"].values)
    ds.attrs.update({
        "source": "smap_conus",
        "data_root": str(path.parents[1]),
        "file": str(path),
        "site_kind": "grid_cell",
        "static_attributes": join_names(list(SMAP_STATICS)),
        "bad_cells": join_names(list(SMAP_BAD_CELLS)),
        "excluded_cells": join_names(bad),
        "excluded_cells_reason": ("; ".join(f"{c}: {SMAP_BAD_CELLS[c]}" for c in bad)
                                  if bad else "none excluded (exclude_bad=False)"),
        "data_period": f"{t[0].date()}..{t[-1].date()}" if len(t) else "",
        "smap_period": "..".join(SMAP_PERIODS["smap"]),
    })
    return ds


# ----------------------------------------------------------------------------- splits


def smap_splits(ds: xr.Dataset, *, exclude_bad: bool = True) -> dict[str, list[str]]:
    """Named cell sets of docs/paraformer_vic.md section 2, from ``ds``'s ``row``/``col``.

    With r = ``row``, c = ``col`` (see :func:`grid_index`), over the sites of ``ds`` (minus
    :data:`SMAP_BAD_CELLS` when ``exclude_bad``, even if ``ds`` was loaded with them):

    * ``"ALL"``: every usable cell;
    * ``"SPARSE"`` (the paper's DAS-S8 analogue): r even and c even (104 of the 407 usable);
    * ``"NG"`` (unseen neighbours, never trained on): r even and c odd (102);
    * ``"DENSE"`` (the DAS-S4 analogue): every usable cell except NG (305);
    * ``"VAL"``: r odd and c odd (≈ 100), disjoint from SPARSE, NG and the scaling sets up to
      SCALE_206: validation cells for a run trained on those (``data.val_sites``; picks the
      best epoch and stops early without touching a test split); inside DENSE;
    * dPL scaling curve (Tsai et al. 2021), nested training sets tested on NG:
      ``"SCALE_29"``: r % 4 == 0 and c % 4 == 0 (29); ``"SCALE_104"`` = SPARSE;
      ``"SCALE_206"``: SPARSE plus the r odd, c even cells (205; the doc names the size only,
      this is the nested set between SPARSE and DENSE closest to it); ``"SCALE_305"`` = DENSE.

    Sizes are those of the full 412-cell file with the 5 bad cells excluded. SCALE_29 ⊂
    SCALE_104 ⊂ SCALE_206 ⊂ SCALE_305, NG is disjoint from all of them, and VAL from all but
    SCALE_305 (= DENSE).

    Returns:
        ``{name: [site id, ...]}`` in ``ds`` order.

    Raises:
        KeyError: ``ds`` lacks the ``row``/``col`` coordinates (load it with :func:`load_smap`).
    """
    for need in ("row", "col"):
        if need not in ds.coords and need not in ds.variables:
            raise KeyError(f"smap_splits needs the {need!r} coordinate (load with load_smap).")
    return _splits([str(s) for s in ds["site"].values], ds["row"].values, ds["col"].values, exclude_bad)


def _splits(sites, row, col, exclude_bad: bool = True) -> dict[str, list[str]]:
    """:func:`smap_splits` of cell ids ``sites`` with grid indices ``row``/``col``."""
    sites = np.asarray(sites)
    r = np.asarray(row, dtype=np.int64)
    c = np.asarray(col, dtype=np.int64)
    usable = np.ones(sites.shape, dtype=bool)
    if exclude_bad:
        usable &= ~np.isin(sites, list(SMAP_BAD_CELLS))
    r_even, c_even = r % 2 == 0, c % 2 == 0
    ng = usable & r_even & ~c_even
    sparse = usable & r_even & c_even
    dense = usable & ~ng
    masks = {
        "ALL": usable,
        "SPARSE": sparse,
        "NG": ng,
        "DENSE": dense,
        "VAL": usable & ~r_even & ~c_even,
        "SCALE_29": usable & (r % 4 == 0) & (c % 4 == 0),
        "SCALE_104": sparse,
        "SCALE_206": sparse | (usable & ~r_even & c_even),
        "SCALE_305": dense,
    }
    return {name: sites[m].tolist() for name, m in masks.items()}


# ------------------------------------------------------------------------------ the reader
def smap_site_table(root: str | os.PathLike | None = None, variant: str | None = None) -> pd.DataFrame:
    """The usable SMAP cells as a site table: ``gauge_name`` = "SMAP cell <id> · <set>" (SPARSE,
    NG or DENSE-only), ``gauge_lat``/``gauge_lon`` = the cell centre, ``cell_set``, row, col
    and the soil statics."""
    ds = load_smap(root)
    splits = smap_splits(ds)
    ids = [str(s) for s in ds.site.values]
    where = {c: n for n in ("DENSE", "SPARSE", "NG") for c in splits[n]}  # SPARSE ⊂ DENSE: last wins
    table = pd.DataFrame(index=pd.Index(ids, name="site"))
    table["cell_set"] = [where.get(c, "") for c in ids]
    table["gauge_name"] = [f"SMAP cell {c} · {where.get(c, '')}" for c in ids]
    table["gauge_lat"] = ds["lat"].values
    table["gauge_lon"] = ds["lon"].values
    table["area"] = np.nan
    table["huc_02"] = np.nan
    for c in ("row", "col", "bulk", "clay", "sand", "ndvi"):
        table[c] = ds[c].values
    return table


def load_smap_sites(root, sites, variant: str | None = None, start=None, end=None) -> xr.Dataset:
    """The SMAP/NLDAS cells ``sites`` over ``start..end``, dims (site, time): None = every usable
    cell; a count n = the first n usable cells; else cell ids and/or named cell sets
    (``"SPARSE"``, ``["0", "2", "NG"]``; :func:`core.datasets.smap.load_smap`).

    Raises:
        SiteNotFoundError: an unknown cell id or set name (lists the sets).
    """
    if isinstance(sites, (int, np.integer)) and not isinstance(sites, bool):
        ds = load_smap(root).isel(site=slice(0, int(sites)))
    else:
        ds = load_smap(root, cells=sites)
    if isinstance(sites, str) and not sites.strip().isdigit():
        ds.attrs["site_set"] = sites.strip().upper()
    if start is not None or end is not None:
        ds = ds.sel(time=slice(None if start is None else str(start), None if end is None else str(end)))
    return ds


def _source_file(ds: xr.Dataset, cell: str, variable: str) -> str:
    """The SMAP/NLDAS-2 file (and the variable) ``variable`` of ``cell`` comes from."""
    return f"{ds.attrs.get('file', 'the SMAP file')} (cell {cell}, variable {variable})"


def _cell_ids(root, variant: str | None = None) -> list[str]:
    return [str(c) for c in load_smap(root).site.values]


#: SMAP L3 soil moisture with NLDAS-2 forcing on grid cells (Li & Lu 2023).
READER = register(SourceReader("smap", "grid_cell", sites=_cell_ids, load=load_smap_sites,
                               site_table=smap_site_table, source_file=_source_file))
