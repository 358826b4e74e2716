"""Simulated ET against MODIS MOD16A2 (both benchmarks): reading a site-level MOD16A2 table,
compositing daily ET to its 8-day periods, and the temporal and spatial correlations.

MOD16A2 composites start on day-of-year 1, 9, …, 361; the last of a year is 5 or 6 days.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..metrics import pcc


def modis_composites(et: xr.DataArray) -> pd.DataFrame:
    """Sum daily ET [site, time] (mm/d) over the MOD16A2 8-day composites.

    Composite k of a year starts on day-of-year 8k + 1 and ends before the next start or the
    year's end (the last one has 5 days, 6 in leap years). Returns a table (basin, date =
    composite start) -> ET (mm per composite), only for composites fully inside the series;
    columns site, date, ET.
    """
    t = pd.DatetimeIndex(et.time.values)
    start_doy = ((t.dayofyear - 1) // 8) * 8 + 1
    key = pd.to_datetime(t.year.astype(str) + "-01-01") + pd.to_timedelta(start_doy - 1, unit="D")
    df = pd.DataFrame(et.transpose("time", "site").values, index=t,
                      columns=[str(b) for b in et.site.values])
    length = pd.Series(1, index=t).groupby(key).sum()
    full = np.minimum(8, (pd.to_datetime(length.index.year.astype(str) + "-12-31") - length.index).days + 1)
    sums = df.groupby(key).sum(min_count=1)
    sums = sums[length.values == full]
    out = sums.stack().rename("ET").reset_index()
    out.columns = ["date", "site", "ET"]
    return out[["site", "date", "ET"]]


def read_modis(path: str | Path, pad: bool = True) -> pd.DataFrame:
    """Read a site-level MOD16A2 table: CSV with columns site (or basin: the gauge id), date
    (composite start), ET (mm per composite), or netCDF with variable ``ET`` on (site, time)
    (or (basin, time)). Returns columns site, date, ET; ``pad``: zero-pad site ids to the 8
    digits of a USGS gauge id (False for grid cells).

    Raises:
        FileNotFoundError: no such file.
        ValueError: missing columns/variable (names what was found and what is expected).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"MODIS file {path} does not exist")
    if path.suffix in (".nc", ".nc4"):
        ds = xr.open_dataset(path)
        if "ET" not in ds:
            raise ValueError(f"{path}: expected a variable 'ET' (mm per 8-day composite) on "
                             f"(site, time); found {list(ds.data_vars)}")
        df = ds["ET"].to_dataframe().reset_index().rename(columns={"time": "date", "basin": "site"})
    else:
        df = pd.read_csv(path, dtype={"basin": str, "site": str}).rename(columns={"basin": "site"})
        missing = {"site", "date", "ET"} - set(df.columns)
        if missing:
            raise ValueError(f"{path}: expected columns site (or basin), date (composite start), ET "
                             f"(mm per composite); missing {sorted(missing)}, found {list(df.columns)}")
    df["site"] = df["site"].astype(str).str.zfill(8) if pad else df["site"].astype(str)
    df["date"] = pd.to_datetime(df["date"])
    return df[["site", "date", "ET"]]


def modis_scores(outputs: xr.Dataset, modis: pd.DataFrame) -> tuple[float, float]:
    """(median temporal r over basins, spatial r of long-term means) of 8-day ET vs MODIS."""
    sim = modis_composites(outputs["ET"])
    m = sim.merge(modis, on=["site", "date"], suffixes=("_sim", "_modis")).dropna()
    if m.empty:
        return float("nan"), float("nan")
    temporal = m.groupby("site").apply(lambda g: pcc(g["ET_sim"], g["ET_modis"], min_pairs=3),
                                       include_groups=False)
    means = m.groupby("site")[["ET_sim", "ET_modis"]].mean()
    return float(np.nanmedian(temporal.values)), pcc(means["ET_sim"], means["ET_modis"], min_pairs=3)
