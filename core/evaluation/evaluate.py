"""Simulation over long periods and evaluation of a run on its test period.

The test simulation starts at the beginning of the training period and runs continuously to the
end of the test period, so the HBV states entering the test period are warmed up over the whole
training period (Feng et al. 2022). Metrics use the test period only.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ..physics import (DERIVED_OUTPUTS, FLUX_DESCRIPTIONS, FORCING_OUTPUTS, HBV_PANELS, OUTPUT_NAMES,
                       OUTPUT_UNITS, STATE_DESCRIPTIONS, spec)
from ..runs import Run, RunFileError, atomic_write_many, this_process
from ..datasets.loader import site_coords
from ..datasets.schema import BASIN_COORDS
from ..training.data import (Prepared, check_config_period, forward_chunks, load_for_config,
                             prepare_for_run)
from ..training.tasks import Task, soil_moisture_metrics, task_for
from ..training.trainer import load_model, select_device
from ..metrics import METRICS

SAVED_OUTPUTS: tuple[str, ...] = (*OUTPUT_NAMES, "Q_sim")
#: Forcing columns of ``Prepared.forcing`` in order (P, T, PET), saved beside the outputs.
FORCING_ORDER: tuple[str, ...] = tuple(FORCING_OUTPUTS)


def _series_attrs(name: str, specs: dict | None = None) -> dict:
    """CF attributes (units, long_name, kind) of an output series; ``specs``: the backbone's
    ``OutputSpec`` by name, which take precedence (a second process model brings its own)."""
    if specs and name in specs:
        o = specs[name]
        return {"units": o.units, "long_name": o.long_name, "kind": "state" if o.kind == "state" else "flux"}
    if name in FORCING_OUTPUTS:
        units, desc = FORCING_OUTPUTS[name]
        return {"units": units, "long_name": desc, "kind": "forcing"}
    if name in DERIVED_OUTPUTS:
        units, desc = DERIVED_OUTPUTS[name]
        return {"units": units, "long_name": desc, "kind": "state"}
    kind = "state" if name in STATE_DESCRIPTIONS else "flux"
    desc = {**STATE_DESCRIPTIONS, **FLUX_DESCRIPTIONS}.get(name, name)
    return {"units": OUTPUT_UNITS.get(name, "mm d-1"), "long_name": desc, "kind": kind}


def _parameter_attrs(name: str, dynamic: bool, specs: dict | None = None) -> dict:
    """CF attributes of a learned parameter, from its ParamSpec (units, bounds, static/dynamic):
    the model's own (``specs`` by name) or HBV's and the routing's."""
    ps = specs[name] if specs and name in specs else spec(name)
    return {"units": ps.units, "long_name": ps.description, "valid_min": ps.lower,
            "valid_max": ps.upper, "parameter_type": "dynamic" if dynamic else "static",
            "dynamic_capable": int(ps.dynamic_capable)}


