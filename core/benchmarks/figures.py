"""The benchmark reports' figures (matplotlib, Agg backend), each written atomically as PNG:
the δ benchmark's NSE CDF and learning curves; the SMAP benchmark's learning curves, data
scaling curve, ``infiltr`` maps and Budyko check."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..evaluation.diagnostics import fu_evaporative_index
from ..models import VARIANTS
from .text import fmt


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
    save_fig(fig, path)


def save_fig(fig, path: Path) -> None:
    """Write ``fig`` to ``path`` as PNG atomically (temporary file, then rename) and close it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------ δ benchmark
def nse_cdf_figure(metrics: dict[str, pd.DataFrame], path: Path, title: str) -> None:
    """CDFs of per-basin test NSE and KGE for each model side by side (Feng et al. 2022, Fig.
    3), values below 0 shown at 0 (``metrics``: variant -> its metrics table with NSE and KGE
    columns; a model without KGE gets the NSE panel only)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), dpi=120, sharey=True)
    for ax, score in zip(axes, ("NSE", "KGE")):
        for v, m in metrics.items():
            if score not in m:
                continue
            vals = m[score].dropna().values
            x = np.sort(np.clip(vals, 0, 1))
            ax.plot(x, np.arange(1, len(x) + 1) / len(x), label=f"{VARIANTS[v].label} (median {np.median(vals):.3f})",
                    lw=2.2 if v in ("delta_n_gamma_beta", "lstm") else 1.4, ls="--" if v == "lstm" else "-")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=f"test {score} (values < 0 shown at 0)", title=f"{title}: {score}")
    axes[0].set_ylabel("fraction of basins (CDF)")
    axes[0].legend(loc="upper left", fontsize=8)  # each panel names its own medians
    finish_figure(fig, list(axes), axes[1], path, legend_loc="upper left")


def curve_steps(curve: pd.DataFrame, iters: int) -> pd.Series:
    """The optimisation steps of a learning curve's rows: its own ``updates`` column where every
    row has one (runs of one page may differ in iterations per epoch), else epoch × ``iters``."""
    if "updates" in curve and curve["updates"].notna().all():
        return curve["updates"]
    return curve["epoch"] * iters


def learning_curve_figure(curves: dict[str, pd.DataFrame], iters: int, path: Path) -> None:
    """Training loss and test median NSE against optimisation steps (:func:`curve_steps`; ``iters``
    for a curve without updates), one line per model (``curves``: variant ->
    :func:`core.benchmarks.runs.learning_curve`)."""
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    for v, c in curves.items():
        steps = curve_steps(c, iters)
        a1.plot(steps, c["loss"], label=VARIANTS[v].label)
        ok = c["test_median_nse"].notna()
        a2.plot(steps[ok], c.loc[ok, "test_median_nse"], marker="o", ms=3, label=VARIANTS[v].label)
    a1.set(xlabel="optimisation steps", ylabel="training loss (epoch mean)", title="training loss")
    a2.set(xlabel="optimisation steps", ylabel="test median NSE", title="test median NSE of checkpoints")
    finish_figure(fig, [a1, a2], a2, path)


# ------------------------------------------------------------------------------ SMAP benchmark
def epoch_learning_curve_figure(curves: dict[str, pd.DataFrame], path: Path) -> None:
    """Against optimiser updates (epochs for a log without them): the training loss (masked
    RMSE + range-boundary loss, solid) and the validation loss on the validation cells (dotted)
    where the run validates; and the validation cells' median NSE over the training year
    (dash-dot: what picks the run's model), the test median NSE of the epoch checkpoints on the
    run's cells (SPARSE) and on the unseen NG cells (squares), one colour per run (``curves``:
    run title -> learning curve; dashed: a title naming the surrogate coupling). The test
    curves are never used to choose a checkpoint."""
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    has_updates = all("updates" in c and c["updates"].notna().all() for c in curves.values())
    xcol = "updates" if has_updates else "epoch"
    for name, c in curves.items():
        ls = "--" if "surrogate" in name else "-"
        (line,) = a1.plot(c[xcol], c["loss"], label=name, ls=ls)
        if "val_loss" in c and c["val_loss"].notna().any():
            a1.plot(c[xcol], c["val_loss"], ls=":", color=line.get_color(), label=f"{name} validation")
        if "val_NSE" in c and c["val_NSE"].notna().any():
            a2.plot(c[xcol], c["val_NSE"], ls="-.", lw=0.8, color=line.get_color(), label=f"{name} validation")
        ok = c["test_median_nse"].notna()
        a2.plot(c.loc[ok, xcol], c.loc[ok, "test_median_nse"], marker="o", ms=3, label=f"{name} SPARSE",
                ls=ls, color=line.get_color())
        if "test_median_nse_unseen" in c and c["test_median_nse_unseen"].notna().any():
            ok = c["test_median_nse_unseen"].notna()
            a2.plot(c.loc[ok, xcol], c.loc[ok, "test_median_nse_unseen"], marker="s", ms=3, ls=":",
                    color=line.get_color(), label=f"{name} NG")
    xlabel = "optimiser updates" if has_updates else "epoch"
    a1.set(xlabel=xlabel, ylabel="loss", title="training and validation loss (SPARSE, seed 0)", yscale="log")
    a2.set(xlabel=xlabel, ylabel="median NSE", title="validation NSE, and test NSE of the epoch checkpoints")
    finish_figure(fig, [a1, a2], a2, path, fontsize=7)


def scaling_figure(curve: pd.DataFrame, path: Path) -> None:
    """Median NSE and RMSE on the unseen (NG) cells against the number of training cells, one
    line per method (``curve``: columns method, n_train, NSE_unseen, RMSE_unseen)."""
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=110)
    for m, g in curve.groupby("method", sort=False):
        a1.plot(g["n_train"], g["NSE_unseen"], marker="o", label=VARIANTS[m].label)
        a2.plot(g["n_train"], g["RMSE_unseen"], marker="o", label=VARIANTS[m].label)
    a1.set(xlabel="training cells", ylabel="median NSE on NG", title="NSE on unseen cells")
    a2.set(xlabel="training cells", ylabel="median RMSE on NG (m³/m³)", title="RMSE on unseen cells")
    finish_figure(fig, [a1, a2], a1, path)


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
        ax.set_title(f"{VARIANTS[m].label}  (Moran's I {fmt(mi.get(m))})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect(1.25)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if sc is not None:
        fig.colorbar(sc, ax=axes, shrink=0.8, label="infiltr (b, -)")
    fig.suptitle("learned infiltr (DENSE runs; outlined: NG cells, never trained on)", fontsize=10)
    save_fig(fig, path)


def budyko_figure(metrics: dict[str, pd.DataFrame], path: Path, omega: float = 2.6) -> None:
    """ET/P against PET/P of every cell (``metrics``: method -> its run's metrics.csv with
    P_mean, PET_mean, ET_mean), with Fu's curve (``omega``) and the energy and water limits."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=110)
    for m, met in metrics.items():
        ok = met["P_mean"] > 0
        ax.scatter(met.loc[ok, "PET_mean"] / met.loc[ok, "P_mean"], met.loc[ok, "ET_mean"] / met.loc[ok, "P_mean"],
                   s=6, alpha=0.6, label=VARIANTS[m].label)
    phi = np.linspace(0, 5, 200)
    ax.plot(phi, fu_evaporative_index(phi, omega), "k-", lw=1.5, label=f"Fu (ω = {omega})")
    ax.plot(phi, np.minimum(phi, 1), "k:", lw=1, label="energy / water limits")
    ax.set(xlabel="aridity PET/P", ylabel="ET/P (test year)", xlim=(0, 5), ylim=(0, 1.3),
           title="Budyko check (DENSE runs, all cells)")
    finish_figure(fig, [ax], ax, path, fontsize=7, markerscale=2)
