"""The learning curve of δ-model runs as a figure and a CSV: training loss per epoch and the test
median NSE of the epoch checkpoints, against optimiser updates (docs/demo_tuning.md).

    python scripts/learning_curve_figure.py RUN_DIR ... --every 5 --png docs/img/X.png --csv docs/X.csv

Reads each run through core (``core.benchmarks.runs.learning_curve``: the checkpoints already
scored by ``hydrolens learning-curve`` come from the run's cache, the others are evaluated now)
and draws them with the δ benchmark's figure (``learning_curve_figure``). A run needs its epoch
checkpoints (``train.keep_checkpoints`` at least its epochs). The curve is never used to choose
anything: it shows how the test skill moves with the updates.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402
from run_table import open_run  # noqa: E402  (scripts/, the script's own folder; puts the repo on sys.path)

from core.benchmarks.figures import learning_curve_figure  # noqa: E402
from core.benchmarks.runs import iters_per_epoch, learning_curve  # noqa: E402
from core.runs import RunNotFoundError, write_text_atomic  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="run directories (δ-model runs of one variant each)")
    p.add_argument("--every", type=int, default=5, help="score every N-th epoch checkpoint (and the first and last)")
    p.add_argument("--data-root", default=None, help="data root override")
    p.add_argument("--png", type=Path, required=True, help="figure to write")
    p.add_argument("--csv", type=Path, default=None, help="also the curves as a CSV (run, epoch, updates, loss, NSE)")
    a = p.parse_args(argv)
    curves, rows, iters = {}, [], None
    for path in a.runs:
        try:
            run = open_run(path)
        except RunNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        variant = run.config()["model"]["variant"]
        if variant in curves:  # the figure draws one line per variant: a second run would replace the first
            print(f"error: {path}: a second run of {variant}; give one run per variant", file=sys.stderr)
            return 2
        c = learning_curve(run, a.every, a.data_root)
        curves[variant] = c
        iters = iters_per_epoch(run)
        rows.append(c.assign(run=run.run_id))
    learning_curve_figure(curves, iters, a.png)
    print(f"figure written to {a.png}")
    if a.csv:
        table = pd.concat(rows, ignore_index=True)
        cols = [c for c in ("run", "epoch", "updates", "loss", "test_median_nse") if c in table]
        write_text_atomic(a.csv, table[cols].to_csv(index=False, float_format="%.4f"))
        print(f"curve written to {a.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
