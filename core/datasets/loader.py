"""One entry point to the HydroLens datasets: :func:`load_dataset`, plus basin selection.

Basin selection (:func:`select_basins`), shared with the CLI:

* ``None`` -> every basin available for the source (sorted by id);
* an ``int`` ``n`` -> ``n`` basins spread over CONUS, chosen deterministically: the available
  basins are sorted by (``huc_02``, id) and the ``n`` basins at evenly spaced positions
  ``round(linspace(0, N - 1, n))`` are taken (returned in that order). Because the sorted list
  runs through the 18 CONUS water-resource regions in turn, every ``n`` gives a set spread over
  the regions in proportion to their basin counts (50 of the 432 Caravan basins span 15
  regions), and a given ``n`` always gives the same basins;
* a list of ids (str or int, padded to 8 digits; a comma/space-separated string also works),
  kept in the given order; an unknown id raises :class:`BasinNotFoundError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .camels_us import (
    FORCING_SOURCES,
    forcing_path,
    list_camels_us_basins,
    load_camels_us,
    read_camels_attributes,
    streamflow_path,
)
from .caravan import (CARAVAN_VARIABLES, TIMESERIES_SUBDIR, caravan_timeseries_dir, list_caravan_basins,
                      load_caravan, read_caravan_attributes)
from .checks import check_climatology, check_daily_ranges
from .paths import resolve_data_root
from .pet import PET_METHODS, apply_pet
from .schema import BasinNotFoundError, pad_gauge_ids

__all__ = ["SOURCES", "SITE_COLUMNS", "available_basins", "data_period", "site_table", "load_dataset", "parse_basins",
           "parse_sites",
           "select_basins", "source_file"]

SOURCES: tuple[str, ...] = ("caravan",) + tuple(f"camels_us/{f}" for f in FORCING_SOURCES) + ("smap",)
"""Valid ``source`` values of :func:`load_dataset` (``"camels_us"`` alone means daymet; ``smap``:
SMAP soil moisture with NLDAS-2 forcing on grid cells, :mod:`core.datasets.smap`)."""


#: Data sources whose sites are grid cells (the others: gauged basins).
GRID_SOURCES = frozenset({"smap"})


def site_kind_of(source: str) -> str:
    """``"grid_cell"`` for a source of grid cells (``GRID_SOURCES``), else ``"basin"``."""
    return "grid_cell" if str(source).strip().lower() in GRID_SOURCES else "basin"


def site_coords(ds: xr.Dataset) -> dict:
    """The per-site coordinates of a loaded dataset (gauge_lat/lon, name, area, huc_02 for
    basins; lat, lon, row, col for grid cells)."""
    return {c: v for c, v in ds.coords.items() if c != "site" and v.dims == ("site",)}


def _parse_source(source: str) -> tuple[str, str | None]:
    s = str(source).strip().lower()
    if s in ("caravan", "smap"):
        return s, None
    if s == "camels_us":
        return "camels_us", "daymet"
    if s.startswith("camels_us/") and s.split("/", 1)[1] in FORCING_SOURCES:
        return "camels_us", s.split("/", 1)[1]
    raise ValueError(f"Unknown source {source!r}; expected 'caravan', 'camels_us' or one of "
                     f"{list(SOURCES)}.")


def available_basins(root: str | Path | None = None, source: str = "caravan") -> list[str]:
    """Sorted 8-character ids of the basins ``source`` can load from the data root.

    ``caravan``: one per Caravan netCDF file; ``camels_us[/<forcing>]``: basins with both a
    forcing and a streamflow file. Raises DataRootError (no data root), FileNotFoundError
    (source folder missing), ValueError (unknown source).
    """
    root = resolve_data_root(root)
    kind, forcing = _parse_source(source)
    if kind == "caravan":
        return list_caravan_basins(root)
    return list_camels_us_basins(root, forcing)


#: Columns of :func:`site_table` besides the CAMELS attributes: what a map of sites needs.
SITE_COLUMNS: tuple[str, ...] = ("gauge_name", "gauge_lat", "gauge_lon", "area", "huc_02")


def site_table(root: str | Path | None = None, source: str = "caravan") -> pd.DataFrame:
    """The sites ``source`` can load, with what a user filters them by.

    Returns:
        frame indexed by the 8-character gauge id, one row per loadable basin, with
        ``gauge_name``, ``gauge_lat``/``gauge_lon`` (degrees), ``area`` (km², CAMELS
        area_gages2), ``huc_02`` (2-character region) and every CAMELS-US attribute (aridity,
        frac_snow, elev_mean in m, p_mean in mm/d, baseflow_index, ...) where the data root
        has them (NaN otherwise).

    Raises:
        DataRootError: no data root (the message says what to download and where).
        FileNotFoundError: the source folder is missing.
    """
    kind, _ = _parse_source(source)
    if kind == "smap":
        return _smap_site_table(root)
    root = resolve_data_root(root)
    ids = available_basins(root, source)
    try:
        camels = read_camels_attributes(root)
    except (FileNotFoundError, ValueError):
        camels = pd.DataFrame(index=pd.Index([], name="gauge_id"))
    table = camels.reindex(ids)
    if "area" not in table and "area_gages2" in table:
        table["area"] = table["area_gages2"]
    kind, _ = _parse_source(source)
    if kind == "caravan":
        try:
            cara = read_caravan_attributes(root).reindex(ids)
            for c in ("gauge_name", "gauge_lat", "gauge_lon", "area"):
                if c in cara:
                    table[c] = cara[c].where(cara[c].notna(), table.get(c))
        except FileNotFoundError:
            pass
    for c in SITE_COLUMNS:
        if c not in table:
            table[c] = np.nan
    table.index.name = "site"
    return table


def _smap_site_table(root) -> pd.DataFrame:
    """The usable SMAP cells as a site table: ``gauge_name`` = "SMAP cell <id> · <set>" (SPARSE,
    NG or DENSE-only), ``gauge_lat``/``gauge_lon`` = the cell centre, ``cell_set``, row, col
    and the soil statics."""
    from .smap import load_smap, smap_splits

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


def _given(text: str | None) -> str | None:
    """The stripped text of a ``--sites``/``--basins`` value; None for none, "" or "all"."""
    t = None if text is None else str(text).strip()
    return None if not t or t.lower() == "all" else t


def parse_basins(text: str | None) -> int | list[str] | None:
    """Parse a command-line ``--basins`` value for :func:`select_basins`.

    ``None``, ``""`` or ``"all"`` -> ``None``; a number of at most 4 digits (``"50"``) -> that
    count; anything else -> the list of ids separated by commas/whitespace (``"1022500,01547700"``).
    A single USGS id must therefore have at least 5 digits (all CAMELS ids have 7-8).

    Raises:
        ValueError: an empty list or a token that is not a gauge id.
    """
    t = _given(text)
    if t is None:
        return None
    if re.fullmatch(r"\d{1,4}", t):
        return int(t)
    tokens = [x for x in re.split(r"[,\s]+", t) if x]
    return pad_gauge_ids(tokens)


def parse_sites(text: str | None, source: str = "caravan") -> int | str | list[str] | None:
    """Parse a command-line ``--sites`` value for ``source``.

    SMAP cells: ``None``/``""``/``"all"`` -> None (every usable cell); a name of letters and
    digits starting with a letter (``SPARSE``, ``ng``, ``scale_29``) -> that named cell set; else the cell
    ids separated by commas/whitespace (``"12"`` is the cell 12). Other sources: as
    :func:`parse_basins` (a count, ``all`` or gauge ids).

    Raises:
        ValueError: as :func:`parse_basins`.
    """
    if site_kind_of(source) != "grid_cell":
        return parse_basins(text)
    t = _given(text)
    if t is None:
        return None
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", t):
        return t.upper()
    return [x for x in re.split(r"[,\s]+", t) if x]


def select_basins(basins: int | str | Iterable[str | int] | None, available: Sequence[str],
                  huc_02: Mapping[str, str] | None = None, where: str = "the data root"
                  ) -> list[str]:
    """Resolve a basin request against the ``available`` ids (see the module docstring).

    Args:
        basins: ``None`` (all), an ``int`` count, or ids (iterable of str/int, or one
            comma/space-separated string).
        available: the ids that exist (8-character strings).
        huc_02: ``{id: 2-digit region}`` used to spread a count over regions; without it a count
            is spread over the id-sorted list (ids are grouped by region anyway).
        where: where ``available`` came from, for error messages.

    Returns:
        List of 8-character ids.

    Raises:
        ValueError: a count < 1 or larger than the number available; a malformed id.
        BasinNotFoundError: a requested id is not in ``available`` (close ids suggested).
    """
    avail = [str(a) for a in available]
    if basins is None:
        return sorted(avail)
    if isinstance(basins, (bool, np.bool_)):
        raise ValueError(f"basins must be None, a count or a list of ids; got {basins!r}.")
    if isinstance(basins, (int, np.integer)):
        n = int(basins)
        if n < 1 or n > len(avail):
            raise ValueError(f"Cannot select {n} basins: {len(avail)} available in {where}.")
        key = (lambda b: (str(huc_02.get(b, "99")), b)) if huc_02 is not None else (lambda b: b)
        ordered = sorted(avail, key=key)
        idx = np.round(np.linspace(0, len(ordered) - 1, n)).astype(int)
        return [ordered[i] for i in idx]
    if isinstance(basins, str):
        basins = [x for x in re.split(r"[,\s]+", basins.strip()) if x]
    ids = pad_gauge_ids(basins)
    known = set(avail)
    for b in ids:
        if b not in known:
            raise BasinNotFoundError(b, where, avail)
    return ids


def load_dataset(root: str | Path | None = None,
                 basins: int | str | Iterable[str | int] | None = None,
                 source: str = "caravan", start=None, end=None, pet: str = "source") -> xr.Dataset:
    """Load a HydroLens dataset (one entry point for every source).

    Args:
        root: data root, or ``None`` to resolve it (``HYDROLENS_DATA_ROOT``, ``../shared/data``,
            ``./data``; :func:`core.datasets.paths.resolve_data_root`).
        basins: ``None`` (all available for the source), an ``int`` n (n basins spread over the
            CONUS regions, deterministic; see :func:`select_basins`) or a list of ids.
        source: ``"caravan"`` (ERA5-Land P/T/PET + USGS Q from Caravan, joined with the
            CAMELS-US v2.0 attributes on the 8-digit id) or ``"camels_us[/<forcing>]"`` (raw
            CAMELS-US time series; forcing ``daymet`` by default, Hargreaves PET).
        start, end: inclusive dates (str/datetime); default = the files' full range.
        pet: ``"source"`` (the files' PET) or ``"oudin"`` (computed from T and latitude, see
            :mod:`core.datasets.pet`; the original is kept as ``PET_source``).

    Returns:
        ``xarray.Dataset`` with dims ``(site, time)``: float32 ``P``, ``T``, ``PET``, ``Q``
        (mm d-1, degC, mm d-1, mm d-1), the 35 Feng et al. (2022) static attributes and the
        CAMELS signatures on ``basin``, basin coordinates ``gauge_lat``, ``gauge_lon``,
        ``gauge_name``, ``area``, ``huc_02``; ``attrs`` ``source``, ``data_root``,
        ``static_attributes`` (comma-joined) ... (see :mod:`core.datasets.schema`).

    Raises:
        DataRootError: no data root found (message says what to download).
        ValueError: unknown source, bad count or id.
        BasinNotFoundError, FileNotFoundError, DataFormatError: from the readers.
        ImplausibleDataError: values outside physical bounds or climatology (names the file,
            variable, basin, first dates and the expected range).

    ``ds.attrs["data_period"]`` (``"YYYY-MM-DD..YYYY-MM-DD"``) is the span every file covers.
    """
    kind, forcing = _parse_source(source)
    if kind == "smap":
        return _load_smap_sites(root, basins, start, end)
    root = resolve_data_root(root)
    if pet not in PET_METHODS:
        raise ValueError(f"unknown PET method {pet!r}; expected one of {PET_METHODS}")
    if kind == "caravan":
        avail = list_caravan_basins(root)
        where = f"Caravan time series ({caravan_timeseries_dir(root)})"
    else:
        avail = list_camels_us_basins(root, forcing)
        where = f"CAMELS-US {forcing} forcing + streamflow ({root / 'camels_us'})"
    huc = None
    if isinstance(basins, (int, np.integer)) and not isinstance(basins, bool):
        table = read_camels_attributes(root)
        huc = table["huc_02"].to_dict()
    ids = select_basins(basins, avail, huc, where)
    if kind == "caravan":
        ds = load_caravan(root, ids, start, end)
    else:
        ds = load_camels_us(root, ids, forcing, start, end)
    ds = apply_pet(ds, pet)
    # plausibility of P, T, PET (as fed) and Q: daily physical ranges, long-term means against
    # CAMELS climatology (core.datasets.checks)
    where = lambda b, v: source_file(ds, b, v)  # noqa: E731
    check_daily_ranges(ds, where)
    check_climatology(ds, where)
    return ds


def _load_smap_sites(root, sites, start, end) -> xr.Dataset:
    """The SMAP/NLDAS cells ``sites`` over ``start..end``, dims (site, time): None = every usable
    cell; a count n = the first n usable cells; else cell ids and/or named cell sets
    (``"SPARSE"``, ``["0", "2", "NG"]``; :func:`core.datasets.smap.load_smap`).

    Raises:
        SiteNotFoundError: an unknown cell id or set name (lists the sets).
    """
    from .smap import load_smap

    if isinstance(sites, (int, np.integer)) and not isinstance(sites, bool):
        ds = load_smap(root).isel(site=slice(0, int(sites)))
    else:
        ds = load_smap(root, cells=sites)
    if isinstance(sites, str) and not sites.strip().isdigit():
        ds.attrs["site_set"] = sites.strip().upper()
    if start is not None or end is not None:
        ds = ds.sel(time=slice(None if start is None else str(start), None if end is None else str(end)))
    return ds


def data_period(ds: xr.Dataset) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """``ds.attrs["data_period"]`` (the span every file covers, set by the readers) as two
    timestamps, or None when the dataset does not record it."""
    span = str(ds.attrs.get("data_period", ""))
    if ".." not in span:
        return None
    lo, hi = span.split("..")
    return pd.Timestamp(lo), pd.Timestamp(hi)


def source_file(ds: xr.Dataset, basin: str, variable: str) -> str:
    """Where ``variable`` of ``basin`` in a loaded dataset comes from: the publisher's file (and
    the variable's name in it), for error messages."""
    root = Path(str(ds.attrs.get("data_root", ".")))
    source = str(ds.attrs.get("source", ""))
    derived = variable == "PET" and ds.attrs.get("pet_method") == "oudin"
    base = "T" if derived else variable
    if source == "caravan":
        file = root / TIMESERIES_SUBDIR / f"camels_{basin}.nc"
        text = f"{file} (variable {CARAVAN_VARIABLES.get(base, base)})"
    elif source.startswith("camels_us/"):
        forcing = source.split("/", 1)[1]
        try:
            file = streamflow_path(root, basin) if base == "Q" else forcing_path(root, basin, forcing)
        except (FileNotFoundError, ValueError, KeyError):
            file = root / "camels_us"
        col = {"P": "prcp(mm/day)", "T": "tmax/tmin", "PET": "Hargreaves from tmax/tmin", "Q": "discharge"}
        text = f"{file} ({col.get(base, base)})"
    elif "file" in ds.attrs:
        text = f"{ds.attrs['file']} (cell {basin}, variable {variable})"
    else:
        text = f"{source or 'dataset'} in {root}"
    return f"{text}, PET computed by Oudin from it" if derived else text
