"""HydroLens data readers: one ``xarray.Dataset`` type for Caravan and raw CAMELS-US.

Gridded SMAP + NLDAS-2 cells (sites are grid cells, dims ``site``/``time``): :func:`load_smap`
and :func:`smap_splits` in :mod:`core.datasets.smap`.

Entry point: :func:`load_dataset`. The dataset layout (dims ``basin``/``time``, variables,
units, attrs) is documented in :mod:`core.datasets.schema`; name lists in ``ds.attrs`` are
comma-joined strings, read them with :func:`attr_list`.
"""

from .camels_us import (
    ATTRIBUTE_FILES,
    FORCING_SOURCES,
    attach_camels_attributes,
    categorical_levels,
    forcing_path,
    hargreaves_pet,
    list_camels_us_basins,
    load_camels_us,
    parse_forcing_file,
    parse_streamflow_file,
    read_camels_attributes,
    read_forcing,
    read_streamflow,
    static_attributes,
    streamflow_path,
)
from .caravan import (
    CARAVAN_VARIABLES,
    list_caravan_basins,
    load_caravan,
    read_caravan_attributes,
    read_caravan_file,
)
from .loader import SOURCES, available_basins, load_dataset, parse_basins, select_basins, site_table
from .paths import DOWNLOAD_HELP, DataRootError, resolve_data_root
from .schema import (
    BASIN_COORDS,
    CAMELS_EXTRA_VARS,
    CATEGORICAL_ATTRIBUTES,
    DYNAMIC_VARS,
    FENG2022_ATTRIBUTES,
    MISSING_CATEGORY_CODE,
    SIGNATURES,
    VARIABLES,
    BasinNotFoundError,
    DataFormatError,
    SiteNotFoundError,
    attr_list,
    cfs_to_mm_per_day,
    pad_gauge_id,
    pad_gauge_ids,
)
from .smap import (
    SMAP_BAD_CELLS,
    SMAP_DOWNLOAD_HELP,
    SMAP_PERIODS,
    SMAP_STATICS,
    fao56_pet,
    load_smap,
    smap_splits,
)

__all__ = [
    # entry points
    "load_dataset", "select_basins", "parse_basins", "available_basins", "site_table", "SOURCES",
    # Caravan
    "load_caravan", "list_caravan_basins", "read_caravan_attributes", "read_caravan_file",
    "CARAVAN_VARIABLES",
    # CAMELS-US
    "load_camels_us", "read_camels_attributes", "static_attributes", "categorical_levels",
    "attach_camels_attributes", "read_forcing", "read_streamflow", "parse_forcing_file",
    "parse_streamflow_file", "forcing_path", "streamflow_path", "list_camels_us_basins",
    "hargreaves_pet", "ATTRIBUTE_FILES", "FORCING_SOURCES",
    # SMAP + NLDAS-2 grid cells
    "load_smap", "smap_splits", "fao56_pet", "SMAP_PERIODS", "SMAP_BAD_CELLS", "SMAP_STATICS",
    "SMAP_DOWNLOAD_HELP",
    # schema
    "FENG2022_ATTRIBUTES", "CATEGORICAL_ATTRIBUTES", "MISSING_CATEGORY_CODE", "SIGNATURES",
    "DYNAMIC_VARS", "CAMELS_EXTRA_VARS", "BASIN_COORDS", "VARIABLES", "DataFormatError",
    "BasinNotFoundError", "SiteNotFoundError", "attr_list", "cfs_to_mm_per_day", "pad_gauge_id",
    "pad_gauge_ids",
    # paths
    "resolve_data_root", "DataRootError", "DOWNLOAD_HELP",
]