@torch.no_grad()
def simulate(model, data: Prepared, start, device: torch.device | None = None,
             chunk: int = 64, warmup_until=None, components: bool = False) -> tuple[xr.Dataset, xr.Dataset]:
    """Run ``model`` over all of ``data`` and return the days from ``start`` on.

    Args:
        model: a DeltaModel or the StreamflowLSTM (which returns Q_sim only and no parameters).
        data: prepared arrays (time axis from the first spin-up day to the last output day).
        start: first day to return; every day before it spins up the states (no output kept).
        device: where to compute (default: CPU).
        chunk: basins per forward pass (bounds memory: the LSTM holds [time, chunk, hidden]).
        components: also return each HBV component's parameters (``<name>_components``).

    Returns:
        (outputs, parameters), both float32 with CF units:

        * outputs (site, time): Q_sim, the forcing P/T/PET and, for δ models, every HBV state
          and flux plus SWE = SNOWPACK + MELTWATER; attrs ``kind`` (forcing/state/flux).
        * parameters: static ones (site,), dynamic ones (βᵗ, γᵗ) (site, time), the mean over
          the n components, in physical units, each with units, long_name, valid_min/valid_max
          (the ParamSpec bounds) and parameter_type static|dynamic (Feng et al. 2022, Table 1;
          routing θa, θb of eq. 3-4). With ``components``: ``<name>_components`` (basin,
          component) or (basin, time, component). Empty for a model without parameters.
    """
    device = device or torch.device("cpu")
    model.eval()
    i0 = data.index_of(start)
    blocks: dict[str, list[np.ndarray]] = {}
    pblocks: dict[str, list[np.ndarray]] = {}
    dynamic = set(getattr(model, "dynamic", ()))
    backbone = getattr(model, "backbone", None)
    out_specs = {o.name: o for o in getattr(backbone, "output_specs", ())}
    par_specs = {p.name: p for p in getattr(model, "specs", ())}
    for _, out in forward_chunks(model, data, i0, device, chunk):
        for n, v in out.outputs.items():
            if v.dim() == 2:  # [time, site] series (every output of the model contract)
                blocks.setdefault(n, []).append(v.float().cpu().numpy())
        for n, v in out.params.items():
            pblocks.setdefault(n, []).append(v.float().cpu().numpy())
    time = data.time[i0:]
    ds = xr.Dataset(coords={"site": data.sites, "time": time})
    for j, n in enumerate(FORCING_ORDER):
        ds[n] = (("site", "time"), np.ascontiguousarray(data.forcing[i0:, :, j].T, dtype=np.float32),
                 _series_attrs(n))
    for n in (n for n in (*SAVED_OUTPUTS, *blocks) if n in blocks and n not in ds):
        ds[n] = (("site", "time"), np.concatenate(blocks[n], axis=1).T, _series_attrs(n, out_specs))
    if "SNOWPACK" in ds and "MELTWATER" in ds:
        ds["SWE"] = (ds["SNOWPACK"] + ds["MELTWATER"]).assign_attrs(_series_attrs("SWE"))
    params = xr.Dataset(coords={"site": data.sites, "time": time})
    for n, parts in pblocks.items():
        is_dyn = n in dynamic
        # HBV: [1 or time, basin, nmul]; routing: [site]
        v = np.concatenate(parts, axis=1 if parts[0].ndim == 3 else 0)
        attrs = _parameter_attrs(n, is_dyn, par_specs)
        if v.ndim == 1:
            params[n] = (("site",), v, attrs)
            continue
        mean = v.mean(axis=2)                                           # [time or 1, basin]
        if is_dyn:
            params[n] = (("site", "time"), np.ascontiguousarray(mean.T), attrs)
        else:
            params[n] = (("site",), mean[0], attrs)
        if components:
            comp = dict(attrs, long_name=f"{attrs['long_name']} (each HBV component)")
            if is_dyn:
                params[f"{n}_components"] = (("site", "time", "component"), v.transpose(1, 0, 2), comp)
            else:
                params[f"{n}_components"] = (("site", "component"), v[0], comp)
    if components and "component" in params.dims:
        params = params.assign_coords(component=np.arange(params.sizes["component"]))
    return ds, params


