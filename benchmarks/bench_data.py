"""Data-loading benchmark: all Caravan basins of the data root into one Dataset.

Prints the median of N loads in one process (the OS file cache is warm after the first).
Run: .venv/bin/python benchmarks/bench_data.py [--reps 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.datasets import load_dataset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    ts = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        ds = load_dataset()
        ts.append(time.perf_counter() - t0)
    print(f"load_dataset(): {ds.sizes['site']} basins x {ds.sizes['time']} days, "
          f"median {statistics.median(ts):.2f} s of {a.reps} (first {ts[0]:.2f} s)")


if __name__ == "__main__":
    main()
