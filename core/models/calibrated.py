"""Per-site calibrated parameters (SCE-UA, the baseline of Li & Lu 2023) behind the model contract.

``CalibratedModel`` holds one θ per calibrated grid cell (found by ``calibrate``: spotpy's SCE-UA
per cell, ``core.models.sceua``) and runs the backbone with it. A site that was not
calibrated (the NG cells of the benchmark) takes the θ of the nearest calibrated cell
(great-circle distance), which is how a per-cell calibration transfers to unseen cells; the
paper's SCE-UA row on S8NG is this case.

It follows the contract of every model (``core.models.factory``), so training, evaluation and
the explorer handle it like the learners; its ``site_inputs`` add the cell's ``lat``/``lon`` to
the backbone's.
"""

from __future__ import annotations

import time
from typing import Mapping

import numpy as np
import torch
from torch import nn

from ..cluster import scheduler_address
from .param_model import ParamOutput
from .sceua import CellProblem, calibrate_cells


class CalibratedModel(nn.Module):
    """θ per calibrated site -> backbone.

    Args:
        backbone: the process model (the VIC-type model).
        method: "sceua" (``calibrate`` runs SCE-UA per cell) or "default" (``calibrate`` gives
            every cell the backbone's ``default_parameters``: the uncalibrated reference run).

    Buffers (filled by ``calibrate``, saved in checkpoints): ``theta01 [n_cal, p]`` in unit
    space of the backbone's ParamSpecs, ``lat``/``lon [n_cal]`` (degrees), ``rmse [n_cal]``
    (training RMSE) and ``evaluations [n_cal]``.
    """

    #: the output compared with the target
    target_output = "SM"

    def __init__(self, backbone: nn.Module, method: str = "sceua"):
        super().__init__()
        if method not in ("sceua", "default"):
            raise ValueError(f"calibration method must be 'sceua' or 'default', got {method!r}")
        self.method = method
        self.backbone = backbone
        self.specs = tuple(backbone.parameter_specs)
        self.nmul = backbone.nmul
        p = len(self.specs)
        self.register_buffer("theta01", torch.zeros(0, p, dtype=torch.float64))
        self.register_buffer("lat", torch.zeros(0, dtype=torch.float64))
        self.register_buffer("lon", torch.zeros(0, dtype=torch.float64))
        self.register_buffer("rmse", torch.zeros(0, dtype=torch.float64))
        self.register_buffer("evaluations", torch.zeros(0, dtype=torch.int64))
        # no trainable weights; one dummy keeps optimisers and checkpoints of the trainer happy
        self.dummy = nn.Parameter(torch.zeros(1), requires_grad=False)

    @property
    def site_inputs(self) -> tuple[str, ...]:
        return tuple(self.backbone.site_inputs) + ("lat", "lon")

    def prepare(self, target) -> None:
        """Data-dependent set-up before training (the model contract): none."""

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("theta01", "lat", "lon", "rmse", "evaluations"):
            v = state_dict.get(prefix + name)
            if v is not None:  # sized by the checkpoint (the number of calibrated cells)
                setattr(self, name, torch.empty_like(v))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def calibrate(self, data, cfg, log=print) -> dict:
        """SCE-UA per site on ``data`` (a ``Prepared`` of the training period with a cycled
        spin-up), in parallel processes (``cfg.train.threads`` or all cores), or one task per
        site on the Dask cluster of ``$HYDROLENS_SCHEDULER`` when it is set (docs/scaling.md).

        Returns:
            {"median_rmse", "median_evaluations", "seconds"}.

        Raises:
            ValueError: a site without a SMAP retrieval in the training period.
        """
        nb = len(self.backbone.site_inputs)
        self.lat = torch.from_numpy(data.site_static[:, nb].astype(np.float64))
        self.lon = torch.from_numpy(data.site_static[:, nb + 1].astype(np.float64))
        if self.method == "default":
            d = self.backbone.default_parameters
            u = [float(s.unscale(torch.tensor(d[s.name], dtype=torch.float64))) for s in self.specs]
            self.theta01 = torch.tensor([u] * len(data.sites), dtype=torch.float64)
            self.rmse = torch.full((len(data.sites),), float("nan"), dtype=torch.float64)
            self.evaluations = torch.zeros(len(data.sites), dtype=torch.int64)
            return {"median_rmse": float("nan"), "seconds": 0.0, "median_evaluations": 0.0}
        problems = []
        for j, site in enumerate(data.sites):
            statics = {n: float(data.site_static[j, k]) for k, n in enumerate(self.backbone.site_inputs)}
            problems.append(CellProblem(site, data.forcing[:, j].astype(np.float64),
                                        data.target[:, j].astype(np.float64), statics, data.spinup_days,
                                        getattr(self.backbone, "resid_moist", 0.0)))
        t0 = time.perf_counter()
        # on the Dask cluster of $HYDROLENS_SCHEDULER when one is set, else a local process pool
        res = calibrate_cells(problems, max_evals=cfg.train.sceua_evaluations, complexes=5,
                              seed=cfg.train.seed, processes=cfg.train.threads,
                              scheduler=scheduler_address())
        theta = np.array([[float(s.unscale(torch.tensor(r.theta[s.name], dtype=torch.float64))) for s in self.specs]
                          for r in res])
        self.theta01 = torch.from_numpy(theta)
        self.rmse = torch.tensor([r.rmse for r in res], dtype=torch.float64)
        self.evaluations = torch.tensor([r.evaluations for r in res], dtype=torch.int64)
        return {"median_rmse": float(self.rmse.median()), "seconds": round(time.perf_counter() - t0, 1),
                "median_evaluations": float(self.evaluations.double().median())}

    def nearest(self, lat: torch.Tensor, lon: torch.Tensor) -> torch.Tensor:
        """Index of the nearest calibrated site for each (lat, lon) [site] (haversine).

        Raises:
            RuntimeError: nothing calibrated yet.
        """
        if self.theta01.shape[0] == 0:
            raise RuntimeError("no calibrated sites: train the sceua run first")
        la1, lo1 = torch.deg2rad(lat.double())[:, None], torch.deg2rad(lon.double())[:, None]
        la2, lo2 = torch.deg2rad(self.lat)[None], torch.deg2rad(self.lon)[None]
        a = torch.sin((la2 - la1) / 2) ** 2 + torch.cos(la1) * torch.cos(la2) * torch.sin((lo2 - lo1) / 2) ** 2
        return torch.argmin(a, dim=1)

    def forward(self, x_dyn, x_static, forcing: torch.Tensor, warmup: int,
                state: Mapping[str, torch.Tensor] | None = None, *,
                site_static: torch.Tensor | None = None) -> ParamOutput:
        """Simulate days ``warmup..`` with each site's calibrated θ (or its nearest calibrated
        neighbour's). ``site_static [site, len(site_inputs)]`` is required (soil statics, lat,
        lon); ``x_dyn``/``x_static`` are not used.

        Raises:
            ValueError: ``site_static`` missing or of the wrong width.
        """
        nb = len(self.backbone.site_inputs)
        if site_static is None or site_static.shape[-1] != nb + 2:
            raise ValueError(f"sceua: site_static must be [site, {nb + 2}] ({', '.join(self.site_inputs)})")
        idx = self.nearest(site_static[:, nb], site_static[:, nb + 1])
        u = self.theta01[idx].to(forcing.dtype).to(forcing.device)          # [site, p]
        params = {s.name: s.scale(u[:, i]).reshape(1, -1, 1).expand(1, -1, self.nmul)
                  for i, s in enumerate(self.specs)}
        site = self.backbone.site_properties(site_static[:, :nb].to(forcing.dtype))
        with torch.no_grad():
            if warmup > 0:
                state = self.backbone(forcing[:warmup], params, state, site=site).final_state
            res = self.backbone(forcing[warmup:], params, state, site=site)
        return ParamOutput(outputs=dict(res.outputs), params=params, final_state=res.final_state)
