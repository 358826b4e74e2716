"""HydroLens's δ-model HBV side by side with MHPI's hydrodl2 (the reference implementation of
Feng et al. 2022's release), on identical forcing and identical learner output.

Both models get the same normalised parameters for every day (a random walk in logit space, so
the learner's output changes from day to day as a trained g_A's does), the same real forcing
(P, T, Oudin PET of Caravan basins) and the same warm-up. Printed per case: the largest absolute
difference of routed streamflow over the window and over its first 14 days (mm/d), of ET
(mm/d), and the NSE of HydroLens's streamflow against hydrodl2's.

Cases: a cold start (no warm-up), then a 365-day warm-up with HydroLens's conventions and with
``model.conventions: feng2022`` (docs/models.md, "Conventions"), each for static parameters and
for dynamic BETA and GAMMA (δn(γᵗ,βᵗ)).

hydrodl2 is not a HydroLens dependency; point Python at a copy of it:

    pip download hydrodl2==1.4.0 --no-deps -d /tmp/hd2 && unzip -q /tmp/hd2/*.whl -d /tmp/hd2/pkg
    PYTHONPATH=/tmp/hd2/pkg python scripts/compare_hydrodl2.py --data-root ../shared/data
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.datasets.loader import load_dataset  # noqa: E402
from core.metrics import nse  # noqa: E402
from core.models.delta import DeltaModel  # noqa: E402


class FixedOutput(nn.Module):
    """A stand-in for g_A whose output (before the sigmoid) is given: ``logits`` [time, site, ny]."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits

    def head(self, h: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        return h if rows is None else h[..., rows]


def hydrolens_run(forcing, logits, warmup, nmul, dynamic, conventions):
    model = DeltaModel(n_dynamic=1, n_static=0, nmul=nmul, dynamic=dynamic, use_gamma="GAMMA" in dynamic,
                       conventions=conventions)
    model.learner = FixedOutput(logits)
    nt, nb = forcing.shape[:2]
    with torch.no_grad():
        out = model(torch.zeros(nt, nb, 1), torch.zeros(nb, 0), forcing, warmup=warmup)
    return out.outputs["Q_sim"].numpy(), out.outputs["ET"].numpy()


def hydrodl2_run(forcing, logits, warmup, nmul, dynamic):
    from hydrodl2.models.hbv.hbv import Hbv

    names = {"BETA": "parBETA", "GAMMA": "parBETAET"}
    cfg = {"warmup": warmup, "warmup_states": True, "dynamic_params": {"Hbv": [names[d] for d in dynamic]},
           "nmul": nmul, "dy_drop": 0.0, "routing": True, "nearzero": 1e-5}
    model = Hbv(cfg, device=torch.device("cpu"))
    with torch.no_grad():
        out = model({"x_phy": forcing}, logits)
    # the window: warm-up days are dropped
    return out["streamflow"].squeeze(-1).numpy(), out["AET_hydro"].squeeze(-1).numpy()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--basins", default="01022500,01031500,01047000")
    ap.add_argument("--nmul", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        import hydrodl2  # noqa: F401
    except ImportError:
        print("hydrodl2 is not importable: see this script's docstring for how to point Python at it")
        return 2
    ds = load_dataset(root=args.data_root, basins=args.basins.split(","), source="caravan",
                      start="1990-10-01", end="1993-09-30", pet="oudin")
    forcing = torch.from_numpy(np.stack([ds[v].transpose("time", "site").values for v in ("P", "T", "PET")],
                                        -1).astype(np.float32))
    nt, nb = forcing.shape[:2]
    g = torch.Generator().manual_seed(args.seed)
    print(f"{nb} Caravan basins ({args.basins}), {nt} days from 1990-10-01, nmul {args.nmul}; "
          f"hydrodl2 {hydrodl2.__version__ if hasattr(hydrodl2, '__version__') else '?'}")
    print(f"{'case':44s} {'max|dQ| window':>15s} {'max|dQ| d1-14':>14s} {'max|dET|':>10s} {'NSE(Q)':>13s}")
    for dynamic in ((), ("BETA", "GAMMA")):
        n_par = 12 + ("GAMMA" in dynamic)
        ny = n_par * args.nmul + 2
        # the learner's output: a random walk in logit space, different for every day
        logits = (torch.randn(nb, ny, generator=g) + 0.05 * torch.randn(nt, nb, ny, generator=g).cumsum(0))
        for warmup, conventions in ((0, "hydrolens"), (365, "hydrolens"), (365, "feng2022")):
            q1, et1 = hydrolens_run(forcing, logits, warmup, args.nmul, dynamic, conventions)
            q2, et2 = hydrodl2_run(forcing, logits, warmup, args.nmul, dynamic)
            dq = np.abs(q1 - q2)
            label = (f"{'dynamic BETA, GAMMA' if dynamic else 'static'}, "
                     f"{'cold start' if not warmup else f'warm-up {warmup} d, {conventions}'}")
            print(f"{label:44s} {dq.max():15.2e} {dq[:14].max():14.2e} {np.abs(et1 - et2).max():10.2e} "
                  f"{np.nanmin(nse(q1, q2)):13.9f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
