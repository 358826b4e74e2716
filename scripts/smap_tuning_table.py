"""The SMAP training-protocol ablations of docs/smap_tuning.md as a CSV and a Markdown table.

Reads finished runs (run directories of `hydrolens train`) through core.runs and writes one
row per run: what was varied (variant, optimiser, learning rate and its steps, data loss, gradient
clip, precision, the
validation protocol, the number of training and validation cells), how long it trained (epochs, best epoch, updates at the best epoch, wall
time), the validation figure the choice is made on (the best epoch's median NSE on the
validation cells), and, reported only, the test-year medians on the training cells (SPARSE) and
on the unseen NG cells.

    python scripts/smap_tuning_table.py RUN_DIR ... --csv docs/smap_tuning.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.runs import Run  # noqa: E402
from run_table import lr_steps, rounded, run_table_command  # noqa: E402  (scripts/, the script's own folder)


def row(run: Run, args=None) -> dict:
    """One table row from a run directory (``args``: the parsed command line; no options of its own)."""
    cfg, st, log = run.config(), run.status(), run.train_log()
    t, d = cfg["train"], cfg["data"]
    best = int(st.get("best_epoch") or log["epoch"].max())
    at_best = log.loc[log["epoch"] == best].iloc[0]
    val = (f"{d.get('val_sites')} cells" if d.get("val_sites") else f"{t.get('val_fraction')} of training cells")
    return {
        "run": run.run_id, "variant": cfg["model"]["variant"], "coupling": cfg["model"].get("coupling", "direct"),
        "optimizer": t["optimizer"], "lr": t.get("lr"),
        "lr_steps": lr_steps(t),
        "loss": t.get("loss", "auto"), "grad_clip": t.get("grad_clip"),
        "precision": st.get("precision", t.get("precision")), "param_bound": cfg["model"].get("param_bound"),
        "validation": f"{val}, {t.get('val_metric', 'loss')}",
        "train_cells": st.get("n_sites"), "val_cells": st.get("n_val_sites"), "seed": t["seed"],
        "epochs_run": int(log["epoch"].max()), "best_epoch": best,
        "updates_at_best": int(at_best.get("updates", best * st.get("iters_per_epoch", 0))),
        "wall_s": round(float(log["seconds"].sum()), 1),
        "val_median_nse_at_best": round(float(at_best["val_NSE"]), 3),
        # a run stopped before its evaluation has no test figures: "–" in the table
        "test_sparse_median_nse": rounded(st.get("median_nse"), 3),
        "test_ng_median_nse": rounded(st.get("median_nse_unseen"), 3),
        "test_ng_median_rmse": rounded(st.get("median_rmse_unseen"), 4),
    }



def main(argv=None) -> int:
    return run_table_command(row, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
