"""The soil-moisture benchmark (Li & Lu 2023, Table 2 analogue; issue 10) on the SMAP cells.

``hydrolens benchmark --preset smap`` plans one run per (method, training cells, coupling, seed),
trains the missing ones through the job runner (:func:`core.evaluation.benchmark.ensure_named_runs`,
subprocesses that resume after a kill) and reports from whatever evaluated runs exist:

* the Table-2 analogue: RMSE, PCC and NSE of SMAP AM surface soil moisture in the test year,
  the median over cells of each run, then mean ± sd over seeds, for the five methods
  (SCE-UA, FFN_A, LSTM_Z, ParaFormer_A, ParaFormer_Z) on SPARSE (the paper's DAS-S8),
  DENSE (DAS-S4) and NG (the unseen neighbours of the SPARSE cells, DAS-S8NG), each learner with
  the direct (dPL) and the surrogate coupling, and the paper's values beside ours;
* the dPL data-scaling curve: median NSE/RMSE on NG of learners trained on the nested
  SCALE_29 ⊂ SPARSE ⊂ SCALE_206 ⊂ DENSE cell sets (Tsai et al. 2021);
* the ``infiltr`` map of each method (its DENSE run: the 305 trained and 102 NG cells), its
  spatial range and Moran's I (``core.evaluation.diagnostics``);
* ET: each method's long-term test-year ET against the default-parameter VIC run
  (variant ``vic_default``), the Budyko check against Fu's curve, and, with a cell-level MOD16A2
  table, the 8-day ET correlations (as the δ benchmark);
* the learning curves (training loss per epoch, test median NSE of every ``curve_every``-th
  epoch checkpoint) and the cost per epoch of each coupling;
* with ``long_epochs`` N, the longer-training check: every learner once more on SPARSE (direct,
  seed 0) to N epochs, scored beside its run at the benchmark's epochs, with its learning curve
  (does the ranking of a short budget hold when the learners train longer?).

Runs are named ``<preset>-<method>[-surrogate]-<cells>-s<seed>[-e<N>]`` (cells: sparse, dense,
scale_29, scale_206; ``-e<N>``: a longer-training run), so a rerun reuses finished runs and
resumes interrupted ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..models import VARIANTS
from ..runs import Run, RunStore, atomic_write, write_text_atomic
from .benchmark import (_f, _save_fig, ensure_named_runs, find_run, finish_figure, learning_curve, modis_scores,
                        preset_label, pyplot, read_modis)
from .diagnostics import fu_evaporative_index, morans_i

#: the five methods of Li & Lu (2023, Table 2), baseline first
METHODS: tuple[str, ...] = ("sceua", "ffn_a", "lstm_z", "paraformer_a", "paraformer_z")
#: the uncalibrated reference run of the ET comparison
DEFAULT_RUN_METHOD = "vic_default"
#: training cell sets of the table (the paper's DAS-S8 and DAS-S4 analogues)
TRAIN_SETS: tuple[str, ...] = ("SPARSE", "DENSE")
#: nested training sets of the scaling curve (SCALE_104 = SPARSE, SCALE_305 = DENSE)
SCALING_SETS: tuple[str, ...] = ("SCALE_29", "SPARSE", "SCALE_206", "DENSE")
SET_ALIASES = {"SCALE_104": "SPARSE", "SCALE_305": "DENSE"}
METRICS: tuple[str, ...] = ("RMSE", "PCC", "NSE")
#: table columns: (column, training set of the run, split of metrics.csv)
COLUMNS: tuple[tuple[str, str, str], ...] = (("SPARSE", "SPARSE", "trained"), ("DENSE", "DENSE", "trained"),
                                             ("NG", "SPARSE", "unseen"))

#: Li & Lu (2023) Table 2 (RMSE, PCC, NSE): SPARSE ~ DAS-S8, DENSE ~ DAS-S4, NG ~ DAS-S8NG.
PAPER_TABLE2: dict[str, dict[str, tuple[float, float, float]]] = {
    "sceua": {"DENSE": (0.048, 0.523, 0.150), "SPARSE": (0.047, 0.559, 0.104), "NG": (0.089, 0.589, -1.665)},
    "ffn_a": {"DENSE": (0.046, 0.574, 0.192), "SPARSE": (0.046, 0.591, 0.172), "NG": (0.055, 0.591, -0.014)},
    "lstm_z": {"DENSE": (0.044, 0.618, 0.211), "SPARSE": (0.046, 0.600, 0.169), "NG": (0.049, 0.600, 0.158)},
    "paraformer_a": {"DENSE": (0.035, 0.616, 0.203), "SPARSE": (0.043, 0.648, 0.216), "NG": (0.055, 0.640, -0.003)},
    "paraformer_z": {"DENSE": (0.033, 0.668, 0.263), "SPARSE": (0.038, 0.653, 0.258), "NG": (0.048, 0.649, 0.276)},
}
#: Li & Lu (2023) Table 3: NSE of ET against MODIS (DAS-S8), and Fig. 5's fitted infiltr ranges
PAPER_ET_NSE = {"vic_default": 0.440, "sceua": 0.360, "ffn_a": 0.501, "lstm_z": 0.551,
                "paraformer_a": 0.548, "paraformer_z": 0.615}
PAPER_INFILTR_RANGE = {"vic_default": "[0, 0.3] (NLDAS-2)", "sceua": "[0, 0.41]", "lstm_z": "[0, 0.105]",
                       "paraformer_z": "[0, 0.35]"}


@dataclass(frozen=True)
class PlannedRun:
    """One run of the benchmark: ``method`` trained on the cell set ``sites`` with ``coupling``
    (learners only) and ``seed``; ``epochs`` set only for a longer-training run (else the
    benchmark's epochs)."""

    method: str
    sites: str
    coupling: str = "direct"
    seed: int = 0
    epochs: int | None = None

    def name(self, label: str) -> str:
        """``<label>-<method>[-surrogate]-<cells>-s<seed>[-e<epochs>]`` (a valid run name)."""
        cells = SET_ALIASES.get(self.sites, self.sites).lower()
        c = "" if self.coupling == "direct" else f"-{self.coupling}"
        e = f"-e{self.epochs}" if self.epochs else ""
        return f"{label}-{self.method}{c}-{cells}-s{self.seed}{e}"

    @property
    def learner(self) -> bool:
        return VARIANTS[self.method].family == "param"


def plan(methods=METHODS, seeds: int = 4, couplings=("direct", "surrogate"), scaling: bool = True) -> list[PlannedRun]:
    """The runs in the order they are trained: first seed 0 of everything (the table's
    SPARSE/NG/DENSE direct columns, the default-θ run, the scaling curve, the surrogate
    coupling on SPARSE), then the other seeds on SPARSE (both couplings), then on DENSE, so a
    benchmark stopped early has every number at least once and the NG column first.
    The surrogate coupling is run on SPARSE (its SPARSE and NG columns).

    Raises:
        ValueError: an unknown method or coupling.
    """
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown SMAP benchmark methods {bad}; known: {', '.join(METHODS)}")
    bad = [c for c in couplings if c not in ("direct", "surrogate")]
    if bad:
        raise ValueError(f"unknown couplings {bad}; known: direct, surrogate")
    learners = [m for m in methods if VARIANTS[m].family == "param"]
    direct = [m for m in methods if "direct" in couplings or VARIANTS[m].family != "param"]
    sur = learners if "surrogate" in couplings else []
    out: list[PlannedRun] = []

    def add(*runs: PlannedRun):
        out.extend(r for r in runs if r not in out)

    add(*(PlannedRun(m, ts, "direct", 0) for ts in TRAIN_SETS for m in direct))
    add(PlannedRun(DEFAULT_RUN_METHOD, "DENSE"))
    if scaling and "direct" in couplings:
        add(*(PlannedRun(m, ts, "direct", 0) for ts in SCALING_SETS for m in learners))
    add(*(PlannedRun(m, "SPARSE", "surrogate", 0) for m in sur))
    for s in range(1, seeds):        # SPARSE (the SPARSE and NG columns) before DENSE
        add(*(PlannedRun(m, "SPARSE", "direct", s) for m in direct))
        add(*(PlannedRun(m, "SPARSE", "surrogate", s) for m in sur))
    for s in range(1, seeds):
        add(*(PlannedRun(m, "DENSE", "direct", s) for m in direct))
    return out


def long_plan(methods=METHODS, epochs: int | None = None) -> list[PlannedRun]:
    """The longer-training runs: every learner of ``methods`` on SPARSE, direct, seed 0, to
    ``epochs`` (none when ``epochs`` is None). Its SPARSE and NG scores sit beside the seed-0 run
    of the table.

    Raises:
        ValueError: ``epochs`` < 1.
    """
    if epochs is None:
        return []
    if epochs < 1:
        raise ValueError(f"long_epochs must be ≥ 1, got {epochs}")
    return [PlannedRun(m, "SPARSE", "direct", 0, int(epochs)) for m in methods if VARIANTS[m].family == "param"]


def run_config(r: PlannedRun, preset: str, epochs: int | None, threads: int | None, data_root: str | None,
               surrogate: str | None, sceua_evaluations: int | None) -> dict:
    """The RunConfig dict of a planned run: the preset with this method, cells, seed and coupling."""
    from ..training.config import preset_config

    cfg = preset_config(preset).to_dict()
    cfg["name"] = r.name(preset_label(preset))
    cfg["model"]["variant"] = r.method
    cfg["data"]["sites"] = r.sites
    cfg["train"]["seed"] = r.seed
    if data_root:
        cfg["data"]["root"] = str(data_root)
    if VARIANTS[r.method].family == "calibration":
        cfg["train"]["epochs"] = 1          # a calibration is one "epoch"
    elif r.epochs or epochs:
        cfg["train"]["epochs"] = int(r.epochs or epochs)
    if threads:
        cfg["train"]["threads"] = int(threads)
    if sceua_evaluations:
        cfg["train"]["sceua_evaluations"] = int(sceua_evaluations)
    if r.coupling == "surrogate":
        cfg["model"]["coupling"] = "surrogate"
        if surrogate:
            cfg["model"]["surrogate"] = str(surrogate)
    return cfg


# ------------------------------------------------------------------------------ scores
def run_scores(run: Run) -> dict[str, float]:
    """Median RMSE/PCC/NSE of a run's cells by split: keys ``<metric>_trained`` and
    ``<metric>_unseen`` (NaN where the run has no such cells)."""
    m = run.metrics()
    split = m["split"] if "split" in m else pd.Series("trained", index=m.index)
    out = {}
    for sp in ("trained", "unseen"):
        for k in METRICS:
            v = m.loc[split == sp, k].dropna() if k in m else pd.Series(dtype=float)
            out[f"{k}_{sp}"] = float(v.median()) if len(v) else float("nan")
    return out


def collect(store: RunStore, label: str, planned: list[PlannedRun]) -> pd.DataFrame:
    """One row per planned run that has an evaluation: method, sites, coupling, seed, run_id,
    epochs, seconds per epoch (median over the training log) and ``run_scores``."""
    rows = []
    for r in planned:
        run = find_run(store, r.name(label))
        if run is None or not run.has_evaluation():
            continue
        log = run.train_log()
        sec = log["seconds"].iloc[1:] if len(log) > 1 else log["seconds"]
        rows.append({"method": r.method, "sites": SET_ALIASES.get(r.sites, r.sites),
                     "coupling": r.coupling if r.learner else "–",
                     "seed": r.seed, "run_id": run.run_id, "epochs": int(log["epoch"].max()) if len(log) else 0,
                     "train_s": float(log["seconds"].sum()) if len(log) else float("nan"),
                     "s_per_epoch": float(sec.median()) if len(sec) else float("nan"), **run_scores(run)})
    return pd.DataFrame(rows)


def table2(runs: pd.DataFrame) -> pd.DataFrame:
    """The Table-2 analogue: one row per (method, coupling) and column (SPARSE, DENSE, NG) x
    metric: mean and sd over seeds of the runs' median, and the number of seeds."""
    rows = []
    for (method, coupling), g in runs.groupby(["method", "coupling"], sort=False):
        if method == DEFAULT_RUN_METHOD:
            continue
        row = {"method": method, "coupling": coupling}
        for col, ts, split in COLUMNS:
            sub = g[g["sites"] == ts]
            row[f"{col}_n"] = int(sub[f"NSE_{split}"].notna().sum())
            for k in METRICS:
                v = sub[f"{k}_{split}"].dropna()
                row[f"{col}_{k}"] = float(v.mean()) if len(v) else float("nan")
                row[f"{col}_{k}_sd"] = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
        rows.append(row)
    out = pd.DataFrame(rows)
    if len(out):
        rank = out["coupling"].map({"surrogate": 1}).fillna(0) * 100 + out["method"].map(
            {m: i for i, m in enumerate(METHODS)})
        out = out.iloc[np.argsort(rank.values, kind="stable")].reset_index(drop=True)   # direct rows first
    return out


def _cell(row, col: str) -> str:
    if row[f"{col}_n"] == 0:
        return "–"
    parts = []
    for k in METRICS:
        v, sd = row[f"{col}_{k}"], row[f"{col}_{k}_sd"]
        parts.append(_f(v) + (f" ± {sd:.3f}" if np.isfinite(sd) else ""))
    return " / ".join(parts) + f" (n={row[f'{col}_n']})"


def table2_markdown(t: pd.DataFrame) -> str:
    head = ["method", "coupling"] + [f"{c} RMSE / PCC / NSE" for c, _, _ in COLUMNS] + \
        [f"paper {c}" for c, _, _ in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, row in t.iterrows():
        paper = PAPER_TABLE2.get(row["method"], {})
        cells = [VARIANTS[row["method"]].label, row["coupling"]]
        cells += [_cell(row, c) for c, _, _ in COLUMNS]
        cells += [" / ".join(f"{x:.3f}" for x in paper[c]) if c in paper else "–" for c, _, _ in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def long_table(runs: pd.DataFrame, long_runs: pd.DataFrame) -> pd.DataFrame:
    """The longer-training check: per learner, its seed-0 SPARSE direct run of the table
    (``runs``) beside its longer run (``long_runs``): epochs, train seconds and the median RMSE,
    PCC, NSE on SPARSE (``*_trained``) and NG (``*_unseen``), suffixes ``_short`` and ``_long``."""
    cols = ["epochs", "train_s"] + [f"{k}_{sp}" for sp in ("trained", "unseen") for k in METRICS]
    rows = []
    for _, lr in long_runs.iterrows():
        short = runs[(runs["method"] == lr["method"]) & (runs["sites"] == "SPARSE")
                     & (runs["coupling"] == "direct") & (runs["seed"] == 0)]
        row = {"method": lr["method"]}
        for c in cols:
            row[f"{c}_short"] = float(short[c].iloc[0]) if len(short) else float("nan")
            row[f"{c}_long"] = float(lr[c])
        rows.append(row)
    return pd.DataFrame(rows)


def scaling_curve(runs: pd.DataFrame, store: RunStore) -> pd.DataFrame:
    """Median NSE and RMSE on NG (unseen) of the direct learner runs by number of training
    cells (seed 0): columns method, cells, n_train, NSE_unseen, RMSE_unseen."""
    sub = runs[(runs["coupling"] == "direct") & (runs["seed"] == 0) & runs["sites"].isin(SCALING_SETS)
               & runs["method"].map(lambda m: VARIANTS[m].family == "param")].copy()
    if sub.empty:
        return pd.DataFrame(columns=["method", "cells", "n_train", "NSE_unseen", "RMSE_unseen"])
    sub["n_train"] = [int((store.get(rid).metrics()["split"] == "trained").sum()) for rid in sub["run_id"]]
    sub = sub.rename(columns={"sites": "cells"})
    return sub[["method", "cells", "n_train", "NSE_unseen", "RMSE_unseen", "PCC_unseen"]].sort_values(
        ["method", "n_train"]).reset_index(drop=True)


# ------------------------------------------------------------------------------ fields and ET
def _dense_run(store: RunStore, label: str, method: str) -> Run | None:
    run = find_run(store, PlannedRun(method, "DENSE").name(label))
    return run if run is not None and run.has_evaluation() else None


def infiltr_fields(store: RunStore, label: str, methods) -> dict[str, pd.DataFrame]:
    """method -> per-cell ``infiltr`` (columns site, lat, lon, infiltr, split) of its seed-0
    direct DENSE run (305 trained + 102 NG cells), the default run included."""
    out = {}
    for m in (DEFAULT_RUN_METHOD, *methods):
        run = _dense_run(store, label, m)
        if run is None:
            continue
        par, met = run.site_parameters(), run.metrics()
        if "infiltr" not in par:
            continue
        par.index, met.index = par.index.astype(str), met.index.astype(str)
        df = met[["lat", "lon", "split"]].join(par["infiltr"].astype(float), how="inner")
        out[m] = df.rename_axis("site").reset_index()
    return out


def field_stats(fields: dict[str, pd.DataFrame], k: int = 4) -> pd.DataFrame:
    """Spatial range, quantiles and Moran's I (k nearest cells) of each method's ``infiltr``."""
    rows = []
    for m, df in fields.items():
        x = df["infiltr"].values
        try:
            mi = morans_i(x, df["lat"].values, df["lon"].values, k=k)
        except ValueError:      # a constant field (the default run)
            mi = float("nan")
        rows.append({"method": m, "cells": len(df), "min": float(np.nanmin(x)), "p05": float(np.nanquantile(x, 0.05)),
                     "median": float(np.nanmedian(x)), "p95": float(np.nanquantile(x, 0.95)),
                     "max": float(np.nanmax(x)), "morans_I": mi})
    return pd.DataFrame(rows)


def et_table(store: RunStore, label: str, methods, modis: pd.DataFrame | None = None,
             omega: float = 2.6) -> pd.DataFrame:
    """ET of each method's DENSE run (all 407 cells, test year) against the default-θ run:
    median ET (mm/d), Pearson r and RMSE of the per-cell mean ET against the default run's,
    the Budyko check (median |ET/P − Fu(PET/P)|, ω = ``omega``; share of cells with ET > P or
    ET > PET) and, with ``modis``, the MOD16A2 8-day correlations."""
    from .benchmark import pearson

    ref = _dense_run(store, label, DEFAULT_RUN_METHOD)
    ref_et = None
    if ref is not None:
        ref_et = ref.metrics()["ET_mean"]
        ref_et.index = ref_et.index.astype(str)
    rows = []
    for m in (DEFAULT_RUN_METHOD, *methods):
        run = _dense_run(store, label, m)
        if run is None:
            continue
        met = run.metrics()
        met.index = met.index.astype(str)
        et, p, pet = met["ET_mean"], met["P_mean"], met["PET_mean"]
        ok = p > 0
        fu = fu_evaporative_index((pet[ok] / p[ok]).values, omega)
        row = {"method": m, "cells": len(met), "ET_median": float(et.median()),
               "ET_over_P_median": float((et[ok] / p[ok]).median()),
               "budyko_abs_dev": float(np.median(np.abs((et[ok] / p[ok]).values - fu))),
               "share_ET_gt_P": float((et > p).mean()), "share_ET_gt_PET": float((et > pet * 1.0001).mean()),
               "r_vs_default": float("nan"), "rmse_vs_default": float("nan"),
               "modis_r_temporal": float("nan"), "modis_r_spatial": float("nan")}
        if ref_et is not None and m != DEFAULT_RUN_METHOD:
            d = ref_et.reindex(et.index)
            row["r_vs_default"] = pearson(et.values, d.values)
            row["rmse_vs_default"] = float(np.sqrt(np.nanmean((et.values - d.values) ** 2)))
        if modis is not None:
            with run.outputs() as out:
                row["modis_r_temporal"], row["modis_r_spatial"] = modis_scores(out, modis)
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ figures
def infiltr_map_figure(fields: dict[str, pd.DataFrame], stats: pd.DataFrame, path: Path) -> None:
    """One CONUS panel per method: cells as squares coloured by ``infiltr`` (common scale);
    NG cells (never trained on) outlined."""
    plt = pyplot()
    n = len(fields)
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 2.8 * rows + 0.5), dpi=110, squeeze=False,
                             layout="constrained")
    vmax = max(float(np.nanquantile(df["infiltr"], 0.98)) for df in fields.values()) or 1.0
    mi = dict(zip(stats["method"], stats["morans_I"]))
    sc = None
    for ax, (m, df) in zip(axes.flat, fields.items()):
        ng = df["split"] == "unseen"
        sc = ax.scatter(df["lon"], df["lat"], c=df["infiltr"], cmap="viridis", vmin=0, vmax=vmax, marker="s",
                        s=34, edgecolors=np.where(ng, "k", "none"), linewidths=0.5)
        ax.set_title(f"{VARIANTS[m].label}  (Moran's I {_f(mi.get(m))})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect(1.25)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if sc is not None:
        fig.colorbar(sc, ax=axes, shrink=0.8, label="infiltr (b, -)")
    fig.suptitle("learned infiltr (DENSE runs; outlined: NG cells, never trained on)", fontsize=10)
    _save_fig(fig, path)


def scaling_figure(curve: pd.DataFrame, path: Path) -> None:
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=110)
    for m, g in curve.groupby("method", sort=False):
        a1.plot(g["n_train"], g["NSE_unseen"], marker="o", label=VARIANTS[m].label)
        a2.plot(g["n_train"], g["RMSE_unseen"], marker="o", label=VARIANTS[m].label)
    a1.set(xlabel="training cells", ylabel="median NSE on NG", title="NSE on unseen cells")
    a2.set(xlabel="training cells", ylabel="median RMSE on NG (m³/m³)", title="RMSE on unseen cells")
    finish_figure(fig, [a1, a2], a1, path)


def learning_curve_figure(curves: dict[str, pd.DataFrame], path: Path) -> None:
    """Training loss (masked RMSE + range-boundary loss) per epoch and the test median NSE of
    the epoch checkpoints on the run's cells (SPARSE, seed 0), one line per run (dashed:
    surrogate coupling)."""
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for name, c in curves.items():
        ls = "--" if "surrogate" in name else "-"
        a1.plot(c["epoch"], c["loss"], label=name, ls=ls)
        ok = c["test_median_nse"].notna()
        a2.plot(c.loc[ok, "epoch"], c.loc[ok, "test_median_nse"], marker="o", ms=3, label=name, ls=ls)
    a1.set(xlabel="epoch (one step: every training cell × the training year)", ylabel="training loss",
           title="training loss (SPARSE, seed 0)", yscale="log")
    a2.set(xlabel="epoch", ylabel="test median NSE (SPARSE cells)", title="test NSE of the epoch checkpoints")
    finish_figure(fig, [a1, a2], a2, path, fontsize=7)


def budyko_figure(store: RunStore, label: str, methods, path: Path, omega: float = 2.6) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=110)
    for m in (DEFAULT_RUN_METHOD, *methods):
        run = _dense_run(store, label, m)
        if run is None:
            continue
        met = run.metrics()
        ok = met["P_mean"] > 0
        ax.scatter(met.loc[ok, "PET_mean"] / met.loc[ok, "P_mean"], met.loc[ok, "ET_mean"] / met.loc[ok, "P_mean"],
                   s=6, alpha=0.6, label=VARIANTS[m].label)
    phi = np.linspace(0, 5, 200)
    ax.plot(phi, fu_evaporative_index(phi, omega), "k-", lw=1.5, label=f"Fu (ω = {omega})")
    ax.plot(phi, np.minimum(phi, 1), "k:", lw=1, label="energy / water limits")
    ax.set(xlabel="aridity PET/P", ylabel="ET/P (test year)", xlim=(0, 5), ylim=(0, 1.3),
           title="Budyko check (DENSE runs, all cells)")
    finish_figure(fig, [ax], ax, path, fontsize=7, markerscale=2)


