"""The δ-family benchmark (Feng et al. 2022, Table 2 and Fig. 3) on the runs of a preset.

For each variant it finds (or trains, through the job runner's ``hydrolens train`` subprocesses that resume after a
kill) the run named ``<preset>-<variant>``, then reports:

* median NSE and KGE of daily streamflow over the test period (all basins);
* BFI r: Pearson r across basins of the simulated baseflow index ΣQ2/ΣQ (long-term, test period)
  against CAMELS ``baseflow_index`` (Feng et al. 2022, sec. 3.3);
* ET r (P − Q): Pearson r across basins of the simulated long-term mean ET against the water
  balance P − Q_obs (test period), the offline stand-in for the MODIS comparison;
* with a MODIS MOD16A2 table: simulated ET composited to the MOD16A2 8-day periods (composites
  start on day-of-year 1, 9, …, 361; the last of a year is 5 or 6 days), the median over basins
  of the temporal r, and the spatial r of the long-term means;
* learning curves: training loss per epoch and the test median NSE of the epoch checkpoints;
* the NSE CDF figure (Feng et al. 2022, Fig. 3).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..models import VARIANTS
from ..runs import Run, RunStore, atomic_write, write_text_atomic

# Feng et al. (2022) Table 2, median NSE on 671 CAMELS basins (Daymet forcing), for reference
PAPER_MEDIAN_NSE = {"delta1": 0.640, "delta_n": 0.714, "delta_n_beta": 0.729, "delta_n_gamma": 0.716,
                    "delta_n_gamma_beta": 0.732, "delta_n_nnr": 0.723, "lstm": 0.748}


def run_name(preset: str, variant: str) -> str:
    """Name of the benchmark run of ``variant`` under ``preset``: ``<preset>-<variant>``."""
    return f"{preset}-{variant}"


def find_run(store: RunStore, name: str) -> Run | None:
    """The newest run whose config name is ``name`` (a finished one first), or None."""
    infos = [i for i in store.list() if i.name == name]
    done = [i for i in infos if i.state == "done"]
    pick = (done or infos or [None])[0]
    return None if pick is None else Run(pick.path)


# ------------------------------------------------------------------------------ training
def preset_label(preset: str) -> str:
    """Run-name prefix of a preset: its name, or the stem of a YAML config file (characters
    other than letters, digits and ``_ . -`` replaced by ``-``, so it is a valid run name)."""
    if not preset.endswith((".yaml", ".yml")):
        return preset
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(preset).stem).strip("-.") or "config"


def _train_config(preset: str, variant: str, epochs: int | None, threads: int | None,
                  data_root: str | None) -> dict:
    """The RunConfig dict of a new benchmark run: the preset (or YAML file) with this variant."""
    from ..training.config import RunConfig, preset_config

    label = preset_label(preset)
    cfg = (RunConfig.from_yaml(preset) if label != preset else preset_config(preset)).to_dict()
    cfg["model"]["variant"] = variant
    cfg["name"] = run_name(label, variant)
    if data_root:
        cfg["data"]["root"] = str(data_root)
    if epochs:
        cfg["train"]["epochs"] = int(epochs)
    if threads:
        cfg["train"]["threads"] = int(threads)
    return cfg


def _needs_training(store: RunStore, name: str, epochs: int | None) -> bool:
    run = find_run(store, name)
    if run is None:
        return True
    info = run.info()
    target = epochs or info.epochs
    return not (info.state == "done" and info.epochs_done >= target and run.has_evaluation())


def ensure_named_runs(store: RunStore, configs: dict[str, dict], epochs: int | None = None,
                      jobs: int = 1, threads: int | None = None, log=print, poll: float = 5.0) -> dict[str, Run]:
    """Train (or resume, or reuse) the run called each key of ``configs`` (name -> RunConfig
    dict of a new run) through the job runner (:class:`core.jobs.JobRunner`, the one the
    explorer uses), at most ``jobs`` at a time, in the order of ``configs``.

    A run that another live process is training waits in the queue until it is free (the
    runner never starts a job on a busy run); a job already queued for a run is waited for, not
    submitted twice. A finished run with fewer than ``epochs`` epochs is resumed to ``epochs``.

    Returns:
        name -> its evaluated run.

    Raises:
        RuntimeError: a training job failed (names the run, its exit code and log; it can be
            resumed by running the benchmark again).
    """
    from ..jobs import JobRunner

    runner = JobRunner(store, max_running=jobs)
    pending = {}
    active = {j.run_id: j for j in runner.jobs(pump=False) if not j.final}
    for name, cfg in configs.items():
        if not _needs_training(store, name, epochs):
            continue
        run = find_run(store, name)
        if run is not None and run.run_id in active:
            job = active[run.run_id]
            log(f"{name}: job {job.job_id} is already {job.state}; waiting for it")
        elif run is not None:
            job = runner.submit_resume(run.run_id, epochs=epochs, threads=threads, start=False,
                                       label=f"benchmark {name}")
            log(f"{name}: resuming {run.run_id} (job {job.job_id})")
        else:
            job = runner.submit_train(cfg, label=f"benchmark {name}", start=False)
            log(f"{name}: training {job.run_id} (job {job.job_id})")
        pending[name] = job.job_id
    failures = []
    if pending:
        runner.pump()
        done = runner.wait(pending.values(), poll=poll, log=log)
        for name, job in zip(pending, done):
            if job.state != "done":
                failures.append(f"{name} ({job.state}, exit {job.returncode}; log {job.log_path})")
    if failures:
        raise RuntimeError("training failed for " + ", ".join(failures) +
                           "; run the benchmark again to resume")
    return {name: find_run(store, name) for name in configs}


def ensure_runs(store: RunStore, preset: str, variants: list[str], epochs: int | None = None,
                jobs: int = 1, threads: int | None = None, data_root: str | None = None,
                log=print, poll: float = 5.0) -> dict[str, Run]:
    """Train (or resume, or reuse) the run ``<preset>-<variant>`` of every variant through
    :func:`ensure_named_runs`. δn(NN_r) trains on the reference HBV (≈ 3× the wall time of the
    other variants in docs/benchmark.md), so it is queued first: with ``jobs`` > 1 the others
    fill the remaining slots around it.

    Raises:
        RuntimeError: a training job failed (see :func:`ensure_named_runs`).
    """
    label = preset_label(preset)
    order = sorted(variants, key=lambda v: not VARIANTS[v].nn_recharge)       # stable: the slowest first
    configs = {run_name(label, v): _train_config(preset, v, epochs, threads, data_root) for v in order}
    ensure_named_runs(store, configs, epochs, jobs, threads, log, poll)
    return evaluated_runs(store, label, variants)


def evaluated_runs(store: RunStore, label: str, variants: list[str], hint: str = "") -> dict[str, Run]:
    """variant -> its evaluated run ``<label>-<variant>``.

    Raises:
        RuntimeError: a variant has no evaluated run (names it; ``hint`` is appended).
    """
    runs = {}
    for v in variants:
        run = find_run(store, run_name(label, v))
        if run is None or not run.has_evaluation():
            raise RuntimeError(f"no evaluated run {run_name(label, v)!r} in {store.root}{hint}")
        runs[v] = run
    return runs


def _iters_per_epoch(run: Run) -> int:
    """Iterations per epoch of a run (recorded by the trainer; else the configured value)."""
    return int(run.status().get("iters_per_epoch") or run.config()["train"].get("iters_per_epoch") or 0)


# ------------------------------------------------------------------------------ scores
def pearson(x, y) -> float:
    """Pearson r over the pairs where both are finite (NaN with fewer than 3 pairs)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    m = np.isfinite(x) & np.isfinite(y)
    if m.sum() < 3:
        return float("nan")
    return float(np.corrcoef(x[m], y[m])[0, 1])


