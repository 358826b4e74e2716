"""Per-cell SCE-UA calibration of the VIC-type model against SMAP (the baseline of Li & Lu 2023).

Each grid cell is calibrated on its own with ``spotpy``'s Shuffled Complex Evolution (Duan et
al. 1992): the objective is the RMSE of the simulated surface soil moisture against SMAP over
the cell's training days with a retrieval; θ = (infiltr, Ds, Dsmax, Ws, expt) within the
``VIC_PARAMETERS`` bounds. Every evaluation runs the VIC's fused forward kernel (no gradient),
with the states spun up over a cycled first year. Cells are calibrated in parallel processes.
Defaults of ``../shared/docs/paraformer_vic.md``: 5 complexes, ≤ 5000 evaluations per cell.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import random
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import spotpy
import torch

from ..cluster import connect
from ..physics.vic import VIC, VIC_PARAMETERS, cycle_spinup, soil_properties


@dataclass
class CellProblem:
    """One cell's calibration inputs (float64 numpy).

    Attributes:
        site: cell id.
        forcing: [time, 3] P (mm/d), T (°C), PET (mm/d) over spin-up + training period.
        obs: [time] SMAP (m³/m³, NaN = no retrieval) on the same days; spin-up days NaN.
        statics: bulk (g cm-3), clay, sand (%), ndvi (-) of the cell.
        spinup: leading days that only spin up the states (no objective).
        resid_moist: the VIC's residual moisture (m³/m³, ``VIC.resid_moist``).
    """

    site: str
    forcing: np.ndarray
    obs: np.ndarray
    statics: dict
    spinup: int
    resid_moist: float = 0.0


@dataclass
class CellResult:
    """θ (physical units, name -> value), the best training RMSE and the number of evaluations
    spotpy recorded (its last loop may run a few more that it does not record)."""

    site: str
    theta: dict
    rmse: float
    evaluations: int


class _Setup:
    """spotpy's setup protocol for one cell (parameters, simulation, evaluation, objective)."""

    def __init__(self, problem: CellProblem):
        self.problem = problem
        self.specs = VIC_PARAMETERS
        self.params = [spotpy.parameter.Uniform(s.name, s.lower, s.upper) for s in VIC_PARAMETERS]
        st = {k: torch.tensor([float(v)], dtype=torch.float64) for k, v in problem.statics.items()}
        self.site = soil_properties(bulk=st["bulk"], clay=st["clay"], sand=st["sand"], ndvi=st["ndvi"])
        self.forcing = torch.tensor(problem.forcing[:, None, :], dtype=torch.float64)
        self.model = VIC(engine="fused", resid_moist=problem.resid_moist)
        self.mask = np.isfinite(problem.obs)
        self.mask[: problem.spinup] = False

    def parameters(self):
        return spotpy.parameter.generate(self.params)

    def simulation(self, vector):
        theta = {s.name: torch.full((1, 1, 1), float(v), dtype=torch.float64) for s, v in zip(self.specs, vector)}
        with torch.no_grad():
            out = self.model(self.forcing, theta, site=self.site)
        return out.outputs["SM"][:, 0].numpy()

    def evaluation(self):
        return self.problem.obs

    def objectivefunction(self, simulation, evaluation, params=None):
        d = simulation[self.mask] - evaluation[self.mask]
        return float(np.sqrt(np.mean(d * d))) if d.size else float("inf")


def calibrate_cell(problem: CellProblem, max_evals: int = 5000, complexes: int = 5,
                   seed: int = 0) -> CellResult:
    """SCE-UA on one cell (spotpy ``sceua``, minimising the SM RMSE).

    Raises:
        ValueError: the cell has no SMAP retrieval after the spin-up.
    """
    setup = _Setup(problem)
    if not setup.mask.any():
        raise ValueError(f"cell {problem.site}: no SMAP retrieval in the calibration period")
    # spotpy's random_state also reseeds numpy's and Python's global generators: keep them
    state_np, state_py = np.random.get_state(), random.getstate()
    sampler = spotpy.algorithms.sceua(setup, dbname=None, dbformat="ram", save_sim=False,
                                      random_state=seed)
    with contextlib.redirect_stdout(io.StringIO()):  # spotpy prints its progress
        sampler.sample(max_evals, ngs=complexes)
    np.random.set_state(state_np)
    random.setstate(state_py)
    res = sampler.getdata()
    like = np.asarray(res["like1"], dtype=float)
    best = int(np.nanargmin(like))
    theta = {s.name: float(res[f"par{s.name}"][best]) for s in setup.specs}
    return CellResult(problem.site, theta, float(like[best]), int(len(like)))


def _worker(args):
    problem, max_evals, complexes, seed = args
    torch.set_num_threads(1)
    return calibrate_cell(problem, max_evals, complexes, seed)


def calibrate_cells(problems: list[CellProblem], max_evals: int = 5000, complexes: int = 5,
                    seed: int = 0, processes: int | None = None,
                    scheduler: str | None = None) -> list[CellResult]:
    """``calibrate_cell`` for every cell, in ``processes`` worker processes (default: the CPU
    count), each single-threaded; or, with a Dask ``scheduler`` address, one task per cell on
    that cluster (``client.map``; spotpy in its sequential mode inside each task). Results in
    the order of ``problems``; the same seeds either way, so the same θ.

    Raises:
        ClusterError: ``scheduler`` given and unreachable (core.cluster).
    """
    jobs = [(p, max_evals, complexes, seed + i) for i, p in enumerate(problems)]
    if scheduler:
        client = connect(scheduler)
        futures = client.map(_worker, jobs, pure=False, key=[f"sceua-{p.site}-{uuid.uuid4().hex[:8]}"
                                                            for p in problems])
        try:
            return client.gather(futures)
        finally:
            client.cancel(futures)
    processes = processes or os.cpu_count() or 1
    if processes == 1:
        return [_worker(j) for j in jobs]
    # fresh interpreters (spawn): no OpenMP or torch thread pool inherited from this process;
    # each worker sets its own thread counts to 1 before loading the kernel
    env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
            return list(pool.map(_worker, jobs))
    finally:
        if env["OMP_NUM_THREADS"] is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env["OMP_NUM_THREADS"]


def cell_problems(ds, sites: list[str], start: str, end: str, spinup_days: int = 365) -> list[CellProblem]:
    """Calibration problems from a ``load_smap`` dataset: forcing and SMAP over ``start..end``,
    preceded by the first ``spinup_days`` of that period cycled (doc section 2: spin up by
    cycling the first training year).

    Raises:
        ValueError: the period is shorter than ``spinup_days``.
    """
    d = ds.sel(site=sites, time=slice(start, end))
    nt = d.sizes["time"]
    if nt < spinup_days:
        raise ValueError(f"period {start}..{end} has {nt} days, fewer than the {spinup_days} spin-up days")
    out = []
    for s in sites:
        c = d.sel(site=s)
        f = np.stack([c["P"].values, c["T"].values, c["PET"].values], -1).astype(np.float64)
        obs = c["smap_am"].values.astype(np.float64)
        f = cycle_spinup(f, spinup_days)
        obs = np.concatenate([np.full(spinup_days, np.nan), obs], 0)
        statics = {k: float(c[k].values) for k in ("bulk", "clay", "sand", "ndvi")}
        out.append(CellProblem(str(s), f, obs, statics, spinup_days))
    return out
