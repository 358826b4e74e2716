"""Prediction anywhere: run a trained model on any basins and period of a data root.

A δ model (or the LSTM baseline) needs only the forcing and the static attributes of a basin, so
it can simulate basins and periods it never saw in training (the regionalisation use of dPL,
Tsai et al. 2021). Inputs are normalised with the *training* statistics stored in the run
(``normalization.json``). States are spun up over ``warmup_days`` before ``start``; streamflow,
where the data root has it, gives per-basin metrics.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..datasets.loader import data_period, load_dataset
from ..runs import Run, atomic_write_many, validate_name, write_text_atomic
from ..training.tasks import task_for
from ..training.trainer import load_model, select_device
from .evaluate import evaluate_model


@dataclass
class Prediction:
    """Where a prediction was written and what it scored.

    Attributes:
        path: folder with outputs.nc, metrics.csv (when streamflow exists) and prediction.json.
        metrics: per-basin table (NaN metrics where a basin has no streamflow), or None when no
            basin has any observed day.
        n_sites: basins simulated.
    """

    path: Path
    metrics: pd.DataFrame | None
    n_sites: int


def predict_run(run: Run, data_root: str | None = None, basins=None, start=None, end=None,
                warmup_days: int = 365, device: str = "auto", name: str | None = None) -> Prediction:
    """Simulate ``basins`` over ``start..end`` with the run's trained model.

    Args:
        run: a trained run (has ``checkpoints/last.pt``).
        data_root: data root to read (default: the run's, else the usual resolution).
        basins: ids, a count, or None for every basin of the root (see ``select_basins``).
        start, end: output period (default: the run's test period).
        warmup_days: days before ``start`` that only spin up the states (clipped to the data).
        device: auto, cpu or cuda.
        name: sub-folder name under ``<run>/predictions/`` (default from period and basins); a
            single safe path component, so a prediction never lands on the run's own results.

    Returns:
        Prediction (outputs written atomically).

    Raises:
        FileNotFoundError: the run has no checkpoint or the data root lacks files (named).
        BasinNotFoundError: an unknown basin id.
        ValueError: bad period, NaN forcing, or attributes the model needs are missing.
        InvalidNameError: ``name`` has separators, ``..`` or other unsafe characters.
        RunBusyError: another process trains or evaluates the run.
    """
    if warmup_days < 0:
        raise ValueError(f"warmup_days must be ≥ 0, got {warmup_days}")
    if name is not None:
        validate_name(name, "prediction name")
    with run.lock("predicting"):
        return _predict(run, data_root, basins, start, end, warmup_days, device, name)


def _predict(run, data_root, basins, start, end, warmup_days, device, name) -> Prediction:
    dev = select_device(device)
    model, cfg, norm = load_model(run, device=dev)
    start = pd.Timestamp(start or cfg.data.test_start)
    end = pd.Timestamp(end or cfg.data.test_end)
    if not start <= end:
        raise ValueError(f"start {start.date()} must not be after end {end.date()}")
    spin = start - pd.Timedelta(days=warmup_days)
    root = str(data_root) if data_root else cfg.data.root
    ds = load_dataset(root=root, basins=basins, source=cfg.data.source, start=str(spin.date()),
                      end=str(end.date()), pet=cfg.data.pet_method())
    span = data_period(ds)
    if span is not None:  # spin-up clipped to the data; the output period must lie inside them
        lo, hi = span
        if start < lo or end > hi:
            raise ValueError(f"the period {start.date()}..{end.date()} is outside the data "
                             f"({ds.attrs.get('source')} covers {lo.date()}..{hi.date()} for these basins)")
        ds = ds.sel(time=slice(max(spin, lo), end))
    first = pd.Timestamp(ds.time.values[0])
    if first > start:
        raise ValueError(f"the data start on {first.date()}, after the requested start {start.date()}")
    sim, metrics, params = evaluate_model(model, cfg, norm, ds, start, end, dev, task_for(cfg.data),
                                         cfg.train.eval_basin_chunk)
    sim.attrs.update(run_id=run.run_id, spin_up_from=str(first.date()))
    label = validate_name(name or f"{start.date()}_{end.date()}_{sim.sizes['site']}sites",
                          "prediction name")
    out = run.predictions_dir / label
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_many({out / "outputs.nc": lambda p: sim.to_netcdf(p),
                       out / "parameters.nc": lambda p: params.to_netcdf(p)})
    has_obs = bool((metrics["n_obs"] > 0).any())
    if has_obs:
        write_text_atomic(out / "metrics.csv", metrics.to_csv())
    info = {
        "run_id": run.run_id, "data_root": str(root), "sites": [str(b) for b in sim.site.values],
        "start": str(start.date()), "end": str(end.date()), "spin_up_from": str(first.date()),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "median_nse": float(metrics["NSE"].median()) if has_obs else None,
    }
    write_text_atomic(out / "prediction.json", json.dumps(info, indent=2))
    return Prediction(path=out, metrics=metrics if has_obs else None, n_sites=int(sim.sizes["site"]))