def water_balance_et(outputs: xr.Dataset) -> xr.DataArray:
    """Long-term P − Q_obs per basin (mm/d) over the outputs' period: the ET a closed water
    balance implies (storage change neglected). P = RAIN + SNOW of the δ model's forcing."""
    p = (outputs["RAIN"] + outputs["SNOW"]).mean("time")
    return p - outputs["Q_obs"].mean("time", skipna=True)


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
    temporal = m.groupby("site").apply(lambda g: pearson(g["ET_sim"], g["ET_modis"]),
                                       include_groups=False)
    means = m.groupby("site")[["ET_sim", "ET_modis"]].mean()
    return float(np.nanmedian(temporal.values)), pearson(means["ET_sim"], means["ET_modis"])


@dataclass
class BenchmarkRow:
    variant: str
    label: str
    median_nse: float
    median_kge: float
    bfi_r: float
    et_r: float
    n_sites: int
    epochs: int
    steps: int
    train_hours: float
    modis_temporal_r: float = float("nan")
    modis_spatial_r: float = float("nan")
    extra: dict = field(default_factory=dict)


def score_run(variant: str, run: Run, modis: pd.DataFrame | None = None) -> BenchmarkRow:
    """One table row from a run's metrics.csv, outputs.nc, config and training log."""
    m = run.metrics()
    log = run.train_log()
    iters = _iters_per_epoch(run)
    bfi_r = pearson(m["BFI_sim"], m["BFI_camels"]) if "BFI_camels" in m else float("nan")
    et_r = mt = ms = float("nan")
    if m["ET_mean"].notna().any():
        with run.outputs() as out:
            wb = water_balance_et(out).to_series()
            wb.index = wb.index.astype(str)
            et_r = pearson(m["ET_mean"].values, wb.reindex(m.index.astype(str)).values)
            if modis is not None:
                mt, ms = modis_scores(out, modis)
    return BenchmarkRow(
        variant=variant, label=VARIANTS[variant].label, median_nse=float(m["NSE"].median()),
        median_kge=float(m["KGE"].median()), bfi_r=bfi_r, et_r=et_r, n_sites=len(m),
        epochs=int(log["epoch"].max()) if len(log) else 0,
        steps=int(len(log) * iters), train_hours=float(log["seconds"].sum() / 3600) if len(log) else 0.0,
        modis_temporal_r=mt, modis_spatial_r=ms)


