"""Plausibility checks of the forcing and target a model is fed.

Readers check formats and declared units; these checks catch what a format check cannot: a file
whose numbers are in another unit than it says (kelvin labelled °C, metres labelled mm, ft³/s
labelled mm/d), sign errors and corrupted values. Every failure raises
:class:`ImplausibleDataError` naming the file, variable, basin, the first offending dates and
the expected range; nothing is clipped or filled silently.

Daily bounds (:data:`DAILY_RANGES`) are wide physical limits, not climatology: the 432 shared
Caravan basins (1981-2010) span P 0..262 mm/d, T −37.6..36.8 °C, ERA5-Land PET −2.6..80.3 mm/d
(negative on 0.2 % of days: condensation) and Q 0..460 mm/d. Long-term checks
(:data:`CLIMATOLOGY_RATIOS`) compare a basin's mean P and PET over at least a year with its CAMELS
``p_mean`` / ``pet_mean`` (shared data: P 0.61..1.52×, ERA5-Land PET 1.2..10.1×, Oudin PET
0.24..1.07×) and its runoff ratio mean(Q)/mean(P) with 5 (shared data: at most 1.54 over 30
years, 2.78 over a single 365-day window). A PET that is exactly 0 on every day is named as the
tmax == tmin defect of the CAMELS v1.2 maurer/nldas files.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import xarray as xr

from .schema import DataFormatError

#: variable -> (lowest, highest, units, what): daily values outside are implausible.
DAILY_RANGES: dict[str, tuple[float, float, str, str]] = {
    "P": (0.0, 1000.0, "mm d-1", "daily precipitation"),
    "T": (-60.0, 50.0, "degC", "daily mean air temperature; kelvin or °F exceed it"),
    "PET": (-5.0, 150.0, "mm d-1", "daily potential evapotranspiration"),
    "Q": (0.0, 1000.0, "mm d-1", "daily streamflow per unit basin area"),
}
#: variable -> (CAMELS attribute, lowest ratio, highest ratio) of long-term means.
CLIMATOLOGY_RATIOS: dict[str, tuple[str, float, float]] = {
    "P": ("p_mean", 0.1, 10.0),
    "PET": ("pet_mean", 0.05, 25.0),
}
MAX_RUNOFF_RATIO = 5.0
MIN_DAYS_FOR_MEANS = 365
_SHOW = 3  # offending dates named per basin
_BASINS = 5  # offending basins named per message


class ImplausibleDataError(DataFormatError):
    """Data values outside physical or climatological bounds (the message names the file,
    variable, basins, first offending dates and the expected range)."""


def _raise(title: str, lines: list[str], advice: str = "") -> None:
    """Raise ImplausibleDataError naming up to :data:`_BASINS` problems (and how many more)."""
    if not lines:
        return
    more = f"\n  … and {len(lines) - _BASINS} more" if len(lines) > _BASINS else ""
    raise ImplausibleDataError(f"{title}:\n  " + "\n  ".join(lines[:_BASINS]) + more
                               + (f"\n{advice}" if advice else ""))


def _dates(time: pd.DatetimeIndex, idx: np.ndarray) -> str:
    return ", ".join(str(time[i].date()) for i in idx[:_SHOW]) + (" …" if len(idx) > _SHOW else "")


def check_daily_ranges(ds: xr.Dataset, where: Callable[[str, str], str],
                       variables=tuple(DAILY_RANGES)) -> None:
    """Every finite daily value of ``variables`` within :data:`DAILY_RANGES` (NaN = missing is
    allowed here; complete forcing is checked where a model needs it).

    Args:
        ds: a HydroLens dataset (site, time).
        where: ``(basin, variable) -> "file (variable name in the file)"`` for messages.

    Raises:
        ImplausibleDataError: lists up to 5 basins with their file, count, extreme value and
            first dates.
    """
    time = pd.DatetimeIndex(ds.time.values)
    basins = [str(b) for b in ds.site.values]
    lines = []
    for var in variables:
        if var not in ds:
            continue
        lo, hi, units, what = DAILY_RANGES[var]
        a = ds[var].transpose("site", "time").values
        with np.errstate(invalid="ignore"):
            bad = (a < lo) | (a > hi)
        for i in np.flatnonzero(bad.any(axis=1)):
            idx = np.flatnonzero(bad[i])
            vals = a[i, idx]
            worst = vals[np.argmax(np.abs(vals))]
            lines.append(f"{where(basins[i], var)}: {var} of basin {basins[i]} is {worst:g} {units} "
                         f"on {len(idx)} day(s) (first {_dates(time, idx)}); expected "
                         f"{lo:g} ≤ {var} ≤ {hi:g} {units} ({what})")
    _raise("implausible input values", lines,
           "Check the file's units and values; HydroLens does not clip them.")


def check_climatology(ds: xr.Dataset, where: Callable[[str, str], str]) -> None:
    """Long-term means against CAMELS climatology and the water balance (see module docstring).

    Only basins with at least :data:`MIN_DAYS_FOR_MEANS` finite days are judged.

    Raises:
        ImplausibleDataError: names the file, basin, the two means and the accepted ratio.
    """
    basins = [str(b) for b in ds.site.values]
    lines = []

    def mean_and_days(name):
        a = ds[name].transpose("site", "time").values.astype(np.float64)
        n = np.isfinite(a).sum(axis=1)
        with np.errstate(invalid="ignore"):
            return np.where(n > 0, np.nansum(a, axis=1) / np.maximum(n, 1), np.nan), n

    if "PET" in ds:  # PET exactly 0 every day: a defect, not a climate (any period length)
        a = ds["PET"].transpose("site", "time").values
        with np.errstate(invalid="ignore"):
            zero = np.isfinite(a).any(axis=1) & (np.nanmax(np.abs(np.where(np.isfinite(a), a, 0)), axis=1) == 0)
        for i in np.flatnonzero(zero):
            lines.append(f"{where(basins[i], 'PET')}: PET of basin {basins[i]} is 0 on every day (Hargreaves "
                         "PET from tmax == tmin, a known defect of the CAMELS v1.2 maurer/nldas files?); "
                         "use data.pet: oudin, or the daymet or maurer_extended forcing")
    for var, (attr, lo, hi) in CLIMATOLOGY_RATIOS.items():
        if var not in ds or attr not in ds:
            continue
        mean, n = mean_and_days(var)
        clim = np.asarray(ds[attr].values, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = mean / clim
        judged = (n >= MIN_DAYS_FOR_MEANS) & np.isfinite(ratio) & (clim > 0) & (mean != 0 if var == "PET" else True)
        for i in np.flatnonzero(judged & ((ratio < lo) | (ratio > hi))):
            lines.append(f"{where(basins[i], var)}: mean {var} of basin {basins[i]} is {mean[i]:.4g} "
                         f"mm/d, {ratio[i]:.3g}× its CAMELS {attr} ({clim[i]:.3g} mm/d); expected "
                         f"{lo:g}× to {hi:g}× (a unit error such as m or W m-2 for mm/d?)")
    if "Q" in ds and "P" in ds:
        q = ds["Q"].transpose("site", "time").values.astype(np.float64)
        p = ds["P"].transpose("site", "time").values.astype(np.float64)
        both = np.isfinite(q) & np.isfinite(p)
        n = both.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            rr = np.where(both, q, 0).sum(axis=1) / np.where(both, p, 0).sum(axis=1)
        for i in np.flatnonzero((n >= MIN_DAYS_FOR_MEANS) & np.isfinite(rr) & (rr > MAX_RUNOFF_RATIO)):
            lines.append(f"{where(basins[i], 'Q')}: streamflow of basin {basins[i]} is {rr[i]:.3g}× its "
                         f"precipitation over {n[i]} days; expected a runoff ratio ≤ {MAX_RUNOFF_RATIO:g} "
                         "(Q in ft³/s or m³/s instead of mm/d?)")
    _raise("implausible long-term means", lines)


def check_complete(ds: xr.Dataset, variables, start, end, what: str, where: Callable[[str, str], str]
                   ) -> None:
    """No missing value of ``variables`` over ``start..end`` (the forcing a model runs on).

    Raises:
        ImplausibleDataError: names the variable, basins, their file, first missing dates and
            ``what`` (e.g. "the test period data.test_start..data.test_end").
    """
    sub = ds.sel(time=slice(str(start), str(end)))
    time = pd.DatetimeIndex(sub.time.values)
    basins = [str(b) for b in sub.site.values]
    lines = []
    for var in variables:
        a = sub[var].transpose("site", "time").values
        bad = ~np.isfinite(a)
        for i in np.flatnonzero(bad.any(axis=1)):
            idx = np.flatnonzero(bad[i])
            lines.append(f"{where(basins[i], var)}: {var} of basin {basins[i]} is missing on "
                         f"{len(idx)} day(s) of {what} (first {_dates(time, idx)})")
    _raise("incomplete forcing", lines, "The model needs every day of its forcing: choose a period "
           "the data cover, or fill the gaps.")
