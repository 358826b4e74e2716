"""The δ-family benchmark (Feng et al. 2022, Table 2 and Fig. 3) on the runs of a preset.

For each variant it finds (or trains, through the job runner's ``hydrolens train`` subprocesses that resume after a
kill) the run named ``<preset>-<variant>``, then reports:

* median NSE and KGE of daily streamflow over the test period (all basins);
* BFI r: Pearson r across basins of the simulated baseflow index ΣQ2/ΣQ (long-term, test period)
  against CAMELS ``baseflow_index`` (Feng et al. 2022, sec. 3.3);
* ET r (P − Q): Pearson r across basins of the simulated long-term mean ET against the water
  balance P − Q_obs (test period), the offline stand-in for the MODIS comparison;
* with a MODIS MOD16A2 table: simulated ET composited to the MOD16A2 8-day periods
  (:mod:`core.benchmarks.modis`), the median over basins of the temporal r, and the spatial r
  of the long-term means;
* learning curves: training loss per epoch and the test median NSE of the epoch checkpoints;
* the NSE CDF figure (Feng et al. 2022, Fig. 3).

The report is the template ``templates/benchmark.md.j2``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import xarray as xr

from ..metrics import pcc
from ..models import VARIANTS
from ..runs import Run, RunStore, write_text_atomic
from ..training.config import RunConfig, compose_config
from .figures import learning_curve_figure, nse_cdf_figure
from .modis import modis_scores, read_modis
from .runs import ensure_named_runs, evaluated_runs, iters_per_epoch, learning_curve, preset_label, run_name
from .text import Table, fmt, publish, render

# Feng et al. (2022) Table 2, median NSE on 671 CAMELS basins (Daymet forcing), for reference
PAPER_MEDIAN_NSE = {"delta1": 0.640, "delta_n": 0.714, "delta_n_beta": 0.729, "delta_n_gamma": 0.716,
                    "delta_n_gamma_beta": 0.732, "delta_n_nnr": 0.723, "lstm": 0.748}


# ------------------------------------------------------------------------------ training
def train_config(preset: str, variant: str, epochs: int | None, threads: int | None,
                 data_root: str | None) -> dict:
    """The RunConfig dict of a new benchmark run: the preset (or YAML file) with this variant."""
    return compose_config(preset, overrides={
        "model.variant": variant, "name": run_name(preset_label(preset), variant),
        "data.root": str(data_root) if data_root else None, "train.epochs": epochs,
        "train.threads": threads}, source="benchmark").to_dict()


def ensure_runs(store: RunStore, preset: str, variants: list[str], epochs: int | None = None,
                jobs: int = 1, threads: int | None = None, data_root: str | None = None,
                log=print, poll: float = 5.0, curve_every: int | None = None) -> dict[str, Run]:
    """Train (or resume, or reuse) the run ``<preset>-<variant>`` of every variant through
    :func:`core.benchmarks.runs.ensure_named_runs`, and with ``curve_every`` queue their
    learning curves behind the trainings. δn(NN_r) is the slowest (its recharge network runs
    inside the HBV's time loop), so it is queued first: with ``jobs`` > 1 the others fill the
    remaining slots around it.

    Raises:
        RuntimeError: a training job failed (see :func:`core.benchmarks.runs.ensure_named_runs`).
    """
    label = preset_label(preset)
    order = sorted(variants, key=lambda v: not VARIANTS[v].nn_recharge)       # stable: the slowest first
    configs = {run_name(label, v): train_config(preset, v, epochs, threads, data_root) for v in order}
    curves = {name: curve_every for name in configs} if curve_every else None
    ensure_named_runs(store, configs, epochs, jobs, threads, log, poll, curves, data_root)
    return evaluated_runs(store, label, variants)


# ------------------------------------------------------------------------------ scores
def water_balance_et(outputs: xr.Dataset) -> xr.DataArray:
    """Long-term P − Q_obs per basin (mm/d) over the outputs' period: the ET a closed water
    balance implies (storage change neglected). P = RAIN + SNOW of the δ model's forcing."""
    p = (outputs["RAIN"] + outputs["SNOW"]).mean("time")
    return p - outputs["Q_obs"].mean("time", skipna=True)


@dataclass
class BenchmarkRow:
    """One model's row of the table: its scores, size and training cost."""

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
    #: the learner's precision as trained (status.json: fp32 or bf16; ``auto`` resolved)
    precision: str = ""
    extra: dict = field(default_factory=dict)


def score_run(variant: str, run: Run, modis: pd.DataFrame | None = None) -> BenchmarkRow:
    """One table row from a run's metrics.csv, outputs.nc, config and training log."""
    m = run.metrics()
    log = run.train_log()
    iters = iters_per_epoch(run)
    bfi_r = pcc(m["BFI_sim"], m["BFI_camels"], min_pairs=3) if "BFI_camels" in m else float("nan")
    et_r = mt = ms = float("nan")
    if m["ET_mean"].notna().any():
        with run.outputs() as out:
            wb = water_balance_et(out).to_series()
            wb.index = wb.index.astype(str)
            et_r = pcc(m["ET_mean"].values, wb.reindex(m.index.astype(str)).values, min_pairs=3)
            if modis is not None:
                mt, ms = modis_scores(out, modis)
    return BenchmarkRow(
        variant=variant, label=VARIANTS[variant].label, median_nse=float(m["NSE"].median()),
        median_kge=float(m["KGE"].median()), bfi_r=bfi_r, et_r=et_r, n_sites=len(m),
        epochs=int(log["epoch"].max()) if len(log) else 0,
        steps=int(len(log) * iters), train_hours=float(log["seconds"].sum() / 3600) if len(log) else 0.0,
        modis_temporal_r=mt, modis_spatial_r=ms,
        precision=str(run.status().get("precision") or run.config()["train"].get("precision", "")))


def table_frame(rows: list[BenchmarkRow]) -> pd.DataFrame:
    """The table as written to table.csv: one row per model, unformatted, the paper's median NSE beside."""
    return pd.DataFrame([{
        "model": r.label, "variant": r.variant, "median_NSE": r.median_nse, "median_KGE": r.median_kge,
        "BFI_r": r.bfi_r, "ET_r_P_minus_Q": r.et_r, "MODIS_ET_r_temporal": r.modis_temporal_r,
        "MODIS_ET_r_spatial": r.modis_spatial_r, "paper_median_NSE": PAPER_MEDIAN_NSE.get(r.variant),
        "basins": r.n_sites, "epochs": r.epochs, "steps": r.steps, "train_hours": r.train_hours,
    } for r in rows])


def results_csv(rows: list[BenchmarkRow], runs: dict[str, Run]) -> pd.DataFrame:
    """The results as written beside the report (``<doc>.csv``), one row per run, so a script
    can check the table: model (the ``hydrolens train --variant`` name; ``lstm`` for the LSTM),
    conventions, updates, hidden, precision (as trained: status.json), wall_s (training, from
    the training log), median_nse, median_kge, bfi_r (test period)."""
    out = []
    for r in rows:
        run = runs[r.variant]
        cfg = run.config()
        out.append({"model": r.variant, "conventions": cfg["model"].get("conventions", "hydrolens"),
                    "updates": r.steps, "hidden": cfg["model"]["hidden"],
                    "precision": r.precision,
                    "wall_s": round(r.train_hours * 3600, 2), "median_nse": r.median_nse,
                    "median_kge": r.median_kge, "bfi_r": r.bfi_r})
    return pd.DataFrame(out)


def results_table(rows: list[BenchmarkRow], with_modis: bool) -> Table:
    """The report's results table (MODIS columns only ``with_modis``), numbers formatted."""
    head = ["model", "median NSE", "median KGE", "BFI r", "ET r (P − Q)"]
    if with_modis:
        head += ["MODIS ET r (temporal, median)", "MODIS ET r (spatial)"]
    head += ["paper median NSE", "basins", "steps", "precision", "train h (wall)"]
    out = Table(head)
    for r in rows:
        cells = [r.label, fmt(r.median_nse), fmt(r.median_kge), fmt(r.bfi_r), fmt(r.et_r)]
        if with_modis:
            cells += [fmt(r.modis_temporal_r), fmt(r.modis_spatial_r)]
        cells += [fmt(PAPER_MEDIAN_NSE.get(r.variant)), str(r.n_sites), str(r.steps), r.precision or "–",
                  fmt(r.train_hours, 2)]
        out.rows.append(cells)
    return out


def markdown_table(rows: list[BenchmarkRow], with_modis: bool) -> str:
    """:func:`results_table` as Markdown (table.md and the report)."""
    return results_table(rows, with_modis).markdown()


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
    # the paper-protocol targets (Feng et al. 2022 report 0.732 and 0.748 with Daymet forcing)
    for v, target in (("delta_n_gamma_beta", 0.62), ("lstm", 0.65)):
        if v in nse:
            out.append((f"{VARIANTS[v].label} median test NSE ≥ {target:.2f}", nse[v] >= target, f"{nse[v]:.3f}"))
    if "delta_n_gamma_beta" in r:
        b = r["delta_n_gamma_beta"].bfi_r
        out.append(("BFI spatial r ≥ 0.6 for δn(γᵗ,βᵗ)", bool(b >= 0.6), f"r = {b:.3f}"))
    return out


# ------------------------------------------------------------------------------ report
#: the settings a preset may set per model (its ``variants`` block, e.g. paper432's LSTM at
#: neuralhydrology's settings): (section, key, how the report names it)
_PER_MODEL = (("model", "hidden", "hidden {}"), ("model", "dropout", "dropout {}"),
              ("model", "forget_bias", "initial forget-gate bias {}"), ("model", "conventions", "conventions {}"),
              ("train", "optimizer", "optimiser {}"), ("train", "lr", "lr {}"),
              ("train", "lr_schedule", "lr stepping down to {}"), ("train", "grad_clip", "gradient norm clipped at {}"),
              ("train", "loss", "loss {}"), ("train", "precision", "precision {}"))


def setting_differences(rows: list[BenchmarkRow], configs: dict[str, dict]) -> list[str]:
    """One line per model whose run config (``configs``: variant -> RunConfig dict) differs from
    the first row's in a per-model setting (``_PER_MODEL``), naming its own values, e.g.
    ``LSTM: dropout 0.4, initial forget-gate bias 3.0, optimiser adam, lr 0.001, ...``; empty
    when every model shares the first one's settings."""
    base = configs[rows[0].variant]
    out = []
    for r in rows[1:]:
        cfg = configs[r.variant]
        diffs = []
        for section, key, text in _PER_MODEL:
            mine = cfg.get(section, {}).get(key)
            if mine != base.get(section, {}).get(key):
                if isinstance(mine, dict):  # lr_schedule {epoch: rate}
                    mine = ", ".join(f"{v} at epoch {e}" for e, v in mine.items()) or "none"
                diffs.append(text.format("none" if mine is None else mine))
        if diffs:
            out.append(f"{r.label}: " + ", ".join(diffs))
    return out


def report_values(label: str, rows: list[BenchmarkRow], curves: dict[str, pd.DataFrame], runs: dict[str, Run],
                  cfg: dict, with_modis: bool, command: str = "", notes: str = "",
                  differences: list[str] = ()) -> dict:
    """What ``templates/benchmark.md.j2`` shows, formatted: the settings of ``cfg`` (a
    RunConfig dict), the models that differ from them (``differences``, see
    :func:`setting_differences`), the results and target tables, the learning curves of the
    first row's epochs, the runs' ids, and ``notes`` (Markdown, the Discussion section when not empty)."""
    run_cfg = RunConfig.from_dict(cfg)
    first = curves[rows[0].variant]
    curve_table = Table(["model"] + [f"epoch {int(e)}" for e in first["epoch"]])
    for r in rows:
        c = curves[r.variant]
        curve_table.rows.append([f"{r.label} loss"] + [fmt(x) for x in c["loss"]])
        curve_table.rows.append([f"{r.label} test median NSE"] + [fmt(x) for x in c["test_median_nse"]])
    return {
        "preset": label, "n_sites": rows[0].n_sites, "command": command,
        "d": cfg["data"], "t": cfg["train"], "m": cfg["model"], "pet": run_cfg.data.pet_method(),
        "lr": run_cfg.train.initial_lr(),
        "results": results_table(rows, with_modis),
        "targets": Table(["target", "measured", "met"],
                         [[desc, val, "yes" if ok else "no"] for desc, ok, val in target_checks(rows)]),
        "notes": notes, "curves": curve_table, "run_ids": [runs[r.variant].run_id for r in rows],
        "differences": list(differences),
    }


def render_report(values: dict, img_prefix: str = "") -> str:
    """The report from :func:`report_values`; figures linked as ``<img_prefix><name>.png``."""
    return render("benchmark.md.j2", **values, img_prefix=img_prefix)


# ------------------------------------------------------------------------------ the benchmark
def run_benchmark(store: RunStore, preset: str, variants: list[str] | None = None, epochs: int | None = None,
                  jobs: int = 1, threads: int | None = None, data_root: str | None = None,
                  modis_path: str | None = None, curve_every: int = 2, doc: Path | None = None,
                  command: str = "", train: bool = True, notes: str | Path | None = None,
                  log=print) -> pd.DataFrame:
    """Train/reuse, score, plot and report. ``preset`` is a preset name or a YAML config file
    (its stem names the runs); ``variants`` None means every registered one. Writes,
    atomically, under ``<store>/benchmarks/<preset>/``: table.csv, table.md, nse_cdf.png,
    learning_curve.png, learning_curve_<variant>.csv and report.md; with ``doc``, also the report
    at that path, its figures beside it as img/<doc stem>_<figure> and the results as ``<doc>.csv`` (:func:`results_csv`).

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
        runs = ensure_runs(store, preset, variants, epochs, jobs, threads, data_root, log, curve_every=curve_every)
    else:
        runs = evaluated_runs(store, label, variants, "; run without --no-train to train it")
    modis = read_modis(modis_path) if modis_path else None
    rows = [score_run(v, runs[v], modis) for v in variants]
    curves = {v: learning_curve(runs[v], curve_every, data_root, log) for v in variants}
    out = store.root / "benchmarks" / label
    out.mkdir(parents=True, exist_ok=True)
    table = table_frame(rows)
    write_text_atomic(out / "table.csv", table.to_csv(index=False))
    write_text_atomic(out / "table.md", markdown_table(rows, modis is not None) + "\n")
    for v, c in curves.items():
        write_text_atomic(out / f"learning_curve_{v}.csv", c.to_csv(index=False))
    cfg = runs[variants[0]].config()
    iters = iters_per_epoch(runs[variants[0]]) or 1
    title = f"{label}: {rows[0].n_sites} basins, test {cfg['data']['test_start']}..{cfg['data']['test_end']}"
    nse_cdf_figure({v: runs[v].metrics() for v in variants}, out / "nse_cdf.png", title)
    learning_curve_figure(curves, int(iters), out / "learning_curve.png")
    note_text = Path(notes).read_text(encoding="utf-8") if notes else ""
    differences = setting_differences(rows, {v: runs[v].config() for v in variants})
    values = report_values(label, rows, curves, runs, cfg, modis is not None, command, note_text, differences)
    write_text_atomic(out / "report.md", render_report(values))
    if doc is not None:
        publish(doc, out, ("nse_cdf.png", "learning_curve.png"), lambda prefix: render_report(values, prefix),
                results_csv(rows, runs))
    log(f"benchmark written to {out}" + (f" and {doc}" if doc else ""))
    return table
