"""Turning a RunConfig into model-ready arrays (shared by training, evaluation and prediction)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..datasets.checks import check_complete
from ..datasets.loader import data_period, load_dataset, source_file
from ..datasets.normalize import Normalizer
from ..physics import FORCING_NAMES
from .config import ConfigError, RunConfig

DYNAMIC_INPUTS: tuple[str, ...] = FORCING_NAMES  # P, T, PET feed both g_A and the HBV


def as_tensor(a: np.ndarray, device) -> "torch.Tensor":
    """A numpy array (or a slice of one) as a tensor on ``device``, without a copy on CPU."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(a)).to(device)


def static_attribute_names(ds: xr.Dataset) -> list[str]:
    """Names of the static learner inputs recorded by the reader in ``ds.attrs``."""
    names = ds.attrs["static_attributes"]
    if isinstance(names, str):
        names = [n for n in names.split(",") if n]
    return list(names)


@dataclass
class Prepared:
    """Arrays for one set of basins over one contiguous period.

    Attributes:
        ds: the source dataset (basin, time).
        forcing: physical HBV forcing [time, basin, 3] (P mm/d, T °C, PET mm/d), float32.
        x_dyn: normalised learner inputs [time, basin, 3], float32.
        x_static: normalised attributes [basin, n_static], float32.
        target: the observed training target [time, basin], float32, NaN = missing
            (streamflow Q in mm/d for CAMELS/Caravan).
        target_name: its variable name in ``ds`` ("Q").
        time: DatetimeIndex of the period.
        basins: gauge ids.
    """

    ds: xr.Dataset
    forcing: np.ndarray
    x_dyn: np.ndarray
    x_static: np.ndarray
    target: np.ndarray
    time: pd.DatetimeIndex
    basins: list[str]
    target_name: str = "Q"

    def index_of(self, date) -> int:
        """Position of ``date`` in ``time``; raises ValueError if outside the period."""
        ts = pd.Timestamp(date)
        if ts < self.time[0] or ts > self.time[-1]:
            raise ValueError(f"{ts.date()} is outside the loaded period "
                             f"{self.time[0].date()}..{self.time[-1].date()}")
        return int(self.time.get_loc(ts))


def load_for_config(cfg: RunConfig, start=None, end=None, basins=None) -> xr.Dataset:
    """Load the dataset the config names, over ``start..end`` (default: train_start..test_end)."""
    d = cfg.data
    return load_dataset(
        root=d.root,
        basins=d.basins if basins is None else basins,
        source=d.source,
        start=str(start or d.train_start),
        end=str(end or d.test_end),
        pet=d.pet_method(),
    )


def check_config_period(cfg: RunConfig, ds: xr.Dataset) -> None:
    """The configured periods lie inside the data, and the forcing is complete over them.

    Args:
        cfg: the run config (``data.train_start`` .. ``data.test_end``).
        ds: the dataset loaded for it (``load_for_config``), with ``attrs["data_period"]``.

    Raises:
        ConfigError: a configured date is outside the span the data files cover (names the
            field, the date, the span and the source).
        ImplausibleDataError: forcing missing inside a period (names file, basin, first dates).
    """
    d = cfg.data
    span = data_period(ds)
    if span is not None:
        lo, hi = (t.date() for t in span)
        where = f"{ds.attrs.get('source', 'the data')} in {ds.attrs.get('data_root', '?')}"
        for name in ("train_start", "train_end", "test_start", "test_end"):
            day = getattr(d, name)
            if not lo <= day <= hi:
                raise ConfigError(f"data.{name} {day} is outside the data: {where} covers {lo}..{hi} "
                                  f"for these basins; set data.{name} within it")
    where = lambda b, v: source_file(ds, b, v)  # noqa: E731
    # evaluation simulates train_start..test_end in one run: every day of it needs forcing
    check_complete(ds, DYNAMIC_INPUTS, d.train_start, d.test_end,
                   f"the simulated period data.train_start..data.test_end ({d.train_start}..{d.test_end})",
                   where)


def fit_normalizer(cfg: RunConfig, ds: xr.Dataset) -> Normalizer:
    """Normalisation statistics over the training period and the training basins only."""
    return Normalizer.fit(ds, list(DYNAMIC_INPUTS), static_attribute_names(ds),
                          start=str(cfg.data.train_start), end=str(cfg.data.train_end))


def prepare(ds: xr.Dataset, norm: Normalizer) -> Prepared:
    """Model-ready arrays of ``ds`` normalised with ``norm``.

    Raises:
        ValueError: NaN in forcing (names variable, basins, first date) or attributes.
    """
    missing = [v for v in (*DYNAMIC_INPUTS, "Q") if v not in ds]
    if missing:
        raise ValueError(f"dataset lacks variables {missing} (has {list(ds.data_vars)})")
    x_dyn = norm.transform_dynamic(ds)  # raises on NaN forcing
    forcing = np.stack([ds[v].transpose("time", "basin").values for v in DYNAMIC_INPUTS],
                       axis=-1).astype(np.float32)
    return Prepared(
        ds=ds,
        forcing=forcing,
        x_dyn=x_dyn,
        x_static=norm.transform_static(ds),
        target=ds["Q"].transpose("time", "basin").values.astype(np.float32),
        time=pd.DatetimeIndex(ds.time.values),
        basins=[str(b) for b in ds.basin.values],
    )


def save_normalizer(norm: Normalizer, path: Path) -> None:
    from ..runs.io import write_text_atomic

    write_text_atomic(path, norm.to_json())