# ------------------------------------------------------------------------------ learning curve
def learning_curve(run: Run, every: int = 2, data_root: str | None = None, log=print) -> pd.DataFrame:
    """Training loss per epoch and the test median NSE (over the run's trained sites) of epoch
    checkpoints (every ``every``-th epoch and the last one that has a checkpoint), cached in
    ``<run>/learning_curve.csv``.

    Evaluating a checkpoint reads the test period, so this curve shows how far from
    convergence the run is; it is never used to choose a checkpoint. Holds the run's lock while it
    writes the cache (a second process gets RunBusyError).
    """
    with run.lock("computing the learning curve"):
        return _learning_curve(run, every, data_root, log)


def _learning_curve(run: Run, every: int, data_root: str | None, log) -> pd.DataFrame:
    from .evaluate import evaluate_run

    path = run.path / "learning_curve.csv"
    curve = run.train_log()[["epoch", "loss"]].copy()
    cached = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["epoch", "test_median_nse"])
    known = dict(zip(cached["epoch"].astype(int), cached["test_median_nse"]))
    ck = {int(p.stem.split("_")[1]): p.name for p in sorted(run.checkpoint_dir.glob("epoch_*.pt"))}
    status = run.status()
    if ck and run.has_evaluation() and status.get("median_nse") is not None:
        known.setdefault(int(status.get("epoch", 0)), float(status["median_nse"]))  # last.pt's own
    if ck:
        last = max(ck)
        wanted = [e for e in ck if e % every == 0 or e == 1 or e == last]
        for e in wanted:
            if e not in known:
                t0 = time.perf_counter()
                met = evaluate_run(run, data_root=data_root, checkpoint=ck[e], write=False)
                if "split" in met:  # the run's own cells, not data.test_sites
                    met = met[met["split"] == "trained"]
                known[e] = float(met["NSE"].median())
                log(f"  {run.run_id} epoch {e}: test median NSE {known[e]:.3f} "
                    f"({time.perf_counter() - t0:.0f} s)")
                write_text_atomic(path, pd.DataFrame(sorted(known.items()), columns=[
                    "epoch", "test_median_nse"]).to_csv(index=False))
    curve["test_median_nse"] = curve["epoch"].astype(int).map(known)
    return curve