def basin_metrics(sim: xr.Dataset, obs: xr.DataArray, meta: xr.Dataset) -> pd.DataFrame:
    """Per-basin metrics of Q_sim against ``obs`` plus the untrained outputs.

    Columns: NSE, KGE, RMSE, PCC (streamflow, mm/d), BFI_sim = ΣQ2/ΣQ_unrouted (Feng et al.
    2022), BFI_camels (CAMELS baseflow_index, when present) and BFI_diff = BFI_sim − BFI_camels,
    ET_mean (mm/d), P_mean, Q_obs_mean and P_minus_Q (mm/d, days with observed Q), n_obs, and the gauge
    name and location. BFI_sim and ET_mean are NaN for a model without those outputs (LSTM).
    """
    q_sim = sim["Q_sim"].transpose("time", "site").values
    q_obs = obs.transpose("time", "site").values
    df = pd.DataFrame(index=pd.Index(sim.site.values.astype(str), name="site"))
    for name, fn in METRICS.items():
        df[name] = fn(q_sim, q_obs)
    df["n_obs"] = np.isfinite(q_obs).sum(0)
    nan = np.full(len(df), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        # sums in float64: a float32 column is written to metrics.csv at float32's shortest repr,
        # so BFI_diff (float64) would not equal BFI_sim − BFI_camels read back (rtol 1e-6)
        df["BFI_sim"] = (sim["Q2"].astype("float64").sum("time").values
                         / sim["Q_unrouted"].astype("float64").sum("time").values
                         if "Q2" in sim else nan)
    df["ET_mean"] = sim["ET"].astype("float64").mean("time").values if "ET" in sim else nan
    if "baseflow_index" in meta:
        df["BFI_camels"] = meta["baseflow_index"].values
        df["BFI_diff"] = df["BFI_sim"] - df["BFI_camels"]
    if "P" in sim:
        # water balance over the days with observed streamflow: long-term ET ≈ P − Q
        ok = np.isfinite(q_obs)
        p = sim["P"].transpose("time", "site").values.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            df["P_mean"] = np.nanmean(np.where(ok, p, np.nan), axis=0)
            df["Q_obs_mean"] = np.nanmean(q_obs.astype(np.float64), axis=0)
        df["P_minus_Q"] = df["P_mean"] - df["Q_obs_mean"]
    for c in BASIN_COORDS:
        if c in meta.coords or c in meta:
            df[c] = meta[c].values
    return df


#: task name -> per-site metrics table fn(sim, obs, meta)
SITE_METRICS = {"streamflow": basin_metrics, "soil_moisture": soil_moisture_metrics}


def evaluate_model(model, cfg, norm, ds: xr.Dataset, start, end, device: torch.device, task: Task,
                   chunk: int = 64, components: bool = False) -> tuple[xr.Dataset, pd.DataFrame, xr.Dataset]:
    """Simulate ``ds`` (states spun up on every day before ``start``) and score ``start..end``.

    Args:
        model, cfg, norm: as returned by ``load_model``.
        ds: a loaded dataset (``load_dataset``) covering the spin-up days and ``start..end``.
        start, end: the scored period (dates or ISO strings).
        device: where the model runs.
        task: the run's task (``task_for(cfg.data)``): target, observed name, metrics.

    Returns:
        (sim, metrics, parameters): outputs over ``start..end`` with the observed target
        (``Q_obs`` or ``SM_obs``, the task's) and the site coordinates (attrs: ``panels``, the
        backbone's display groups as JSON; ``site_kind``), the per-site table of the task's
        metrics (``basin_metrics`` or ``soil_moisture_metrics``), and the learned parameters
        (``simulate``).

    Raises:
        ValueError: the dataset lacks a learner input (names it) or has NaN forcing.
    """
    missing = [n for n in norm.static if n not in ds]
    if missing:
        raise ValueError(f"the data lack the static attributes {missing} that this model was "
                         "trained with (the learner needs every one of them)")
    data = prepare_for_run(cfg, ds, norm, model, task)
    sim, params = simulate(model, data, start, device, chunk, components=components)
    sim = sim.sel(time=slice(str(start), str(end)))
    params = params.sel(time=slice(str(start), str(end)))
    obs = ds[task.target].sel(time=sim.time)
    sim[task.observed] = obs.astype("float32").assign_attrs(**task.observed_attrs, kind="observation")
    coords = site_coords(ds)
    sim = sim.assign_coords(coords)
    period = f"{str(start)[:10]}..{str(end)[:10]}"
    panels = getattr(getattr(model, "backbone", None), "panels", HBV_PANELS)
    # a panel is shown when the run has all its series (an LSTM run: streamflow only)
    shown = [p for p in panels if all(v in sim for v in p["variables"])]
    sim.attrs.update(variant=cfg.model.variant, period=period, site_kind=task.site_kind,
                     target=task.observed, simulated=model.target_output, panels=json.dumps(shown))
    params.attrs.update(variant=cfg.model.variant, period=period, site_kind=task.site_kind,
                        dynamic=",".join(n for n in params.data_vars
                                         if params[n].attrs.get("parameter_type") == "dynamic"
                                         and not n.endswith("_components")))
    params = params.assign_coords(coords)
    return sim, SITE_METRICS[task.name](sim, obs, ds), params


def summary(metrics: pd.DataFrame, task) -> tuple[dict, str]:
    """Status fields (``median_<metric>`` of the task's headline metrics) and a one-line message."""
    fields, parts = {}, []
    for m in task.headline:
        if m in metrics:
            v = float(metrics[m].median())
            fields[f"median_{m.lower()}"] = v
            parts.append(f"{m} {v:.3f}")
    return fields, "test median " + ", ".join(parts)


def evaluate_run(run: Run, data_root: str | None = None, device: str = "auto",
                 checkpoint: str | None = None, write: bool = True, components: bool = False) -> pd.DataFrame:
    """Evaluate a trained run on its test period; writes outputs.nc, parameters.nc and
    metrics.csv atomically (all three land together).

    Args:
        checkpoint: which checkpoint (``last.pt``, ``best.pt`` or ``epoch_NNN.pt``; default: the
            run's model, ``best.pt`` when it validates, else ``last.pt``).
        write: write outputs.nc / parameters.nc / metrics.csv and the status (False: only return
            the table, as the benchmark's learning curve does for earlier epochs).
        components: parameters.nc also holds each HBV component's values.

    Returns:
        the per-site metrics table (index site; column ``split``: ``trained`` for the run's
        sites, ``unseen`` for ``data.test_sites``).

    Raises:
        FileNotFoundError: the run has no checkpoint (names it) or data are missing.
    """
    dev = select_device(device)
    model, cfg, norm = load_model(run, checkpoint=checkpoint, device=dev)
    if data_root:
        cfg.data.root = str(data_root)
    task = task_for(cfg.data)

    def load():
        # the trained sites, then the unseen ones (a set name expands in the reader), in one read
        test = cfg.data.test_sites
        extra = [] if not test else [test] if isinstance(test, str) else list(test)
        ds = load_for_config(cfg, sites=list(dict.fromkeys([*cfg.data.sites, *extra])) if extra else None)
        check_config_period(cfg, ds, task)
        return ds

    def split_column(metrics: pd.DataFrame) -> pd.DataFrame:
        trained = set(str(s) for s in (cfg.data.sites or []))
        metrics.insert(0, "split", ["trained" if s in trained or not trained else "unseen"
                                    for s in metrics.index])
        return metrics

    def score(ds):
        return evaluate_model(model, cfg, norm, ds, cfg.data.test_start, cfg.data.test_end, dev, task,
                              cfg.train.eval_basin_chunk, components=components)

    if not write:
        return split_column(score(load())[1])
    with run.lock("evaluating"):
        try:
            previous = run.status()
        except RunFileError:
            previous = {}
        ds = load()  # bad data fail here, before anything of the run is touched
        run.update_status(state="evaluating", message="evaluating on the test period", **this_process())
        try:
            sim, metrics, params = score(ds)
            metrics = split_column(metrics)
            for d in (sim, params):
                d.attrs.update(run_id=run.run_id, test_period=f"{cfg.data.test_start}..{cfg.data.test_end}")
            # the files are written in full before any replaces the old one (atomic_write_many)
            atomic_write_many({run.outputs_path: lambda p: sim.to_netcdf(p),
                               run.parameters_path: lambda p: params.to_netcdf(p),
                               run.metrics_path: lambda p: p.write_text(metrics.to_csv(), encoding="utf-8")})
        except BaseException as e:
            why = "stopped" if isinstance(e, (KeyboardInterrupt, SystemExit)) else f"{type(e).__name__}: {e}"
            if previous.get("state") == "done" and run.has_evaluation():
                # the previous evaluation is intact: the run stays done with it
                run.update_status(**previous, message=f"re-evaluation failed ({why}); the previous "
                                  "results are kept")
            else:
                run.update_status(state="failed", message=f"evaluation failed: {why}; run "
                                  f"`hydrolens evaluate {run.run_id}` again")
            raise
        fields, message = summary(metrics[metrics["split"] == "trained"], task)
        unseen = metrics[metrics["split"] == "unseen"]
        if len(unseen):
            more, text = summary(unseen, task)
            fields.update({f"{k}_unseen": v for k, v in more.items()})
            message += f"; {len(unseen)} unseen sites: {text.removeprefix('test median ')}"
        run.update_status(state="done", **fields, message=message)
    return metrics
