"""The command both tuning-table scripts share: one row per run directory, written as a CSV and
printed as a Markdown table (docs/smap_tuning.md, docs/demo_tuning.md).

A script gives :func:`run_table_command` its ``row(run, args) -> dict`` and its docstring."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.benchmarks.text import Table  # noqa: E402
from core.runs import Run, RunStore  # noqa: E402


def lr_steps(train: dict) -> str | None:
    """A run's learning-rate steps (``train.lr_schedule``) as ``epoch:rate`` pairs, or None."""
    return " ".join(f"{e}:{lr}" for e, lr in (train.get("lr_schedule") or {}).items()) or None


def rounded(value, digits: int) -> float | None:
    """``value`` rounded to ``digits``, or None (shown as "–") where a run has no such figure, e.g.
    the test medians of a run stopped before its evaluation."""
    return None if value is None else round(float(value), digits)


def open_run(path: Path) -> Run:
    """The run whose directory is ``path`` (its parent is the run store).

    Raises:
        RunNotFoundError: ``path`` is not a run directory (names it).
    """
    path = path.resolve()
    return RunStore(path.parent).get(path.name)


def run_table_command(row: Callable[..., dict], doc: str, argv=None,
                      add_arguments: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    """Parse ``RUN_DIR ... [--csv FILE]``, build one ``row`` per run directory (read through
    core.runs), write the table to ``--csv`` and print it as Markdown ("–" for a missing value).
    A script with options of its own adds them through ``add_arguments``; ``row`` is called as
    ``row(run, args)`` with the parsed command line either way.

    Raises:
        RunNotFoundError / RunFileError: a directory is not a readable run (names it).
    """
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run directories")
    ap.add_argument("--csv", type=Path, help="write the table here as CSV")
    if add_arguments:
        add_arguments(ap)
    args = ap.parse_args(argv)
    runs = [open_run(p) for p in args.runs]
    table = pd.DataFrame([row(run, args) for run in runs])
    if args.csv:
        args.csv.write_text(table.to_csv(index=False), encoding="utf-8")
    cells = [["–" if pd.isna(v) else str(v) for v in r] for r in table.itertuples(index=False)]
    print(Table(list(table.columns), cells).markdown())
    return 0
