"""The SMAP benchmark's report: the values of ``templates/benchmark_smap.md.j2`` (tables
formatted, the paper's numbers beside ours) and its rendering."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...models import VARIANTS
from ..text import Table, fmt, render
from .score import COLUMNS, METRICS

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


def frame_table(frame: pd.DataFrame, cols: dict[str, str], nd: int = 3) -> Table:
    """The columns ``cols`` (column -> title) of ``frame``, one table row per frame row: a method
    by its label, an ``epochs*`` count as an integer, other numbers with ``nd`` decimals."""
    out = Table(list(cols.values()))
    for _, row in frame.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if c == "method":
                v = VARIANTS[v].label
            elif c.startswith("epochs") and isinstance(v, (float, np.floating)) and np.isfinite(v):
                v = int(v)  # a count, not a measurement: 30, not 30.000
            cells.append(fmt(v, nd) if isinstance(v, (float, np.floating)) else str(v))
        out.rows.append(cells)
    return out


def _cell(row, col: str) -> str:
    if row[f"{col}_n"] == 0:
        return "–"
    parts = []
    for k in METRICS:
        v, sd = row[f"{col}_{k}"], row[f"{col}_{k}_sd"]
        parts.append(fmt(v) + (f" ± {sd:.3f}" if np.isfinite(sd) else ""))
    return " / ".join(parts) + f" (n={row[f'{col}_n']})"


def table2_table(t: pd.DataFrame) -> Table:
    """The Table-2 analogue (:func:`core.benchmarks.smap.score.table2`) as cells: per column
    RMSE / PCC / NSE, mean ± sd (n seeds), and the paper's values beside."""
    head = ["method", "coupling"] + [f"{c} RMSE / PCC / NSE" for c, _, _ in COLUMNS] + \
        [f"paper {c}" for c, _, _ in COLUMNS]
    out = Table(head)
    for _, row in t.iterrows():
        paper = PAPER_TABLE2.get(row["method"], {})
        cells = [VARIANTS[row["method"]].label, row["coupling"]]
        cells += [_cell(row, c) for c, _, _ in COLUMNS]
        cells += [" / ".join(f"{x:.3f}" for x in paper[c]) if c in paper else "–" for c, _, _ in COLUMNS]
        out.rows.append(cells)
    return out


def curve_table(curves: dict[str, pd.DataFrame], title: str) -> Table | None:
    """Test median NSE (SPARSE, and NG where the run has unseen cells), training loss and
    validation loss of each learning curve at every epoch that has a checkpoint NSE (None when
    none has)."""
    epochs = sorted({int(e) for c in curves.values() for e in c.loc[c["test_median_nse"].notna(), "epoch"]})
    if not epochs:
        return None
    out = Table([title] + [f"epoch {e}" for e in epochs])
    for name, c in curves.items():
        by = c.set_index(c["epoch"].astype(int))
        out.rows.append([f"{name} NSE"] + [fmt(by["test_median_nse"].get(e)) for e in epochs])
        if "test_median_nse_unseen" in by and by["test_median_nse_unseen"].notna().any():
            out.rows.append([f"{name} NG NSE"] + [fmt(by["test_median_nse_unseen"].get(e)) for e in epochs])
        out.rows.append([f"{name} loss"] + [fmt(by["loss"].get(e)) for e in epochs])
        if "val_loss" in by and by["val_loss"].notna().any():
            out.rows.append([f"{name} validation loss"] + [fmt(by["val_loss"].get(e)) for e in epochs])
    return out


def json_line(gate: dict) -> str:
    """The surrogate gate in one line: iteration, median NSE, RMSE and gradient cosine."""
    keys = ("iteration", "median_nse", "median_rmse", "median_cosine")
    return ", ".join(f"{k} {gate[k]:.4g}" if isinstance(gate[k], float) else f"{k} {gate[k]}"
                     for k in keys if k in gate)


