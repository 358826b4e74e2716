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

With ``--drainage`` it prints instead what the exact drainage (``core.physics.vic.gravity_drainage``)
changes against the doc's explicit step Ksat·dt·(W/Wmax)^expt capped at the water held, on the
real forcing, float64, through the reference loop (the explicit step is swapped in for that run
only): storm days (Pw ≥ 20 mm, random θ on every cell, 2015-04..2017-03) ending with a dry top
layer, and for the default θ (spin-up by cycling the training year) the dry cell-days of the test
year and the median NSE / RMSE / PCC against SMAP (docs/models.md).

Run:  .venv/bin/python benchmarks/bench_vic.py [--reps 5] [--threads 2] [--data-root PATH] [--drainage]
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


def explicit_drainage(w, wmax, ksat, expt, dt):
    """The doc's explicit drainage step, capped at the water held (the model before the change)."""
    return torch.minimum(ksat * dt * torch.clamp(w / wmax, 1e-6, 1.0 - 1e-6) ** expt, w)


def drainage_report(data_root) -> None:
    """The table of docs/models.md: exact vs explicit drainage on the real forcing."""
    import numpy as np

    from core.metrics import nse, pcc, rmse
    from core.physics import vic as vic_module
    from core.physics.vic import VIC_DEFAULT_PARAMETERS, cycle_spinup

    D = torch.float64
    ds = load_smap(data_root)
    smap = ds["smap_am"].transpose("time", "site").values
    n_obs = int(np.isfinite(smap).any(1).nonzero()[0].max()) + 1       # 731: SMAP ends 2017-03-31
    forcing = torch.stack([torch.tensor(ds[v].transpose("time", "site").values, dtype=D)
                           for v in ("P", "T", "PET")], -1)[:n_obs]
    site = soil_properties(*(torch.tensor(ds[v].values, dtype=D) for v in ("bulk", "clay", "sand", "ndvi")))
    ns = forcing.shape[1]
    train_days = int((ds["time"].values[:n_obs] < np.datetime64("2016-04-01")).sum())
    g = torch.Generator().manual_seed(7)
    theta = {s.name: s.scale(torch.rand(1, ns, 1, generator=g, dtype=D)) for s in VIC_PARAMETERS}
    default = {k: torch.full((1, ns, 1), v, dtype=D) for k, v in VIC_DEFAULT_PARAMETERS.items()}
    spun = cycle_spinup(forcing, train_days)
    obs = smap[train_days:n_obs]
    rows = {}
    exact = vic_module.gravity_drainage
    for label, fn in (("explicit (before)", explicit_drainage), ("exact", exact)):
        vic_module.gravity_drainage = fn
        try:
            model = VIC(engine="reference")
            t0 = time.perf_counter()
            with torch.no_grad():
                o = model(forcing, theta, site=site).outputs
                d = model(spun, default, site=site).outputs
        finally:
            vic_module.gravity_drainage = exact
        storm = o["PW"] >= 20.0
        sm_storm = o["SM"][storm]
        sm = d["SM"][2 * train_days:].numpy()
        dry = sm < 0.005
        sim, ob = sm, obs                                               # [time, site]
        rows[label] = (int(storm.sum()), float((sm_storm < 0.02).double().mean()), float(sm_storm.min()),
                       float(dry.mean()), float(dry.any(0).mean()),
                       float(np.nanmedian(nse(sim, ob))), float(np.nanmedian(rmse(sim, ob))),
                       float(np.nanmedian(pcc(sim, ob))), time.perf_counter() - t0)
    print(f"drainage: exact vs the doc's explicit step, {ns} cells, float64, reference loop")
    print(f"{'':>18} {'storm days':>10} {'SM<0.02':>8} {'min SM':>7} | default θ, test year: "
          f"{'dry days':>8} {'cells':>6} {'NSE':>6} {'RMSE':>6} {'PCC':>5} | s")
    for label, r in rows.items():
        print(f"{label:>18} {r[0]:>10d} {r[1]:>8.1%} {r[2]:>7.3f} |                       "
              f"{r[3]:>8.1%} {r[4]:>6.1%} {r[5]:>6.2f} {r[6]:>6.3f} {r[7]:>5.2f} | {r[8]:.1f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--drainage", action="store_true",
                    help="compare the exact drainage with the doc's explicit step instead of timing")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.drainage:
        drainage_report(a.data_root)
        return 0
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
