"""``hydrolens benchmark --preset smap``: plan -> train -> score -> draw -> report, every file
written atomically under ``<store>/benchmarks/<preset>/``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ...runs import RunStore, write_text_atomic
from ..figures import budyko_figure, epoch_learning_curve_figure, infiltr_map_figure, scaling_figure
from ..modis import read_modis
from ..runs import preset_label
from ..text import publish
from .plan import METHODS, long_plan, plan_runs
from .report import render_report, report_values
from .run import surrogate_dir, train_plan, without_missing_surrogate
from .score import (collect, coupling_cost, dense_metrics, et_table, field_stats, infiltr_fields, learning_curves,
                    long_table, results_table, scaling_curve, settings_config, surrogate_gate, table2,
                    target_checks)


def run_smap_benchmark(store: RunStore, preset: str = "smap", methods=None, seeds: int = 4,
                       couplings=("direct", "surrogate"), scaling: bool = True, epochs: int | None = None,
                       jobs: int = 1, threads: int | None = None, data_root: str | None = None,
                       surrogate: str | None = None, sceua_evaluations: int | None = None,
                       modis_path: str | None = None, curve_every: int = 5, doc: Path | None = None,
                       command: str = "", long_epochs: int | None = None,
                       train: bool = True, notes: str | Path | None = None, log=print) -> pd.DataFrame:
    """Train what is missing (``train``), then score and report every evaluated planned run.
    Writes, atomically, under ``<store>/benchmarks/<preset>/``: runs.csv, table.csv,
    scaling.csv, infiltr.csv, et.csv, results.csv (``results_table``: one row per run and
    split) (and long.csv with ``long_epochs``), the figures and report.md; with ``doc``, the
    report there, its figures in ``img/`` beside it and the results as ``<doc>.csv``.
    ``long_epochs`` N adds the longer-training runs (:func:`long_plan`), trained after the
    table's; their learning curves read every max(``curve_every``, N // 20)-th checkpoint.

    The surrogate coupling needs a finished surrogate job (``surrogate``, default
    ``<store>/surrogates/default``); without one those runs are skipped with a message.

    Returns:
        the Table-2 analogue (:func:`core.benchmarks.smap.score.table2`).

    Raises:
        ValueError: an unknown method/coupling.
        RuntimeError: a training job failed (rerun to resume), or no planned run is evaluated.
    """
    methods = sorted(methods or METHODS, key=lambda m: METHODS.index(m) if m in METHODS else -1)
    label = preset_label(preset)
    sur_dir = surrogate_dir(store, surrogate)
    planned = plan_runs(methods, seeds, couplings, scaling)
    longer = long_plan(methods, long_epochs)
    planned = without_missing_surrogate(planned, couplings, sur_dir, log)
    if train:
        train_plan(store, preset, planned + longer, epochs, jobs, threads, data_root, str(sur_dir),
                   sceua_evaluations, log, curve_every)

    # ---- scores
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
    gate = surrogate_gate(sur_dir)
    curves = learning_curves(store, label, planned, curve_every, data_root, log)
    long_t = long_table(runs, long_runs)
    long_curves = learning_curves(store, label, longer, curve_every, data_root, log)
    results = results_table(store, runs)
    frames = [("runs", runs), ("table", t), ("scaling", curve), ("infiltr", fstats), ("et", et),
              ("results", results)]
    if longer:
        frames.append(("long", long_t))
    for name, frame in frames:
        write_text_atomic(out / f"{name}.csv", frame.to_csv(index=False))

    # ---- figures
    figs = {}
    if fields:
        infiltr_map_figure(fields, fstats, out / "infiltr_maps.png")
        figs["infiltr_maps"] = "infiltr_maps.png"
        budyko_figure(dense_metrics(store, label, methods), out / "budyko.png")
        figs["budyko"] = "budyko.png"
    if len(curve):
        scaling_figure(curve, out / "scaling.png")
        figs["scaling"] = "scaling.png"
    if curves:
        epoch_learning_curve_figure(curves, out / "learning_curves.png")
        figs["learning_curves"] = "learning_curves.png"
    if long_curves:
        epoch_learning_curve_figure(long_curves, out / "learning_curves_long.png")
        figs["learning_curves_long"] = "learning_curves_long.png"

    # ---- report
    cfg = settings_config(store, runs)
    note_text = Path(notes).read_text(encoding="utf-8") if notes else ""
    checks = target_checks(curve, fstats, gate, runs)
    values = report_values(label, runs, t, coupling_cost(runs), curve, fstats, et, gate, checks, cfg, command,
                           note_text, figs, curves, long_t, long_curves)
    write_text_atomic(out / "report.md", render_report(values))
    if doc is not None:  # the results beside the doc, one row per run and split, for scripts to check
        publish(doc, out, figs.values(), lambda prefix: render_report(values, prefix), results)
    log(f"benchmark written to {out}" + (f" and {doc}" if doc else ""))
    return t
