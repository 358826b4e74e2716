"""Turning a RunConfig into model-ready arrays (shared by training, evaluation and prediction)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ..datasets.checks import check_complete
from ..datasets.loader import data_period, load_dataset, source_file
from ..datasets.normalize import Normalizer
from ..physics import FORCING_NAMES
from ..runs.io import write_text_atomic
from .config import ConfigError, RunConfig
from .tasks import Task

DYNAMIC_INPUTS: tuple[str, ...] = FORCING_NAMES  # P, T, PET feed both g_A and the HBV


def as_tensor(a: np.ndarray, device) -> torch.Tensor:
    """A numpy array (or a slice of one) as a tensor on ``device``, without a copy on CPU."""
    return torch.from_numpy(np.ascontiguousarray(a)).to(device)


def static_attribute_names(ds: xr.Dataset) -> list[str]:
    """Names of the static learner inputs recorded by the reader in ``ds.attrs``."""
    names = ds.attrs["static_attributes"]
    if isinstance(names, str):
        names = [n for n in names.split(",") if n]
    return list(names)


@dataclass
class Prepared:
    """Arrays for one set of sites (basins or grid cells) over one contiguous period.

    Attributes:
        ds: the source dataset (site, time).
        forcing: physical process-model forcing [time, site, 3] (P mm/d, T °C, PET mm/d), float32.
        x_dyn: normalised learner inputs [time, site, n_columns] (``Normalizer.n_columns``).
        x_static: normalised attributes [site, n_static], float32.
        target: the observed training target [time, site], float32, NaN = missing
            (streamflow Q in mm/d for CAMELS/Caravan, SMAP soil moisture in m³/m³).
        time: DatetimeIndex of the period (with a cycled spin-up: the spin-up days first,
            dated before the data).
        sites: site ids (gauge ids or grid-cell ids).
        target_name: the target's variable name in ``ds`` ("Q", "smap_am").
        site_static: the model's physical per-site inputs [site, k] (``model.site_inputs``:
            e.g. bulk, clay, sand, ndvi for the VIC's soil properties), float32; [site, 0]
            when the model has none.
        spinup_days: leading days that are a cycled copy of the first days (0: none).
    """

    ds: xr.Dataset
    forcing: np.ndarray
    x_dyn: np.ndarray
    x_static: np.ndarray
    target: np.ndarray
    time: pd.DatetimeIndex
    sites: list[str]
    target_name: str = "Q"
    site_static: np.ndarray | None = None
    spinup_days: int = 0

    def index_of(self, date) -> int:
        """Position of ``date`` in ``time``; raises ValueError if outside the period."""
        ts = pd.Timestamp(date)
        if ts < self.time[0] or ts > self.time[-1]:
            raise ValueError(f"{ts.date()} is outside the loaded period "
                             f"{self.time[0].date()}..{self.time[-1].date()}")
        return int(self.time.get_loc(ts))


def load_for_config(cfg: RunConfig, start=None, end=None, sites=None) -> xr.Dataset:
    """Load the dataset the config names, over ``start..end`` (default: train_start..test_end),
    for ``sites`` (default: ``data.sites``)."""
    d = cfg.data
    return load_dataset(
        root=d.root,
        basins=d.sites if sites is None else sites,
        source=d.source,
        start=str(start or d.train_start),
        end=str(end or d.test_end),
        pet=d.pet_method(),
    )


def _as_list(sites) -> list:
    return [] if sites is None else [sites] if isinstance(sites, (str, int)) else list(sites)


def load_validation(cfg: RunConfig, train_sites: list[str]) -> xr.Dataset | None:
    """The ``data.val_sites`` that are not training sites, over the training period (None when
    the config names none).

    Raises:
        ConfigError: a validation site is also a test site (``data.test_sites``: validating on
            it would tune on the test split), or every validation site is a training site.
    """
    d = cfg.data
    if d.val_sites is None:
        return None
    ds = load_for_config(cfg, end=d.train_end, sites=_as_list(d.val_sites))
    ids = [str(s) for s in ds["site"].values]
    if d.test_sites is not None:  # the test sites' ids (a set name resolves in the reader): one day's read
        test = set(map(str, load_for_config(cfg, end=d.train_start, sites=_as_list(d.test_sites))["site"].values))
        both = [s for s in ids if s in test]
        if both:
            raise ConfigError(f"data.val_sites ({d.val_sites}) shares {len(both)} site(s) with data.test_sites "
                              f"({d.test_sites}), e.g. {', '.join(both[:5])}: picking the model on a test "
                              "site tunes on the test split; choose validation sites outside it")
    trained = set(map(str, train_sites))
    keep = [s for s in ids if s not in trained]
    if not keep:
        raise ConfigError(f"data.val_sites ({d.val_sites}): all {len(ids)} of its sites are training sites "
                          f"(data.sites {d.sites if isinstance(d.sites, str) else len(train_sites)}); "
                          "set data.val_sites: null and hold out a fraction instead (train.val_fraction: 0.2)")
    return ds.sel(site=keep) if len(keep) < len(ids) else ds


def check_config_period(cfg: RunConfig, ds: xr.Dataset, task: Task) -> None:
    """The configured periods lie inside the data, and the forcing is complete over them.

    Args:
        cfg: the run config (``data.train_start`` .. ``data.test_end``).
        ds: the dataset loaded for it (``load_for_config``), with ``attrs["data_period"]``.
        task: the run's task (``task_for(cfg.data)``, built once by the caller).

    Raises:
        ConfigError: a configured date is outside the span the data files cover (names the
            field, the date, the span and the source).
        ImplausibleDataError: forcing missing inside a period (names file, site, first dates).
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
                                  f"for these sites; set data.{name} within it")
    obs_span = str(ds.attrs.get("smap_period", ""))
    if task.target == "smap_am" and ".." in obs_span:
        hi = pd.Timestamp(obs_span.split("..")[1]).date()
        if d.test_end > hi:
            raise ConfigError(f"data.test_end {d.test_end} is after the last SMAP day {hi} in "
                              f"{ds.attrs.get('file', 'the SMAP file')}; set data.test_end ≤ {hi}")
    where = lambda b, v: source_file(ds, b, v)  # noqa: E731
    # evaluation simulates train_start..test_end in one run: every day of it needs forcing
    check_complete(ds, DYNAMIC_INPUTS, d.train_start, d.test_end,
                   f"the simulated period data.train_start..data.test_end ({d.train_start}..{d.test_end})",
                   where)


