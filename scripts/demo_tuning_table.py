"""The demo-preset experiments of docs/demo_tuning.md as a CSV and a Markdown table.

Reads finished runs (run directories of `hydrolens train`) through core.runs, one row per run:
what was varied (training basins, seed, loss, n, hidden size, epochs, updates, learning-rate
steps, gradient clip, precision, gradient through the warm-up year), the periods it trained and
was scored on, its wall time and the median NSE and KGE over the scored period; with
``--score-sites-of RUN_DIR`` also the medians over that run's basins (the demo's 50, for runs
trained on all 432).

    python scripts/demo_tuning_table.py RUN_DIR ... --score-sites-of DEMO_RUN_DIR --csv docs/demo_tuning.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.runs import Run, RunFileError, RunNotFoundError  # noqa: E402
from run_table import lr_steps, open_run, rounded, run_table_command  # noqa: E402  (scripts/, the script's own folder)


def row(run: Run, args) -> dict:
    cfg, st, log = run.config(), run.status(), run.train_log()
    t, d, m = cfg["train"], cfg["data"], cfg["model"]
    scored = {}
    if args.score_sites_of and st.get("median_nse") is not None:  # the medians over another run's sites
        met = run.metrics()
        met = met[met.index.astype(str).isin(args.score_sites_of)]
        scored = {"n_scored": len(met), "median_nse_scored": round(float(met["NSE"].median()), 3),
                  "median_kge_scored": round(float(met["KGE"].median()), 3)}
    code = st.get("code") or {}
    commit = (code["commit"][:7] + ("+" if code.get("dirty") else "")) if code.get("commit") else None
    return {
        "run": run.run_id, "commit": commit, "train_sites": len(d["sites"]), "seed": t["seed"], "loss": t["loss"],
        "nmul": m["nmul"], "hidden": m["hidden"], "epochs": int(log["epoch"].max()),
        "updates": int(log["updates"].max()) if "updates" in log else None,
        "lr": t.get("lr"), "lr_steps": lr_steps(t),
        "grad_clip": t.get("grad_clip"), "precision": st.get("precision", t.get("precision")),
        "warmup_grad": bool(m.get("warmup_grad")),
        "train_period": f"{d['train_start']}..{d['train_end']}", "scored_period": f"{d['test_start']}..{d['test_end']}",
        "wall_s": round(float(log["seconds"].sum()), 1),
        # a run stopped before its evaluation has no test figures: "–" in the table
        "median_nse": rounded(st.get("median_nse"), 3), "median_kge": rounded(st.get("median_kge"), 3),
        **scored,
    }


def _sites_of(run_dir: str) -> frozenset[str]:
    """The site ids of the run in ``run_dir`` (read once, for every row); a directory that is
    not a run is a usage error naming it."""
    try:
        return frozenset(open_run(Path(run_dir)).config()["data"]["sites"])
    except (RunNotFoundError, RunFileError) as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _arguments(ap) -> None:
    ap.add_argument("--score-sites-of", type=_sites_of, metavar="RUN_DIR",
                    help="also give each run's median NSE/KGE over this run's sites (e.g. the demo's "
                         "50 basins, for runs trained on more)")


def main(argv=None) -> int:
    return run_table_command(row, __doc__, argv, _arguments)


if __name__ == "__main__":
    sys.exit(main())