# ------------------------------------------------------------------------------ figures
def nse_cdf_figure(metrics: dict[str, pd.Series], path: Path, title: str) -> None:
    """CDF of per-basin test NSE for each model (Feng et al. 2022, Fig. 3), NSE clipped at 0."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=120)
    for v, nse in metrics.items():
        x = np.sort(np.clip(nse.dropna().values, 0, 1))
        ax.plot(x, np.arange(1, len(x) + 1) / len(x),
                label=f"{VARIANTS[v].label} (median {np.median(nse.dropna()):.3f})",
                lw=2.2 if v in ("delta_n_gamma_beta", "lstm") else 1.4,
                ls="--" if v == "lstm" else "-")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="test NSE (values < 0 shown at 0)",
           ylabel="fraction of basins (CDF)", title=title)
    finish_figure(fig, [ax], ax, path, legend_loc="upper left")


def learning_curve_figure(curves: dict[str, pd.DataFrame], iters: int, path: Path) -> None:
    """Training loss and test median NSE against optimisation steps, one line per model."""
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    for v, c in curves.items():
        steps = c["epoch"] * iters
        a1.plot(steps, c["loss"], label=VARIANTS[v].label)
        ok = c["test_median_nse"].notna()
        a2.plot(steps[ok], c.loc[ok, "test_median_nse"], marker="o", ms=3, label=VARIANTS[v].label)
    a1.set(xlabel="optimisation steps", ylabel="training loss (epoch mean)", title="training loss")
    a2.set(xlabel="optimisation steps", ylabel="test median NSE", title="test median NSE of checkpoints")
    finish_figure(fig, [a1, a2], a2, path)


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display on a server or in CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def finish_figure(fig, axes, legend_ax, path: Path, *, fontsize: float = 8, legend_loc: str = "best",
                  tight: bool = True, **legend_kw) -> None:
    """The common end of a report figure: a light grid on each of ``axes``, the legend on
    ``legend_ax`` (None: no legend), a tight layout and an atomic PNG write to ``path``."""
    for a in axes:
        a.grid(alpha=0.3)
    if legend_ax is not None:
        legend_ax.legend(loc=legend_loc, fontsize=fontsize, **legend_kw)
    if tight:
        fig.tight_layout()
    _save_fig(fig, path)


def _save_fig(fig, path: Path) -> None:
    """Write ``fig`` to ``path`` as PNG atomically (temporary file, then rename) and close it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------ report
def table_frame(rows: list[BenchmarkRow]) -> pd.DataFrame:
    return pd.DataFrame([{
        "model": r.label, "variant": r.variant, "median_NSE": r.median_nse, "median_KGE": r.median_kge,
        "BFI_r": r.bfi_r, "ET_r_P_minus_Q": r.et_r, "MODIS_ET_r_temporal": r.modis_temporal_r,
        "MODIS_ET_r_spatial": r.modis_spatial_r, "paper_median_NSE": PAPER_MEDIAN_NSE.get(r.variant),
        "basins": r.n_sites, "epochs": r.epochs, "steps": r.steps, "train_hours": r.train_hours,
    } for r in rows])


def _f(v, nd=3) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{nd}f}"