def fit_normalizer(cfg: RunConfig, ds: xr.Dataset, task: Task) -> Normalizer:
    """Normalisation statistics over the training period and the training sites only (the
    ``task``'s per-day inputs; the target, when it is an input, with gaps and a mask)."""
    return Normalizer.fit(ds, list(task.inputs), static_attribute_names(ds),
                          start=str(cfg.data.train_start), end=str(cfg.data.train_end),
                          gappy=(task.target,))


def _cycle(a: np.ndarray, n: int) -> np.ndarray:
    """``a [time, ...]`` with its first ``n`` days (repeated if shorter) prepended."""
    reps = -(-n // a.shape[0])
    return np.concatenate([np.concatenate([a] * reps)[:n], a])


def prepare(ds: xr.Dataset, norm: Normalizer, target: str = "Q", site_inputs: tuple[str, ...] = (),
            spinup_days: int = 0) -> Prepared:
    """Model-ready arrays of ``ds`` normalised with ``norm``.

    Args:
        target: the observed variable (``Task.target``).
        site_inputs: physical per-site variables the model reads (``model.site_inputs``).
        spinup_days: prepend a cycled copy of the first ``spinup_days`` days (target NaN), so a
            run starting at day 0 of ``ds`` has spun-up states (SMAP: the first training year).

    Raises:
        ValueError: a variable is missing (names it), NaN in forcing (names variable, sites and
            first date) or attributes.
    """
    missing = [v for v in (*DYNAMIC_INPUTS, target, *site_inputs) if v not in ds and v not in ds.coords]
    if missing:
        raise ValueError(f"dataset lacks variables {missing} (has {list(ds.data_vars)})")
    x_dyn = norm.transform_dynamic(ds)  # raises on NaN forcing
    forcing = np.stack([ds[v].transpose("time", "site").values for v in DYNAMIC_INPUTS],
                       axis=-1).astype(np.float32)
    tgt = ds[target].transpose("time", "site").values.astype(np.float32)
    site_static = np.stack([np.asarray(ds[v].values, np.float32) for v in site_inputs], -1) \
        if site_inputs else np.zeros((ds.sizes["site"], 0), np.float32)
    time = pd.DatetimeIndex(ds.time.values)
    if spinup_days:
        forcing, x_dyn = _cycle(forcing, spinup_days), _cycle(x_dyn, spinup_days)
        tgt = np.concatenate([np.full((spinup_days, tgt.shape[1]), np.nan, np.float32), tgt])
        time = pd.date_range(end=time[0] - pd.Timedelta(days=1), periods=spinup_days, freq="D").append(time)
    return Prepared(
        ds=ds,
        forcing=forcing,
        x_dyn=x_dyn,
        x_static=norm.transform_static(ds),
        target=tgt,
        time=time,
        sites=[str(b) for b in ds.site.values],
        target_name=target,
        site_static=site_static,
        spinup_days=spinup_days,
    )


def prepare_for_run(cfg: RunConfig, ds: xr.Dataset, norm: Normalizer, model, task: Task) -> Prepared:
    """``prepare`` with the run's ``task`` (target, cycled spin-up of the first training year)
    and the model's physical site inputs; ``ds`` starts at ``data.train_start``."""
    spin = 0
    if task.cycle_spinup:
        spin = (pd.Timestamp(cfg.data.train_end) - pd.Timestamp(cfg.data.train_start)).days + 1
    return prepare(ds, norm, target=task.target, site_inputs=tuple(getattr(model, "site_inputs", ())),
                   spinup_days=spin)


def forward_chunks(model, data: Prepared, i0: int, device, chunk: int = 64, sites=None):
    """Run ``model`` (eval or train mode as set by the caller) over all days of ``data`` in
    blocks of ``chunk`` sites, the first ``i0`` days spinning the states up.

    Args:
        model: any model of the factory's contract.
        data: prepared arrays; ``i0``: the first day with outputs (0 ≤ i0 < time).
        device: where to compute; ``chunk``: sites per forward pass (bounds memory).
        sites: indices into ``data.sites`` to run (default: all), in the order given.

    Yields:
        (site indices [k] of the block, the model's output over days ``i0..``).
    """
    idx = np.arange(len(data.sites)) if sites is None else np.asarray(sites, dtype=np.int64)
    site_static = data.site_static if data.site_static is not None else np.zeros((len(data.sites), 0), np.float32)
    for b0 in range(0, len(idx), chunk):
        sl = idx[b0:b0 + chunk]
        yield sl, model(as_tensor(data.x_dyn[:, sl], device), as_tensor(data.x_static[sl], device),
                        as_tensor(data.forcing[:, sl], device), warmup=i0,
                        site_static=as_tensor(site_static[sl], device))


def save_normalizer(norm: Normalizer, path: Path) -> None:
    write_text_atomic(path, norm.to_json())
