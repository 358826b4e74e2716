"""Per-cell SCE-UA on a Dask cluster: the SPARSE cells with 2 workers against 1 worker.

Times exactly what `hydrolens train --variant sceua` runs with $HYDROLENS_SCHEDULER set:
``calibrate_cells`` with one Dask task per cell (spotpy sequential inside, one torch thread per
task) on a LocalCluster of worker processes (1 thread each), first with 1 worker, then with 2,
in this process. Prints the CPU model, both wall times, the ratio and the per-cell medians.

Run:  .venv/bin/python benchmarks/bench_cluster.py [--cells 104] [--evaluations 300]
      [--data-root PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import core  # noqa: E402,F401  (memory settings before torch)

from core._runtime import cpu_description  # noqa: E402
from core.cluster import disconnect  # noqa: E402
from core.datasets.smap import load_smap, smap_splits  # noqa: E402
from core.models.sceua import calibrate_cells, cell_problems  # noqa: E402


def timed(problems, evaluations: int, workers: int) -> tuple[float, list]:
    from distributed import LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        calibrate_cells(problems[:workers], max_evals=20, scheduler=c.scheduler_address)  # start-up, untimed
        t0 = time.perf_counter()
        res = calibrate_cells(problems, max_evals=evaluations, scheduler=c.scheduler_address)
        seconds = time.perf_counter() - t0
        disconnect(c.scheduler_address)
        return seconds, res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=104, help="first N SPARSE cells (104: all)")
    ap.add_argument("--evaluations", type=int, default=300, help="VIC runs per cell")
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args(argv)
    cpu = cpu_description()
    print(f"CPU: {cpu['cpu']}; {os.cpu_count()} logical CPUs")
    ds = load_smap(args.data_root)
    problems = cell_problems(ds, smap_splits(ds)["SPARSE"][: args.cells], "2015-04-01", "2016-03-31")
    one, r1 = timed(problems, args.evaluations, 1)
    two, r2 = timed(problems, args.evaluations, 2)
    same = all(a.theta == b.theta for a, b in zip(r1, r2))
    print(f"SCE-UA, {len(problems)} SPARSE cells x {args.evaluations} evaluations, one Dask task per cell")
    print(f"1 worker: {one:.1f} s ({one / len(problems):.2f} s per cell)")
    print(f"2 workers: {two:.1f} s ({two / len(problems):.2f} s per cell)")
    print(f"speed-up 2 workers vs 1: {one / two:.2f}x; same θ: {same}; "
          f"median RMSE {statistics.median(r.rmse for r in r2):.4f} m3/m3")


if __name__ == "__main__":
    main()
