"""Learning tasks: what a run is trained on, how it is scored and shown, per data source.

A task ties together the pieces that differ between streamflow at basins (the δ models, Feng et
al. 2022) and surface soil moisture on grid cells (ParaFormer and the dPL learners, Li & Lu 2023):
the observed target variable, the simulated output it is compared with, the learner's per-day
inputs, the loss, the per-site metrics, the kind of site and the spin-up. Everything downstream
(``core.training.data``, the trainer, ``core.evaluation``) asks the task and never branches on
the data source.

The task comes from ``data.source`` (``smap`` -> soil moisture, else streamflow); ``data.target``,
``data.inputs`` and ``train.loss`` override its defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ..datasets.loader import site_coords
from ..losses import masked_rmse, nse_star_loss, rmse_comb_loss
from ..metrics import METRICS


@dataclass(frozen=True)
class Task:
    """One learning task.

    Attributes:
        name: "streamflow" or "soil_moisture".
        target: the observed variable in the dataset (Q mm/d, smap_am m³/m³).
        observed: its name in outputs.nc, beside the simulated series (Q_obs, SM_obs).
        observed_attrs: CF attributes of ``observed`` (units, long_name).
        inputs: the learner's per-day inputs; a name equal to ``target`` enters with its gaps
            filled by 0 and a mask channel (Li & Lu 2023's Z).
        loss: default loss name (``LOSSES``).
        site_kind: "basin" (points on the map) or "grid_cell" (squares).
        cycle_spinup: spin the states up by cycling the first training year before the data
            (SMAP: docs/paraformer_vic.md section 2), instead of warming up inside long series.
        headline: metrics summarised in the run status, the first one the run's headline.
    """

    name: str
    target: str
    observed: str
    observed_attrs: dict = field(default_factory=dict)
    inputs: tuple[str, ...] = ("P", "T", "PET")
    loss: str = "rmse_comb"
    site_kind: str = "basin"
    cycle_spinup: bool = False
    headline: tuple[str, ...] = ("NSE", "KGE")


TASKS: dict[str, Task] = {
    "streamflow": Task("streamflow", "Q", "Q_obs",
                       {"units": "mm d-1", "long_name": "observed streamflow (USGS)"}),
    "soil_moisture": Task("soil_moisture", "smap_am", "SM_obs",
                          {"units": "m3 m-3", "long_name": "SMAP L3 surface soil moisture (AM pass, 0-5 cm)"},
                          inputs=("P", "T", "PET", "smap_am"), loss="masked_rmse", site_kind="grid_cell",
                          cycle_spinup=True, headline=("RMSE", "PCC", "NSE")),
}

#: data source -> task (sources not listed: streamflow)
SOURCE_TASKS: dict[str, str] = {"smap": "soil_moisture"}


def task_for(data_cfg) -> Task:
    """The task of a ``DataConfig`` (its source), with ``target`` and ``inputs`` overridden by
    the config when given."""
    task = TASKS[SOURCE_TASKS.get(str(data_cfg.source), "streamflow")]
    kw = {}
    if getattr(data_cfg, "target", None):
        kw["target"] = data_cfg.target
    if getattr(data_cfg, "inputs", None):
        kw["inputs"] = tuple(data_cfg.inputs)
    return replace(task, **kw) if kw else task


def _rmse_comb(sim: torch.Tensor, obs: torch.Tensor, train_cfg, scale=None) -> torch.Tensor:
    return rmse_comb_loss(sim, obs, alpha=train_cfg.alpha)


def _masked_rmse(sim: torch.Tensor, obs: torch.Tensor, train_cfg, scale=None) -> torch.Tensor:
    return masked_rmse(sim, obs)


def _nse_star(sim: torch.Tensor, obs: torch.Tensor, train_cfg, scale=None) -> torch.Tensor:
    if scale is None:
        raise ValueError("the nse_star loss needs each site's standard deviation of the target (scale)")
    return nse_star_loss(sim, obs, scale)


#: loss name -> fn(sim [time, site], obs [time, site] with NaN gaps, train config,
#: scale [site] = each site's standard deviation of the target over the training period) -> scalar
LOSSES: dict[str, Callable[..., torch.Tensor]] = {"rmse_comb": _rmse_comb, "masked_rmse": _masked_rmse,
                                                  "nse_star": _nse_star}


def loss_for(task: Task, train_cfg) -> Callable[..., torch.Tensor]:
    """The data loss of a run: ``train.loss`` unless ``auto``, else the task's."""
    name = task.loss if getattr(train_cfg, "loss", "auto") == "auto" else train_cfg.loss
    return LOSSES[name]


def soil_moisture_metrics(sim: xr.Dataset, obs: xr.DataArray, meta: xr.Dataset,
                          simulated: str = "SM") -> pd.DataFrame:
    """Per-cell metrics of simulated surface soil moisture against SMAP (Li & Lu 2023, Table 2).

    Columns: NSE, KGE, RMSE (m³/m³), PCC (Pearson r) over the days with a retrieval, n_obs,
    SM_obs_mean and SM_mean (m³/m³, same days), ET_mean, PET_mean, P_mean, R_mean, Qb_mean
    (mm/d, all days) where simulated, and the cell's coordinates (lat, lon, row, col).
    """
    s = sim[simulated].transpose("time", "site").values
    o = obs.transpose("time", "site").values
    df = pd.DataFrame(index=pd.Index(sim.site.values.astype(str), name="site"))
    for name, fn in METRICS.items():
        df[name] = fn(s, o)
    ok = np.isfinite(o)
    df["n_obs"] = ok.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        df["SM_obs_mean"] = np.nanmean(np.where(ok, o, np.nan), axis=0)
        df["SM_mean"] = np.nanmean(np.where(ok, s, np.nan), axis=0)
    for v in ("ET", "PET", "P", "R", "Qb"):
        if v in sim:
            df[f"{v}_mean"] = sim[v].mean("time").values
    for c, v in site_coords(meta).items():
        df[c] = v.values
    return df