# ------------------------------------------------------------------------------ targets
def target_checks(t: pd.DataFrame, curve: pd.DataFrame, fstats: pd.DataFrame, gate: dict | None) -> list[tuple]:
    """(target, measured, met) for the issue's targets that the runs allow."""
    out = []
    if gate:
        ok = (gate.get("median_nse", 0) >= 0.95 and gate.get("median_rmse", 1) <= 0.01
              and gate.get("median_cosine", 0) >= 0.9)
        out.append(("surrogate gate: median NSE ≥ 0.95, RMSE ≤ 0.01, gradient cosine ≥ 0.9",
                    f"{gate.get('median_nse', float('nan')):.3f} / {gate.get('median_rmse', float('nan')):.4f} / "
                    f"{gate.get('median_cosine', float('nan')):.3f} (iteration {gate.get('iteration', '?')})", ok))
    d = t[t["coupling"].isin(["direct", "–"])].set_index("method") if len(t) else pd.DataFrame()
    if all(m in d.index for m in METHODS) and len(d):
        nse = {m: d.loc[m, "NG_NSE"] for m in METHODS}
        order = (nse["paraformer_z"] >= nse["lstm_z"] > max(nse["paraformer_a"], nse["ffn_a"])
                 and min(nse["paraformer_a"], nse["ffn_a"]) > nse["sceua"])
        out.append(("NG ranking ParaFormer_Z ≥ LSTM_Z > ParaFormer_A ≈ FFN_A > SCE-UA (median NSE, direct)",
                    " / ".join(f"{VARIANTS[m].label} {nse[m]:.3f}" for m in
                               ("paraformer_z", "lstm_z", "paraformer_a", "ffn_a", "sceua")), order))
        out.append(("SCE-UA median NSE on NG < 0", f"{nse['sceua']:.3f}", nse["sceua"] < 0))
        r = d.loc["paraformer_z", "NG_RMSE"]
        out.append(("ParaFormer_Z median RMSE on NG < 0.05 m³/m³", f"{r:.3f}", r < 0.05))
    if len(d):
        learners = [m for m in d.index if VARIANTS[m].family == "param"]
        if learners and all(d.loc[m, "DENSE_n"] and d.loc[m, "SPARSE_n"] for m in learners):
            gaps = {m: d.loc[m, "DENSE_NSE"] - d.loc[m, "SPARSE_NSE"] for m in learners}
            out.append(("DENSE beats SPARSE for every learner (median NSE, DENSE − SPARSE)",
                        ", ".join(f"{VARIANTS[m].label} {g:+.3f}" for m, g in gaps.items()),
                        all(g > 0 for g in gaps.values())))
    if len(curve):
        rises = {}
        for m, g in curve.groupby("method"):
            y = g.sort_values("n_train")["NSE_unseen"].values
            rises[m] = bool(len(y) > 1 and y[-1] > y[0])
        out.append(("scaling curve rises with training cells (NG NSE, largest vs smallest set)",
                    ", ".join(f"{VARIANTS[m].label} {'rises' if v else 'does not rise'}" for m, v in rises.items()),
                    all(rises.values())))
    fi = fstats.set_index("method") if len(fstats) else pd.DataFrame()
    if "paraformer_z" in fi.index and "sceua" in fi.index:
        a, b = fi.loc["paraformer_z", "morans_I"], fi.loc["sceua", "morans_I"]
        out.append(("ParaFormer_Z infiltr smoother than SCE-UA's (Moran's I, 4 nearest cells)",
                    f"{a:.3f} vs {b:.3f}", bool(a > b)))
    s = t[t["coupling"] == "surrogate"].set_index("method") if len(t) else pd.DataFrame()
    both = [m for m in s.index if m in d.index and s.loc[m, "SPARSE_n"] and d.loc[m, "SPARSE_n"]]
    if both:
        gaps = {m: d.loc[m, "NG_NSE"] - s.loc[m, "NG_NSE"] for m in both}
        out.append(("direct coupling at least as accurate as the surrogate one (NG median NSE, direct − surrogate)",
                    ", ".join(f"{VARIANTS[m].label} {g:+.3f}" for m, g in gaps.items()),
                    all(g >= 0 for g in gaps.values())))
    return [(desc, val, bool(ok)) for desc, val, ok in out]


