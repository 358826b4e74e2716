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

from . import camels_us, caravan, smap  # noqa: F401  (each registers its reader)
from .camels_us import read_camels_attributes
from .checks import check_climatology, check_daily_ranges
from .paths import resolve_data_root
from .pet import PET_METHODS, apply_pet
from .registry import SourceReader, reader_for, source_names
from .schema import SITE_COLUMNS, BasinNotFoundError, pad_gauge_ids

__all__ = ["SOURCES", "SITE_COLUMNS", "available_basins", "data_period", "site_table", "load_dataset", "parse_basins",
           "parse_sites",
           "select_basins", "source_file"]

SOURCES: tuple[str, ...] = source_names()
"""Valid ``source`` values of :func:`load_dataset`, from the reader registry
(:mod:`core.datasets.registry`): ``caravan``, ``camels_us/<forcing>`` (``"camels_us"`` alone means
daymet) and ``smap`` (SMAP soil moisture with NLDAS-2 forcing on grid cells)."""


def site_kind_of(source: str) -> str:
    """``"grid_cell"`` or ``"basin"``: the kind of site of ``source``'s reader (``"basin"`` for
    a name no reader serves, so that a config's own validation names the bad source)."""
    try:
        return reader_for(source)[0].site_kind
    except ValueError:
        return "basin"


def site_coords(ds: xr.Dataset) -> dict:
    """The per-site coordinates of a loaded dataset (gauge_lat/lon, name, area, huc_02 for
    basins; lat, lon, row, col for grid cells)."""
    return {c: v for c, v in ds.coords.items() if c != "site" and v.dims == ("site",)}


def available_basins(root: str | Path | None = None, source: str = "caravan") -> list[str]:
    """Sorted ids of the sites ``source`` can load from the data root (``caravan``: one per
    Caravan netCDF file; ``camels_us[/<forcing>]``: basins with both a forcing and a
    streamflow file; ``smap``: the usable cells).

    Raises:
        DataRootError: no data root. FileNotFoundError: the source folder is missing.
        ValueError: unknown source.
    """
    reader, variant = reader_for(source)
    return reader.sites(resolve_data_root(root), variant)


def site_table(root: str | Path | None = None, source: str = "caravan") -> pd.DataFrame:
    """The sites ``source`` can load, with what a user filters them by.

    Returns:
        frame indexed by site id, one row per loadable site, with ``gauge_name``,
        ``gauge_lat``/``gauge_lon`` (degrees), ``area`` (km², CAMELS area_gages2), ``huc_02``
        (2-character region) and, for basins, every CAMELS-US attribute (aridity, frac_snow,
        elev_mean in m, p_mean in mm/d, baseflow_index, ...) where the data root has them (NaN
        otherwise); for SMAP cells their set, grid row/col and soil statics.

    Raises:
        DataRootError: no data root (the message says what to download and where).
        FileNotFoundError: the source folder is missing.
    """
    reader, variant = reader_for(source)
    return reader.site_table(root, variant)


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
    reader, variant = reader_for(source)
    return _LOADERS[reader.site_kind](reader, variant, root, basins, start, end, pet)


def _load_basins(reader: SourceReader, variant: str | None, root, basins, start, end, pet: str) -> xr.Dataset:
    """Gauged basins: resolve the request against the root's basins (a count spreads over the
    HUC-02 regions), read them with the CAMELS attribute table read once, set the PET method
    and check plausibility (daily ranges, climatology)."""
    root = resolve_data_root(root)
    if pet not in PET_METHODS:
        raise ValueError(f"unknown PET method {pet!r}; expected one of {PET_METHODS}")
    avail = reader.sites(root, variant)
    try:
        attributes = read_camels_attributes(root)
    except FileNotFoundError:
        attributes = None  # a reader that needs them says what is missing
    huc = None
    if isinstance(basins, (int, np.integer)) and not isinstance(basins, bool):
        if attributes is None:
            attributes = read_camels_attributes(root)  # raises: a count needs the regions
        huc = attributes["huc_02"].to_dict()
    ids = select_basins(basins, avail, huc, reader.where(root, variant))
    ds = apply_pet(reader.load(root, ids, variant, start, end, attributes), pet)
    # plausibility of P, T, PET (as fed) and Q: daily physical ranges, long-term means against
    # CAMELS climatology (core.datasets.checks)
    where = lambda b, v: source_file(ds, b, v)  # noqa: E731
    check_daily_ranges(ds, where)
    check_climatology(ds, where)
    return ds


def _load_cells(reader: SourceReader, variant: str | None, root, sites, start, end, pet: str) -> xr.Dataset:
    """Grid cells: the reader resolves the request itself (ids, a count or a named cell set)."""
    return reader.load(root, sites, variant, start, end)


#: site kind -> how a request for that kind of site is loaded
_LOADERS = {"basin": _load_basins, "grid_cell": _load_cells}


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
    the variable's name in it), for error messages (the reader of ``ds.attrs["source"]`` knows)."""
    derived = variable == "PET" and ds.attrs.get("pet_method") == "oudin"
    base = "T" if derived else variable
    try:
        reader, _ = reader_for(str(ds.attrs.get("source", "")))
        text = reader.source_file(ds, basin, base)
    except ValueError:
        text = f"{ds.attrs.get('source') or 'dataset'} in {ds.attrs.get('data_root', '.')}"
    return f"{text}, PET computed by Oudin from it" if derived else text
