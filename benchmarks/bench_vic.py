"""VIC-type model speed on CPU: the eager reference loop vs the compiled step, on real SMAP cells.

Prints medians of repeated runs in one process (ratios within this process), float32, for the
engines reference (eager autograd loop), compiled (torch.compile'd step) and fused (the C++
forward kernel, no gradient):

  1. forward without gradient, every usable cell (407) x the whole forcing period (1096 days):
     what testing a learned θ and the surrogate's Latin-hypercube runs cost;
  2. forward + backward, 104 cells (SPARSE) x (365 warm-up days without gradient + 365 days
     with): one direct (dPL) training step of the VIC alone;
  3. the same shapes through the HBV (nmul 1): reference loop and fused kernel, as a yardstick
     of what a daily bucket model costs here;
  4. the first call of the compiled engine (compilation; Inductor's disk cache makes a second
     process start faster).

Run:  .venv/bin/python benchmarks/bench_vic.py [--reps 5] [--threads 2] [--data-root PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import core  # noqa: E402,F401  (memory settings before torch)
import torch  # noqa: E402

from core.datasets.smap import load_smap, smap_splits  # noqa: E402
from core.physics import HBV, HBV_PARAMETERS, VIC, VIC_PARAMETERS, soil_properties  # noqa: E402


def timeit(fn, reps: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-root", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    ds = load_smap(a.data_root)
    dt = torch.float32

    def tens(ds_, v):
        return torch.tensor(ds_[v].transpose("time", "site").values, dtype=dt)

    forcing = torch.stack([tens(ds, v) for v in ("P", "T", "PET")], -1)
    site = soil_properties(*(torch.tensor(ds[v].values, dtype=dt) for v in ("bulk", "clay", "sand", "ndvi")))
    ns, nt = forcing.shape[1], forcing.shape[0]
    sparse = [list(ds["site"].values).index(c) for c in smap_splits(ds)["SPARSE"]]
    f2 = forcing[:730, sparse]
    s2 = {k: v[sparse] for k, v in site.items()}
    nb = len(sparse)
    g = torch.Generator().manual_seed(0)
    theta = {s.name: s.scale(torch.rand(1, ns, 1, generator=g, dtype=dt)) for s in VIC_PARAMETERS}

    results = {}
    t0 = time.perf_counter()
    with torch.no_grad():
        VIC(engine="compiled")(forcing[:10], theta, site=site)
    compile_s = time.perf_counter() - t0

    for engine in ("reference", "compiled", "fused"):
        model = VIC(engine=engine)

        def fwd():
            with torch.no_grad():
                model(forcing, theta, site=site)

        def step():
            raw = {s.name: torch.rand(1, nb, 1, generator=g, dtype=dt).requires_grad_() for s in VIC_PARAMETERS}
            params = {s.name: s.scale(raw[s.name]) for s in VIC_PARAMETERS}
            with torch.no_grad():
                warm = model(f2[:365], {k: v.detach() for k, v in params.items()}, site=s2)
            out = model(f2[365:], params, warm.final_state, site=s2)
            out.outputs["SM"].mean().backward()

        results[("forward", engine)] = timeit(fwd, a.reps)
        if engine != "fused":  # forward only
            results[("step", engine)] = timeit(step, a.reps)

    for engine in ("reference", "fused"):
        hbv = HBV(nmul=1, engine=engine)

        def hstep():
            raw = {s.name: torch.rand(1, nb, 1, generator=g, dtype=dt).requires_grad_() for s in HBV_PARAMETERS}
            params = {s.name: s.scale(raw[s.name]) for s in HBV_PARAMETERS}
            with torch.no_grad():
                warm = hbv(f2[:365], {k: v.detach() for k, v in params.items()})
            out = hbv(f2[365:], params, warm.final_state)
            out.outputs["Q_unrouted"].mean().backward()

        results[("step", f"HBV {engine}")] = timeit(hstep, a.reps)

    print(f"VIC-type model, float32, {a.threads} threads, {a.reps} repeats (median; samples)")
    print(f"first call of the compiled engine (compilation): {compile_s:.1f} s")
    ref = statistics.median(results[("forward", "reference")])
    for engine in ("reference", "compiled", "fused"):
        v = results[("forward", engine)]
        print(f"forward, no gradient, {ns} cells x {nt} d, {engine:>9}: {statistics.median(v):7.3f} s "
              f"({ref / statistics.median(v):4.1f}x of reference)  " + " ".join(f"{x:.3f}" for x in v))
    ref = statistics.median(results[("step", "reference")])
    for key in ("reference", "compiled", "HBV reference", "HBV fused"):
        v = results[("step", key)]
        print(f"warm-up 365 d + forward/backward 365 d, {nb} cells, {key:>13}: {statistics.median(v):7.3f} s "
              f"({ref / statistics.median(v):4.1f}x of VIC reference)  " + " ".join(f"{x:.3f}" for x in v))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