# ------------------------------------------------------------------------------ the benchmark
def run_smap_benchmark(store: RunStore, preset: str = "smap", methods=None, seeds: int = 4,
                       couplings=("direct", "surrogate"), scaling: bool = True, epochs: int | None = None,
                       jobs: int = 1, threads: int | None = None, data_root: str | None = None,
                       surrogate: str | None = None, sceua_evaluations: int | None = None,
                       modis_path: str | None = None, curve_every: int = 5, doc: Path | None = None,
                       command: str = "", long_epochs: int | None = None,
                       train: bool = True, notes: str | Path | None = None, log=print) -> pd.DataFrame:
    """Train what is missing (``train``), then score and report every evaluated planned run.
    Writes, atomically, under ``<store>/benchmarks/<preset>/``: runs.csv, table.csv,
    scaling.csv, infiltr.csv, et.csv (and long.csv with ``long_epochs``), the figures and
    report.md; with ``doc``, the report there and its figures in ``img/`` beside it.
    ``long_epochs`` N adds the longer-training runs (:func:`long_plan`), trained after the
    table's; their learning curves read every max(``curve_every``, N // 20)-th checkpoint.

    The surrogate coupling needs a finished surrogate job (``surrogate``, default
    ``<store>/surrogates/default``); without one those runs are skipped with a message.

    Raises:
        ValueError: an unknown method/coupling.
        RuntimeError: a training job failed (rerun to resume), or no planned run is evaluated.
    """
    methods = sorted(methods or METHODS, key=lambda m: METHODS.index(m) if m in METHODS else -1)
    label = preset_label(preset)
    sur_dir = Path(surrogate) if surrogate else store.root / "surrogates" / "default"
    planned = plan(methods, seeds, couplings, scaling)
    longer = long_plan(methods, long_epochs)
    if "surrogate" in couplings and not (sur_dir / "surrogate.pt").exists():
        log(f"no finished surrogate in {sur_dir} (surrogate.pt): the surrogate-coupled runs are skipped; "
            f"run `hydrolens surrogate --out {sur_dir}` first")
        planned = [r for r in planned if r.coupling != "surrogate"]
    if train:
        configs = {r.name(label): run_config(r, preset, epochs, threads, data_root, str(sur_dir), sceua_evaluations)
                   for r in planned + longer}
        ensure_named_runs(store, configs, None, jobs, threads, log)  # each config holds its epochs
    runs = collect(store, label, planned)
    long_runs = collect(store, label, longer)
    if runs.empty:
        raise RuntimeError(f"no evaluated benchmark run of {label!r} in {store.root}; run without --no-train")
    out = store.root / "benchmarks" / label
    out.mkdir(parents=True, exist_ok=True)
    t = table2(runs)
    curve = scaling_curve(runs, store)
    fields = infiltr_fields(store, label, methods)
    fstats = field_stats(fields)
    modis = read_modis(modis_path, pad=False) if modis_path else None
    et = et_table(store, label, methods, modis)
    gate_path = sur_dir / "gate.json"
    import json

    gate = json.loads(gate_path.read_text()) if gate_path.exists() else None
    if gate is not None and "iteration" not in gate and (sur_dir / "status.json").exists():
        gate["iteration"] = json.loads((sur_dir / "status.json").read_text()).get("iteration", "?")
    curves = {}
    for r in planned:
        if r.sites == "SPARSE" and r.seed == 0 and r.learner:
            run = find_run(store, r.name(label))
            if run is not None and run.has_evaluation() and len(run.train_log()):
                curves[f"{VARIANTS[r.method].label} {r.coupling}"] = learning_curve(run, curve_every, data_root, log)
    long_t = long_table(runs, long_runs)
    long_curves = {}
    for r in longer:
        run = find_run(store, r.name(label))
        if run is not None and run.has_evaluation() and len(run.train_log()):
            long_curves[f"{VARIANTS[r.method].label} direct"] = learning_curve(
                run, max(curve_every, r.epochs // 20), data_root, log)
    frames = [("runs", runs), ("table", t), ("scaling", curve), ("infiltr", fstats), ("et", et)]
    if longer:
        frames.append(("long", long_t))
    for name, frame in frames:
        write_text_atomic(out / f"{name}.csv", frame.to_csv(index=False))
    figs = {}
    if fields:
        infiltr_map_figure(fields, fstats, out / "infiltr_maps.png")
        figs["infiltr_maps"] = "infiltr_maps.png"
        budyko_figure(store, label, methods, out / "budyko.png")
        figs["budyko"] = "budyko.png"
    if len(curve):
        scaling_figure(curve, out / "scaling.png")
        figs["scaling"] = "scaling.png"
    if curves:
        learning_curve_figure(curves, out / "learning_curves.png")
        figs["learning_curves"] = "learning_curves.png"
    if long_curves:
        learning_curve_figure(long_curves, out / "learning_curves_long.png")
        figs["learning_curves_long"] = "learning_curves_long.png"
    learner_rows = runs[runs["method"].map(lambda x: VARIANTS[x].family == "param")]
    sce_rows = runs[runs["method"] == "sceua"]
    cfg = store.get((learner_rows if len(learner_rows) else runs)["run_id"].iloc[0]).config()
    if len(sce_rows):  # SCE-UA's budget from its own run
        cfg["train"]["sceua_evaluations"] = store.get(sce_rows["run_id"].iloc[0]).config()["train"].get(
            "sceua_evaluations")
    note_text = Path(notes).read_text(encoding="utf-8") if notes else ""
    checks = target_checks(t, curve, fstats, gate)
    args = (label, runs, t, curve, fstats, et, gate, checks, cfg, command, note_text, figs, curves,
            long_t, long_curves)
    write_text_atomic(out / "report.md", _report(*args, img_prefix=""))
    if doc is not None:
        doc = Path(doc)
        img = doc.parent / "img"
        img.mkdir(parents=True, exist_ok=True)
        for f in figs.values():
            data = (out / f).read_bytes()
            atomic_write(img / f"{label}_{f}", lambda p, d=data: Path(p).write_bytes(d))
        write_text_atomic(doc, _report(*args, img_prefix=f"img/{label}_"))
    log(f"benchmark written to {out}" + (f" and {doc}" if doc else ""))
    return t


def _md(frame: pd.DataFrame, cols: dict[str, str], nd: int = 3) -> str:
    lines = ["| " + " | ".join(cols.values()) + " |", "|" + "---|" * len(cols)]
    for _, row in frame.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if c == "method":
                v = VARIANTS[v].label
            elif c.startswith("epochs") and isinstance(v, (float, np.floating)) and np.isfinite(v):
                v = int(v)  # a count, not a measurement: 30, not 30.000
            cells.append(_f(v, nd) if isinstance(v, (float, np.floating)) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _curve_rows(curves: dict[str, pd.DataFrame], title: str) -> list[str]:
    """Markdown rows of the learning curves: test median NSE and training loss per checkpoint."""
    epochs = sorted({int(e) for c in curves.values() for e in c.loc[c["test_median_nse"].notna(), "epoch"]})
    if not epochs:
        return []
    lines = ["Test median NSE (SPARSE cells) of the epoch checkpoints, and the training loss:", "",
             f"| {title} | " + " | ".join(f"epoch {e}" for e in epochs) + " |", "|---|" + "---|" * len(epochs)]
    for name, c in curves.items():
        by = c.set_index(c["epoch"].astype(int))
        lines.append(f"| {name} NSE | " + " | ".join(_f(by["test_median_nse"].get(e)) for e in epochs) + " |")
        lines.append(f"| {name} loss | " + " | ".join(_f(by["loss"].get(e)) for e in epochs) + " |")
    return lines + [""]


def _report(label, runs, t, curve, fstats, et, gate, checks, cfg, command, notes, figs, curves,
            long_t, long_curves, img_prefix) -> str:
    tr, d = cfg["train"], cfg["data"]
    seeds = sorted(runs["seed"].unique())
    lines = [
        f"# Benchmark: ParaFormer and the dPL learners on SMAP soil moisture (`{label}`)",
        "",
        "The Table-2 analogue of Li & Lu (2023, *Remote Sens.* 15, 3536) on the 407 usable SMAP cells of "
        "`smap_conus/smap_nldas_conus_412.nc` (`../shared/docs/paraformer_vic.md`). Generated by "
        "`hydrolens benchmark --preset smap` (core/evaluation/benchmark_smap.py); rerunning the command "
        "reuses finished runs, resumes interrupted ones and rewrites this page from every evaluated run.",
        "",
        "```bash",
        command or f"hydrolens benchmark --preset {label}",
        "```",
        "",
        "## Settings (identical for every learner; SCE-UA: its own budget below)",
        "",
        f"- data: train {d['train_start']}..{d['train_end']}, test {d['test_start']}..{d['test_end']} "
        "(SMAP ends 2017-03; the paper tests 2017-18), states spun up by cycling the training year; "
        "cells 386, 22, 290, 302 (near-constant SMAP) and 57 (no statics) excluded;",
        "- cells: SPARSE (r, c even; 104; the paper's DAS-S8), DENSE (all but NG; 305; DAS-S4), NG "
        "(r even, c odd; 102; never trained on; DAS-S8NG). A SPARSE run gives the SPARSE and NG columns, "
        "a DENSE run the DENSE column;",
        f"- learners: {tr['epochs']} epochs; one epoch = one step on every training cell × the training "
        f"year; optimiser {tr['optimizer']} (lr {tr['lr']}, ρ {tr.get('rho_adadelta')}, weight decay "
        f"{tr.get('weight_decay')}); loss masked RMSE against SMAP + the range-boundary loss (eq. 13-14); "
        "Z-learners read one random 240-day window per step and test with the mean θ of the training "
        "year's windows (stride 30 d);",
        f"- SCE-UA: spotpy `sceua`, 5 complexes, at most {tr.get('sceua_evaluations')} VIC runs per cell; an "
        "NG cell takes the θ of its nearest calibrated cell;",
        "- couplings: direct (dPL: gradients through the differentiable VIC) and surrogate (the frozen "
        "LSTM surrogate, the paper); testing always runs the VIC;",
        f"- seeds: {', '.join(str(s) for s in seeds)} (n per cell in the table); CPU, one thread per run.",
        "",
        "## Table 2 analogue (test year; median over cells, mean ± sd over seeds)",
        "",
        table2_markdown(t) if len(t) else "(no runs yet)",
        "",
        "Paper: Li & Lu (2023) Table 2 on their 1/8° grid and 2017-18 test year (DAS-S8 / DAS-S4 / "
        "DAS-S8NG), for orientation only: our grid is 36 km and every 4th cell, far sparser.",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for desc, val, ok in checks:
        lines.append(f"| {desc} | {val} | {'yes' if ok else 'no'} |")
    if notes:
        lines += ["", "## Discussion", "", notes.strip()]
    sub = runs[runs["method"] != DEFAULT_RUN_METHOD]
    cost = sub.groupby(["method", "coupling", "sites"])["s_per_epoch"].median().reset_index()
    cost = cost[cost["method"].map(lambda x: VARIANTS[x].family == "param") & cost["sites"].isin(TRAIN_SETS)]
    lines += ["", "## Coupling cost (seconds per epoch, median over runs; 2-core VM, one thread)", "",
              _md(cost, {"method": "method", "coupling": "coupling", "sites": "cells", "s_per_epoch": "s / epoch"}, 2)]
    lines += ["", "## Data scaling (dPL; tested on NG)", ""]
    if len(curve):
        lines += [_md(curve, {"method": "method", "cells": "training set", "n_train": "cells",
                              "RMSE_unseen": "NG RMSE", "PCC_unseen": "NG PCC", "NSE_unseen": "NG NSE"})]
        if "scaling" in figs:
            lines += ["", f"![scaling]({img_prefix}{figs['scaling']})"]
    else:
        lines += ["(no scaling runs yet)"]
    lines += ["", "## The learned `infiltr` field", ""]
    if len(fstats):
        fs = fstats.copy()
        fs["paper"] = fs["method"].map(lambda x: PAPER_INFILTR_RANGE.get(x, "–"))
        lines += [_md(fs, {"method": "method", "cells": "cells", "min": "min", "p05": "5 %", "median": "median",
                           "p95": "95 %", "max": "max", "morans_I": "Moran's I (4 nearest)",
                           "paper": "paper's range (Fig. 5)"}),
                  "", "Moran's I: +1 neighbours alike (smooth), ≈ 0 no spatial structure. From each method's "
                  "DENSE run (seed 0), so all 407 cells; the default run's field is constant."]
        if "infiltr_maps" in figs:
            lines += ["", f"![infiltr maps]({img_prefix}{figs['infiltr_maps']})"]
    lines += ["", "## Evapotranspiration (never trained on)", ""]
    if len(et):
        e = et.copy()
        e["paper"] = e["method"].map(lambda x: _f(PAPER_ET_NSE.get(x)))
        cols = {"method": "method", "ET_median": "median ET (mm/d)", "ET_over_P_median": "median ET/P",
                "r_vs_default": "r vs default θ", "rmse_vs_default": "RMSE vs default (mm/d)",
                "budyko_abs_dev": "median |ET/P − Fu|", "share_ET_gt_P": "cells ET > P",
                "share_ET_gt_PET": "cells ET > PET"}
        if e["modis_r_temporal"].notna().any():
            cols.update({"modis_r_temporal": "MODIS r (8-day, median)", "modis_r_spatial": "MODIS r (spatial)"})
        cols["paper"] = "paper ET NSE vs MODIS"
        lines += [_md(e, cols),
                  "", "No MODIS offline: ET is compared with the default-θ VIC run and checked against Fu's "
                  "Budyko curve (ω = 2.6) with the test year's P and PET (one year: storage change is not "
                  "negligible). `--modis FILE` (cell-level MOD16A2: site, date, ET mm per composite) adds the "
                  "paper's comparison."]
        if "budyko" in figs:
            lines += ["", f"![Budyko]({img_prefix}{figs['budyko']})"]
    lines += ["", "## Learning curves", ""]
    if "learning_curves" in figs:
        lines += [f"![learning curves]({img_prefix}{figs['learning_curves']})", ""]
        lines += _curve_rows(curves, "run (SPARSE, seed 0)")
    if len(long_t):
        n_long = int(long_t["epochs_long"].max())
        lines += [f"## Longer training ({n_long} epochs, SPARSE, direct, seed 0)", "",
                  "Each learner once more, with the same settings but "
                  f"{n_long} epochs, beside its seed-0 run of the table:", "",
                  _md(long_t, {"method": "method", "epochs_short": "epochs", "NSE_trained_short": "SPARSE NSE",
                               "NSE_unseen_short": "NG NSE", "RMSE_unseen_short": "NG RMSE",
                               "epochs_long": "epochs (long)", "NSE_trained_long": "SPARSE NSE (long)",
                               "NSE_unseen_long": "NG NSE (long)", "RMSE_unseen_long": "NG RMSE (long)",
                               "PCC_unseen_long": "NG PCC (long)", "train_s_long": "train s (long)"}), ""]
        if "learning_curves_long" in figs:
            lines += [f"![learning curves, longer training]({img_prefix}{figs['learning_curves_long']})", ""]
        lines += _curve_rows(long_curves, f"run (SPARSE, seed 0, {n_long} epochs)")
    if gate:
        lines += [f"Surrogate used by the surrogate coupling: gate {json_line(gate)}.", ""]
    lines += ["## Runs", "", _md(runs.assign(method=runs["method"]), {
        "method": "method", "coupling": "coupling", "sites": "cells", "seed": "seed", "epochs": "epochs",
        "train_s": "train s", "RMSE_trained": "RMSE", "NSE_trained": "NSE", "NSE_unseen": "NG NSE",
        "run_id": "run"}, 3), ""]
    return "\n".join(lines)


def json_line(gate: dict) -> str:
    keys = ("iteration", "median_nse", "median_rmse", "median_cosine")
    return ", ".join(f"{k} {gate[k]:.4g}" if isinstance(gate[k], float) else f"{k} {gate[k]}"
                     for k in keys if k in gate)
