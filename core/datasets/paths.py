"""Locating the data root.

The data root is a folder laid out as the publishers distribute their data::

    <root>/caravan/attributes/camels/attributes_other_camels.csv
    <root>/caravan/timeseries/netcdf/camels/camels_<gauge_id>.nc
    <root>/camels_us/camels_attributes_v2.0/camels_{clim,geol,hydro,name,soil,topo,vege}.txt
    <root>/camels_us/basin_mean_forcing/<daymet|maurer|nldas>/<huc_02>/<gauge_id>_lump_*_forcing_leap.txt
    <root>/camels_us/usgs_streamflow/<huc_02>/<gauge_id>_streamflow_qc.txt

Resolution order: an explicit path, then the ``HYDROLENS_DATA_ROOT`` environment variable, then
``../shared/data`` beside the repository (the development workspace layout), then ``./data``.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "HYDROLENS_DATA_ROOT"
REPO_ROOT = Path(__file__).resolve().parents[2]

DOWNLOAD_HELP = """\
HydroLens needs a data root laid out as the publishers distribute the data:

  <root>/caravan/attributes/camels/attributes_other_camels.csv
  <root>/caravan/timeseries/netcdf/camels/camels_<gauge_id>.nc
  <root>/camels_us/camels_attributes_v2.0/camels_*.txt

Download
  * Caravan (Kratzert et al. 2023, CC-BY-4.0): https://zenodo.org/records/7944025
    -> unpack so that <root>/caravan/timeseries/netcdf/camels/ holds camels_<gauge>.nc and
       <root>/caravan/attributes/camels/ holds attributes_other_camels.csv
  * CAMELS-US attributes v2.0 (Addor et al. 2017): https://gdex.ucar.edu/dataset/camels.html
    (camels_attributes_v2.0.zip) -> <root>/camels_us/camels_attributes_v2.0/
  * optional, CAMELS-US time series v1.2 (Newman et al. 2015), same page
    (basin_timeseries_v1p2_metForcing_obsFlow.zip) -> <root>/camels_us/basin_mean_forcing/ and
    <root>/camels_us/usgs_streamflow/

Then pass --data-root <root> or set HYDROLENS_DATA_ROOT=<root>.
"""


class DataRootError(FileNotFoundError):
    """Raised when no usable data root is found; the message says what to download and where."""


def require_dir(path: Path, what: str, expected: str) -> Path:
    """Return ``path`` if it is a folder.

    Raises:
        FileNotFoundError: naming ``what``, the path and what it should hold.
    """
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found: {path} (expected {expected})")
    return path


def candidate_roots(explicit: str | os.PathLike | None = None) -> list[Path]:
    """Data roots to try, in order of precedence."""
    out: list[Path] = []
    if explicit:
        return [Path(explicit).expanduser()]
    if os.environ.get(ENV_VAR):
        out.append(Path(os.environ[ENV_VAR]).expanduser())
    out += [REPO_ROOT.parent / "shared" / "data", Path.cwd() / "data"]
    return out


def resolve_data_root(explicit: str | os.PathLike | None = None) -> Path:
    """Return the data root to read from.

    A root counts as usable when it holds ``caravan/`` or ``camels_us/``.

    Raises:
        DataRootError: no candidate root exists (the message lists the candidates tried and the
            download instructions).
    """
    tried = candidate_roots(explicit)
    for root in tried:
        if (root / "caravan").is_dir() or (root / "camels_us").is_dir():
            return root.resolve()
    listing = "\n".join(f"  - {p}" for p in tried)
    raise DataRootError(f"No HydroLens data root found. Tried:\n{listing}\n\n{DOWNLOAD_HELP}")