def markdown_table(rows: list[BenchmarkRow], with_modis: bool) -> str:
    head = ["model", "median NSE", "median KGE", "BFI r", "ET r (P − Q)"]
    if with_modis:
        head += ["MODIS ET r (temporal, median)", "MODIS ET r (spatial)"]
    head += ["paper median NSE", "basins", "steps", "train h (wall)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.label, _f(r.median_nse), _f(r.median_kge), _f(r.bfi_r), _f(r.et_r)]
        if with_modis:
            cells += [_f(r.modis_temporal_r), _f(r.modis_spatial_r)]
        cells += [_f(PAPER_MEDIAN_NSE.get(r.variant)), str(r.n_sites), str(r.steps), _f(r.train_hours, 2)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def target_checks(rows: list[BenchmarkRow]) -> list[tuple[str, bool | None, str]]:
    """The issue's targets: (description, met (None: a model is missing), measured values)."""
    r = {x.variant: x for x in rows}
    nse = {k: v.median_nse for k, v in r.items()}
    out = []

    def have(*ks):
        return all(k in nse for k in ks)

    if have("delta1", "delta_n", "delta_n_gamma_beta"):
        ok = nse["delta1"] < nse["delta_n"] <= nse["delta_n_gamma_beta"]
        out.append(("ordering δ1 < δn ≤ δn(γᵗ,βᵗ)", ok,
                    f"{nse['delta1']:.3f} / {nse['delta_n']:.3f} / {nse['delta_n_gamma_beta']:.3f}"))
        gap = nse["delta_n_gamma_beta"] - nse["delta1"]
        out.append(("δn(γᵗ,βᵗ) − δ1 ≥ 0.05 median NSE", gap >= 0.05, f"{gap:+.3f}"))
    if have("delta_n_gamma_beta", "lstm"):
        gap = nse["lstm"] - nse["delta_n_gamma_beta"]
        out.append(("δn(γᵗ,βᵗ) within 0.03 median NSE of the LSTM", abs(gap) <= 0.03,
                    f"LSTM − δn(γᵗ,βᵗ) = {gap:+.3f}"))
    if "delta_n_gamma_beta" in r:
        b = r["delta_n_gamma_beta"].bfi_r
        out.append(("BFI spatial r ≥ 0.6 for δn(γᵗ,βᵗ)", bool(b >= 0.6), f"r = {b:.3f}"))
    return out


def run_benchmark(store: RunStore, preset: str, variants: list[str] | None = None, epochs: int | None = None,
                  jobs: int = 1, threads: int | None = None, data_root: str | None = None,
                  modis_path: str | None = None, curve_every: int = 2, doc: Path | None = None,
                  command: str = "", train: bool = True, notes: str | Path | None = None,
                  log=print) -> pd.DataFrame:
    """Train/reuse, score, plot and report. ``preset`` is a preset name or a YAML config file
    (its stem names the runs); ``variants`` None means every registered one. Writes,
    atomically, under ``<store>/benchmarks/<preset>/``: table.csv, table.md, nse_cdf.png,
    learning_curve.png, learning_curve_<variant>.csv and report.md; with ``doc``, also the report
    at that path and its figures beside it in img/.

    Raises:
        ValueError: unknown variant (lists the known ones).
        RuntimeError: a run is missing (with ``train=False``) or its training failed.
    """
    variants = list(variants or VARIANTS)
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise ValueError(f"unknown variants {bad}; known: {', '.join(VARIANTS)}")
    label = preset_label(preset)
    if train:
        runs = ensure_runs(store, preset, variants, epochs, jobs, threads, data_root, log)
    else:
        runs = evaluated_runs(store, label, variants, "; run without --no-train to train it")
    modis = read_modis(modis_path) if modis_path else None
    rows = [score_run(v, runs[v], modis) for v in variants]
    curves = {v: learning_curve(runs[v], curve_every, data_root, log) for v in variants}
    out = store.root / "benchmarks" / label
    out.mkdir(parents=True, exist_ok=True)
    table = table_frame(rows)
    write_text_atomic(out / "table.csv", table.to_csv(index=False))
    md_table = markdown_table(rows, modis is not None)
    write_text_atomic(out / "table.md", md_table + "\n")
    for v, c in curves.items():
        write_text_atomic(out / f"learning_curve_{v}.csv", c.to_csv(index=False))
    cfg = runs[variants[0]].config()
    iters = _iters_per_epoch(runs[variants[0]]) or 1
    title = f"{label}: {rows[0].n_sites} basins, test {cfg['data']['test_start']}..{cfg['data']['test_end']}"
    nse_cdf_figure({v: runs[v].metrics()["NSE"] for v in variants}, out / "nse_cdf.png", title)
    learning_curve_figure(curves, int(iters), out / "learning_curve.png")
    note_text = Path(notes).read_text(encoding="utf-8") if notes else ""
    report = _report(label, rows, curves, runs, cfg, md_table, command, "", note_text)
    write_text_atomic(out / "report.md", report)
    if doc is not None:
        doc = Path(doc)
        img = doc.parent / "img"
        img.mkdir(parents=True, exist_ok=True)
        for f in ("nse_cdf.png", "learning_curve.png"):
            data = (out / f).read_bytes()
            atomic_write(img / f"{label}_{f}", lambda p, d=data: Path(p).write_bytes(d))
        write_text_atomic(doc, _report(label, rows, curves, runs, cfg, md_table, command,
                                       f"img/{label}_", note_text))
    log(f"benchmark written to {out}" + (f" and {doc}" if doc else ""))
    return table


def _report(preset, rows, curves, runs, cfg, md_table, command, img_prefix, notes="") -> str:
    from ..training.config import RunConfig

    t, m, d = cfg["train"], cfg["model"], cfg["data"]
    pet = RunConfig.from_dict(cfg).data.pet_method()
    lines = [
        f"# Benchmark: the δ family and the LSTM on {rows[0].n_sites} basins (`{preset}`)",
        "",
        "Generated by `hydrolens benchmark` (core/evaluation/benchmark.py); rerunning the command "
        "reuses finished runs, resumes interrupted ones and rewrites this page.",
        "",
        "```bash",
        command or f"hydrolens benchmark --preset {preset}",
        "```",
        "",
        "## Settings (identical for every model)",
        "",
        f"- data: {d['source']} (PET: {pet}), {rows[0].n_sites} basins; "
        f"train {d['train_start']}..{d['train_end']}, test {d['test_start']}..{d['test_end']} "
        "with states warmed up over the training period;",
        f"- windows: batch {t['batch_size']} basins × ({t['warmup']} warm-up + {t['rho']}) days; "
        f"loss (1 − α)·RMSE(Q) + α·RMSE(log10(√Q + 0.1)), α = {t['alpha']};",
        f"- learner: LSTM hidden {m['hidden']}, dropout {m['dropout']}; optimiser {t['optimizer']} "
        f"(lr {t['lr']}); {t.get('iters_per_epoch') or 'dPL-rule'} iterations per epoch; "
        f"n = the variant's default (δ1: 1, δn: 16); seed {t['seed']}.",
        "",
        "## Results (test period)",
        "",
        md_table,
        "",
        "BFI r: Pearson r across basins of simulated ΣQ2/ΣQ against CAMELS `baseflow_index`. "
        "ET r (P − Q): Pearson r across basins of simulated mean ET against mean P − Q_obs. "
        "The LSTM has neither output. Paper: Feng et al. (2022) Table 2 (671 basins, Daymet, "
        "paper settings), for orientation only.",
        "",
        f"![NSE CDF]({img_prefix}nse_cdf.png)",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for desc, ok, val in target_checks(rows):
        lines.append(f"| {desc} | {val} | {'yes' if ok else 'no'} |")
    if notes:
        lines += ["", "## Discussion", "", notes.strip()]
    lines += [
        "",
        "## Learning curves",
        "",
        f"![learning curves]({img_prefix}learning_curve.png)",
        "",
        "| model | " + " | ".join(f"epoch {int(e)}" for e in curves[rows[0].variant]["epoch"]) + " |",
        "|---|" + "---|" * len(curves[rows[0].variant]),
    ]
    for r in rows:
        c = curves[r.variant]
        lines.append(f"| {r.label} loss | " + " | ".join(_f(x) for x in c["loss"]) + " |")
        lines.append(f"| {r.label} test median NSE | " + " | ".join(_f(x) for x in c["test_median_nse"]) + " |")
    lines += ["", "Runs: " + ", ".join(f"`{runs[r.variant].run_id}`" for r in rows), ""]
    return "\n".join(lines)