def report_values(label: str, runs: pd.DataFrame, t: pd.DataFrame, cost: pd.DataFrame, curve: pd.DataFrame,
                  fstats: pd.DataFrame, et: pd.DataFrame, gate: dict | None, checks: list[tuple], cfg: dict,
                  command: str = "", notes: str = "", figs: dict[str, str] | None = None,
                  curves: dict[str, pd.DataFrame] | None = None, long_t: pd.DataFrame | None = None,
                  long_curves: dict[str, pd.DataFrame] | None = None) -> dict:
    """What ``templates/benchmark_smap.md.j2`` shows, formatted, from the score frames of
    :mod:`core.benchmarks.smap.score`: ``runs`` (collect), ``t`` (table2), ``cost``
    (coupling_cost), ``curve`` (scaling_curve), ``fstats`` (field_stats), ``et`` (et_table),
    ``checks`` (target_checks), ``long_t`` (long_table) and the learning curves; ``cfg``: the
    RunConfig dict the settings describe; ``figs``: figure key -> PNG file name of those drawn.
    An empty frame leaves its section's table out."""
    figs, curves, long_curves = figs or {}, curves or {}, long_curves or {}
    long_t = pd.DataFrame() if long_t is None else long_t
    values = {
        "label": label, "command": command, "d": cfg["data"], "tr": cfg["train"], "mo": cfg.get("model", {}),
        "optimisers": cfg.get("optimisers") or {},
        "seeds": [str(s) for s in sorted(runs["seed"].unique())],
        "couplings": sorted(set(runs["coupling"]) - {"–"}),
        "table2": table2_table(t) if len(t) else None,
        "targets": Table(["target", "measured", "met"],
                         [[desc, val, "yes" if ok else "no"] for desc, val, ok in checks]),
        "notes": notes, "figs": figs,
        "cost": frame_table(cost, {"method": "method", "coupling": "coupling", "sites": "cells",
                                   "s_per_epoch": "s / epoch"}, 2),
        "scaling": frame_table(curve, {"method": "method", "cells": "training set", "n_train": "cells",
                                       "seeds": "seeds", "validation": "model picked on",
                                       "RMSE_unseen": "NG RMSE", "PCC_unseen": "NG PCC",
                                       "NSE_unseen": "NG NSE"}) if len(curve) else None,
        "infiltr": None, "et": None,
        "curves": curve_table(curves, "run (SPARSE, seed 0)") if "learning_curves" in figs else None,
        "n_long": None, "long": None, "long_curves": None,
        "gate_line": json_line(gate) if gate else None,
        "runs": frame_table(runs, {"method": "method", "coupling": "coupling", "sites": "cells", "seed": "seed",
                                   "epochs": "epochs", "updates": "updates", "train_s": "train s", "RMSE_trained": "RMSE",
                                   "NSE_trained": "NSE", "NSE_unseen": "NG NSE", "run_id": "run"}, 3),
    }
    if len(fstats):
        fs = fstats.assign(paper=fstats["method"].map(lambda x: PAPER_INFILTR_RANGE.get(x, "–")))
        values["infiltr"] = frame_table(fs, {
            "method": "method", "cells": "cells", "min": "min", "p05": "5 %", "median": "median", "p95": "95 %",
            "max": "max", "morans_I": "Moran's I (4 nearest)", "morans_p": "p (999 permutations)",
            "paper": "paper's range (Fig. 5)"})
    if len(et):
        e = et.assign(paper=et["method"].map(lambda x: fmt(PAPER_ET_NSE.get(x))))
        cols = {"method": "method", "ET_median": "median ET (mm/d)", "ET_over_P_median": "median ET/P",
                "r_vs_default": "r vs default θ", "rmse_vs_default": "RMSE vs default (mm/d)",
                "budyko_abs_dev": "median |ET/P − Fu|", "share_ET_gt_P": "cells ET > P",
                "share_ET_gt_PET": "cells ET > PET"}
        if e["modis_r_temporal"].notna().any():
            cols.update({"modis_r_temporal": "MODIS r (8-day, median)", "modis_r_spatial": "MODIS r (spatial)"})
        cols["paper"] = "paper ET NSE vs MODIS"
        values["et"] = frame_table(e, cols)
    if len(long_t):
        n_long = int(long_t["epochs_long"].max())
        values["n_long"] = n_long
        values["long"] = frame_table(long_t, {
            "method": "method", "epochs_short": "epochs", "NSE_trained_short": "SPARSE NSE",
            "NSE_unseen_short": "NG NSE", "RMSE_unseen_short": "NG RMSE", "epochs_long": "epochs (long)",
            "NSE_trained_long": "SPARSE NSE (long)", "NSE_unseen_long": "NG NSE (long)",
            "RMSE_unseen_long": "NG RMSE (long)", "PCC_unseen_long": "NG PCC (long)",
            "train_s_long": "train s (long)"})
        values["long_curves"] = curve_table(long_curves, f"run (SPARSE, seed 0, {n_long} epochs)")
    return values


def render_report(values: dict, img_prefix: str = "") -> str:
    """The report from :func:`report_values`; figures linked as ``<img_prefix><file>``."""
    return render("benchmark_smap.md.j2", **values, img_prefix=img_prefix)
