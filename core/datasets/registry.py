"""The registry of data-source readers: one :class:`SourceReader` per publisher's format,
keyed by the ``data.source`` name it serves.

Each reader module registers its own reader when it is imported (``caravan``, ``camels_us``,
``smap``); :mod:`core.datasets.loader` imports them and asks the registry, never branching on a
source name. Adding a source is one new module that calls :func:`register` (and its import line
in the loader).

A source name is ``<reader>`` or ``<reader>/<variant>`` (``camels_us/daymet``: the reader
``camels_us`` with the forcing ``daymet``); a reader with variants also takes its bare name for
its default variant (``camels_us`` = ``camels_us/daymet``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import xarray as xr

#: Kinds of site a reader serves: gauged basins (points, 8-digit USGS ids) or grid cells.
SITE_KINDS = ("basin", "grid_cell")


@dataclass(frozen=True)
class SourceReader:
    """How one data source is read.

    Attributes:
        name: the source name (``caravan``, ``camels_us``, ``smap``).
        site_kind: ``"basin"`` or ``"grid_cell"``.
        sites: ``(root, variant) -> sorted ids`` of the sites the root holds for the source.
        load: basins: ``(root, ids, variant, start, end, attributes) -> Dataset`` for resolved
            ids, ``attributes`` the CAMELS attribute table read once by the loader; grid cells:
            ``(root, request, variant, start, end) -> Dataset``, the request as the user gave it
            (None, a count, ids or a named cell set).
        site_table: ``(root, variant) -> DataFrame`` of every loadable site with what a map of
            sites needs (``loader.SITE_COLUMNS``) and the attributes users filter by.
        source_file: ``(ds, site, variable) -> text`` naming the publisher's file (and the
            variable's name in it) a value of a loaded dataset comes from, for error messages.
        variants: the variants a source name may carry after ``/`` (CAMELS-US forcings).
        default_variant: the variant of the bare name.
        describe: ``(root, variant) -> text`` naming where the source's sites are, for
            messages (``"Caravan time series (<folder>)"``).
    """

    name: str
    site_kind: str
    sites: Callable[[Path, str | None], list[str]]
    load: Callable[..., xr.Dataset]
    site_table: Callable[[Path | None, str | None], pd.DataFrame]
    source_file: Callable[[xr.Dataset, str, str], str]
    variants: tuple[str, ...] = ()
    default_variant: str | None = None
    describe: Callable[[Path, str | None], str] | None = None

    def where(self, root: Path, variant: str | None) -> str:
        """Where the source's sites are, in words (``describe``, else name and root)."""
        if self.describe is not None:
            return self.describe(root, variant)
        return f"{self.name}{'/' + variant if variant else ''} in {root}"

    def source_names(self) -> tuple[str, ...]:
        """Every canonical ``data.source`` value this reader serves."""
        return tuple(f"{self.name}/{v}" for v in self.variants) if self.variants else (self.name,)


READERS: dict[str, SourceReader] = {}


def register(reader: SourceReader) -> SourceReader:
    """Add ``reader`` to the registry (its module calls this at import).

    Raises:
        ValueError: another reader already has the name, or the site kind is unknown.
    """
    if reader.site_kind not in SITE_KINDS:
        raise ValueError(f"reader {reader.name!r}: site_kind must be one of {SITE_KINDS}, got {reader.site_kind!r}")
    if reader.name in READERS and READERS[reader.name] is not reader:
        raise ValueError(f"a data-source reader named {reader.name!r} is registered already")
    READERS[reader.name] = reader
    return reader


def source_names() -> tuple[str, ...]:
    """Every valid ``data.source`` value, in registration order."""
    return tuple(s for r in READERS.values() for s in r.source_names())


def reader_for(source: str) -> tuple[SourceReader, str | None]:
    """The reader of a source name and the variant it names (None for a reader without).

    Raises:
        ValueError: no reader serves ``source`` (lists the valid names).
    """
    s = str(source).strip().lower()
    name, _, variant = s.partition("/")
    reader = READERS.get(name)
    if reader is not None:
        if not reader.variants and not variant:
            return reader, None
        if reader.variants and (variant or reader.default_variant) in reader.variants:
            return reader, variant or reader.default_variant
    raise ValueError(f"Unknown source {source!r}; expected one of {list(source_names())}"
                     + (f" (or {', '.join(r.name for r in READERS.values() if r.variants)} alone for "
                        "its default)" if any(r.variants for r in READERS.values()) else "") + ".")


def canonical_source(source: str) -> str:
    """``source`` as the registry spells it (``camels_us`` -> ``camels_us/daymet``).

    Raises:
        ValueError: unknown source.
    """
    reader, variant = reader_for(source)
    return f"{reader.name}/{variant}" if variant else reader.name
