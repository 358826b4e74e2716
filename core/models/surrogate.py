"""LSTM surrogate of the VIC-type model (Li & Lu 2023, sec. 2.2; ``../shared/docs/
paraformer_vic.md`` section 4): forcing + soil statics + θ -> surface soil moisture and ET.

The paper trains its parameter learners through a frozen LSTM surrogate because VIC itself is
not differentiable. Here the VIC is differentiable too (the direct coupling), and the surrogate
exists so that both couplings can be compared on the same split. It is trained on the VIC's own
output for Latin-hypercube samples of θ per cell, then frozen; before use it must pass the gate
of the doc on held-out θ sets and the held-out year: median NSE ≥ 0.95, RMSE ≤ 0.01 m³/m³ against
the VIC, and gradients w.r.t. θ with a cosine similarity ≥ 0.9 to the VIC's own.

Shapes: ``forward(x [time, site, n_in]) -> [time, site, 2]`` (SM m³/m³, ET mm/d), with
``x`` from ``surrogate_inputs`` (normalised forcing, normalised statics, θ in [0, 1]).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..metrics import nse, rmse
from ..physics.vic import VIC, VIC_PARAMETERS, cycle_spinup, soil_properties
from ..runs.checkpoint import CheckpointError, load_checkpoint

#: Statics the surrogate reads (those the VIC's soil_properties uses).
SURROGATE_STATICS = ("bulk", "clay", "sand", "ndvi")
#: Forcing the surrogate reads (the VIC's forcing).
SURROGATE_FORCING = ("P", "T", "PET")
#: Outputs, in order.
SURROGATE_OUTPUTS = ("SM", "ET")


def lhs_unit(n_sets: int, n_params: int = len(VIC_PARAMETERS), seed: int = 0) -> np.ndarray:
    """Latin-hypercube sample [n_sets, n_params] in [0, 1) (scipy.stats.qmc.LatinHypercube)."""
    from scipy.stats import qmc

    return qmc.LatinHypercube(d=n_params, seed=seed).random(n_sets)


@dataclass
class SurrogateData:
    """VIC runs for Latin-hypercube θ per cell: the surrogate's training and gate data.

    Attributes:
        forcing: [time, cell, 3] physical (P mm/d, T °C, PET mm/d), float32.
        statics: [cell, 4] physical (bulk, clay, sand, ndvi), float32.
        theta: [cell, set, 5] in [0, 1] (unit space of VIC_PARAMETERS).
        sm, et: [time, cell, set] VIC outputs (m³/m³, mm/d), float32.
        time: the days (numpy datetime64).
        sites: cell ids.
        spinup_days: days of the cycled spin-up before ``time[0]`` in the VIC runs.
    """

    forcing: np.ndarray
    statics: np.ndarray
    theta: np.ndarray
    sm: np.ndarray
    et: np.ndarray
    time: np.ndarray
    sites: list[str]
    spinup_days: int = 365


def _site(statics) -> dict:
    """``soil_properties`` of statics [cell, 4] in ``SURROGATE_STATICS`` order."""
    cols = dict(zip(SURROGATE_STATICS, statics.unbind(-1)))
    return soil_properties(bulk=cols["bulk"], clay=cols["clay"], sand=cols["sand"], ndvi=cols["ndvi"])


def simulate_lhs(ds, n_sets: int = 64, seed: int = 0, spinup_days: int = 365,
                 chunk_cells: int = 32) -> SurrogateData:
    """Run the VIC (fused forward) over the whole forcing period of a ``load_smap`` dataset for
    ``n_sets`` Latin-hypercube θ per cell, the states spun up by cycling the first
    ``spinup_days`` days first; ``chunk_cells`` cells at a time (bounds memory).

    Raises:
        ValueError: fewer days than ``spinup_days``.
    """
    forcing = np.stack([ds[v].transpose("time", "site").values for v in SURROGATE_FORCING], -1).astype(np.float32)
    statics = np.stack([ds[v].values for v in SURROGATE_STATICS], -1).astype(np.float32)
    nt, nc = forcing.shape[:2]
    theta = np.stack([lhs_unit(n_sets, seed=seed + i) for i in range(nc)]).astype(np.float32)
    f_all = torch.from_numpy(cycle_spinup(forcing, spinup_days)).double()
    sm = np.empty((nt, nc, n_sets), np.float32)
    et = np.empty((nt, nc, n_sets), np.float32)
    model = VIC(engine="auto")
    for c0 in range(0, nc, chunk_cells):
        cs = slice(c0, min(nc, c0 + chunk_cells))
        k = cs.stop - cs.start
        # cells x sets as one batch of "sites": [time, cell*set, 3]
        f = f_all[:, cs].repeat_interleave(n_sets, dim=1)
        site = {n: v.repeat_interleave(n_sets, dim=0)
                for n, v in _site(torch.from_numpy(statics[cs]).double()).items()}
        u = torch.from_numpy(theta[cs].reshape(k * n_sets, -1)).double()
        params = {p.name: p.scale(u[:, i]).reshape(1, -1, 1) for i, p in enumerate(VIC_PARAMETERS)}
        with torch.no_grad():
            out = model(f, params, site=site).outputs
        sm[:, cs] = out["SM"][spinup_days:].reshape(nt, k, n_sets).float().numpy()
        et[:, cs] = out["ET"][spinup_days:].reshape(nt, k, n_sets).float().numpy()
    return SurrogateData(forcing, statics, theta, sm, et, ds["time"].values,
                         [str(s) for s in ds["site"].values], spinup_days)


class VICSurrogate(nn.Module):
    """Linear + ReLU -> LSTM -> Linear: (normalised forcing, statics, θ) per day -> (SM, ET).

    Args:
        hidden: LSTM size (256 in the paper's surrogate [default]).
        dropout: on the LSTM output.

    Buffers hold the input normalisation (mean/std of forcing and statics) and output scales
    fitted on the training data (``fit_scaling``), so a saved state dict is self-contained.
    """

    def __init__(self, hidden: int = 256, dropout: float = 0.0):
        super().__init__()
        n_in = len(SURROGATE_FORCING) + len(SURROGATE_STATICS) + len(VIC_PARAMETERS)
        self.linear_in = nn.Linear(n_in, hidden)
        self.lstm = nn.LSTM(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.linear_out = nn.Linear(hidden, len(SURROGATE_OUTPUTS))
        self.register_buffer("f_mean", torch.zeros(len(SURROGATE_FORCING)))
        self.register_buffer("f_std", torch.ones(len(SURROGATE_FORCING)))
        self.register_buffer("s_mean", torch.zeros(len(SURROGATE_STATICS)))
        self.register_buffer("s_std", torch.ones(len(SURROGATE_STATICS)))
        self.register_buffer("y_mean", torch.zeros(len(SURROGATE_OUTPUTS)))
        self.register_buffer("y_std", torch.ones(len(SURROGATE_OUTPUTS)))

    def fit_scaling(self, data: SurrogateData, split: "SurrogateSplit | None" = None) -> None:
        """Normalisation statistics (P as log1p) from the training part only: the days before
        ``split.split_day`` and the θ sets ``split.train_sets`` (all of ``data`` without a
        split), so nothing held out for the gate shapes the surrogate."""
        d1 = split.split_day if split is not None else data.sm.shape[0]
        sets = split.train_sets if split is not None else list(range(data.sm.shape[2]))
        f = data.forcing[:d1].astype(np.float64).copy()
        f[..., 0] = np.log1p(f[..., 0])
        self.f_mean.copy_(torch.tensor(f.reshape(-1, f.shape[-1]).mean(0)))
        self.f_std.copy_(torch.tensor(f.reshape(-1, f.shape[-1]).std(0) + 1e-6))
        self.s_mean.copy_(torch.tensor(data.statics.mean(0)))
        self.s_std.copy_(torch.tensor(data.statics.std(0) + 1e-6))
        y = np.stack([data.sm[:d1][:, :, sets].reshape(-1), data.et[:d1][:, :, sets].reshape(-1)], -1)
        self.y_mean.copy_(torch.tensor(y.mean(0)))
        self.y_std.copy_(torch.tensor(y.std(0) + 1e-6))

    def inputs(self, forcing: torch.Tensor, statics: torch.Tensor, theta01: torch.Tensor) -> torch.Tensor:
        """[time, site, 3] physical forcing, [site, 4] physical statics, [site, 5] θ in [0, 1]
        -> [time, site, 12] normalised inputs (θ passes unchanged, so gradients reach it)."""
        f = torch.cat([torch.log1p(forcing[..., :1].clamp(min=0)), forcing[..., 1:]], -1)
        f = (f - self.f_mean) / self.f_std
        s = ((statics - self.s_mean) / self.s_std).unsqueeze(0).expand(f.shape[0], -1, -1)
        th = theta01.unsqueeze(0).expand(f.shape[0], -1, -1)
        return torch.cat([f, s, th], -1)

    def forward(self, forcing: torch.Tensor, statics: torch.Tensor, theta01: torch.Tensor) -> torch.Tensor:
        """-> [time, site, 2]: SM (m³/m³) and ET (mm/d), physical."""
        return self.run(forcing, statics, theta01)[0]

    def run(self, forcing: torch.Tensor, statics: torch.Tensor, theta01: torch.Tensor,
            hc: tuple[torch.Tensor, torch.Tensor] | None = None
            ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Continue from the LSTM state ``hc`` (None: zeros): -> (SM and ET [time, site, 2],
        physical; the final (h, c) [1, site, hidden] each), so a burn-in can run apart, e.g.
        without gradient. ``forcing`` [time, site, 7] physical, ``statics`` [site, k],
        ``theta01`` [site, p] in [0, 1]."""
        h, hc = self.lstm(torch.relu(self.linear_in(self.inputs(forcing, statics, theta01))), hc)
        return self.linear_out(self.dropout(h)) * self.y_std + self.y_mean, hc


@dataclass
class SurrogateSplit:
    """Which θ sets and days train the surrogate and which are held out for the gate.

    Attributes:
        train_sets: θ-set indices used for training; held_sets: the others.
        split_day: first day index of the held-out period (the held-out year).
    """

    train_sets: list[int]
    held_sets: list[int]
    split_day: int


def default_split(data: SurrogateData, held_fraction: float = 0.25, held_days: int = 365) -> SurrogateSplit:
    """The last ``held_fraction`` of the θ sets and the last ``held_days`` days are held out."""
    ns, nt = data.theta.shape[1], data.sm.shape[0]
    k = max(1, int(round(ns * (1 - held_fraction))))
    return SurrogateSplit(list(range(k)), list(range(k, ns)), nt - held_days)


def _surrogate_step(model: VICSurrogate, opt, tensors, split: SurrogateSplit, rng, batch: int, burn: int,
                    rho: int) -> float:
    """One Adam step on ``batch`` random (cell, training θ set, window) triples; returns the loss
    (MSE of standardised SM and ET after the burn-in)."""
    F, S, TH, SM, ET = tensors
    sets = np.asarray(split.train_sets)
    c = rng.integers(0, F.shape[1], batch)
    s = sets[rng.integers(0, len(sets), batch)]
    st = rng.integers(0, split.split_day - burn - rho + 1, batch)
    idx = st[None, :] + np.arange(burn + rho)[:, None]
    y = model(F[idx, c[None, :]], S[c], TH[c, s])
    target = torch.stack([SM[idx, c[None, :], s[None, :]], ET[idx, c[None, :], s[None, :]]], -1)
    loss = (((y - target) / model.y_std)[burn:] ** 2).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def _tensors(data: SurrogateData):
    return tuple(torch.from_numpy(a) for a in (data.forcing, data.statics, data.theta, data.sm, data.et))


def train_surrogate(data: SurrogateData, split: SurrogateSplit, hidden: int = 256, iters: int = 3000,
                    batch: int = 256, burn: int = 120, rho: int = 365, lr: float = 2e-3, seed: int = 0,
                    log=None, model: VICSurrogate | None = None) -> VICSurrogate:
    """Train ``VICSurrogate`` on windows of (cell, training θ set) before ``split.split_day``:
    MSE of the standardised SM and ET after a ``burn``-day burn-in, Adam.

    Args:
        log: called as ``log(iteration, loss)`` every 50 iterations (None: silent).
        model: continue training this model instead of a new one.

    Raises:
        ValueError: the training days are fewer than ``burn + rho``.
    """
    if split.split_day < burn + rho:
        raise ValueError(f"{split.split_day} training days, fewer than burn-in + window = {burn + rho}")
    rng = np.random.default_rng(seed)
    if model is None:
        torch.manual_seed(seed)
        model = VICSurrogate(hidden=hidden)
        model.fit_scaling(data, split)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    tensors = _tensors(data)
    model.train()
    for it in range(iters):
        loss = _surrogate_step(model, opt, tensors, split, rng, batch, burn, rho)
        if log is not None and (it + 1) % 50 == 0:
            log(it + 1, loss)
    model.eval()
    return model


def surrogate_gate(model: VICSurrogate, data: SurrogateData, split: SurrogateSplit, n_grad: int = 32,
                   seed: int = 0, max_series: int | None = None) -> dict:
    """The doc's gate on held-out θ sets and the held-out period.

    Returns:
        {"median_nse", "median_rmse" (m³/m³), "median_cosine", "passed", "n_series", "n_grad"}:
        NSE and RMSE of the surrogate's SM against the VIC's over the held-out days of every
        (cell, held-out set); the cosine between the gradients of the held-out period's mean SM
        w.r.t. θ (unit space) through the surrogate and through the VIC (autograd, float64) for
        ``n_grad`` random (cell, held-out set) pairs. Passed: NSE ≥ 0.95, RMSE ≤ 0.01, cos ≥ 0.9.
        ``max_series``: score only this many random (cell, held-out set) pairs (None: all),
        for a cheap check during training.
    """
    import copy

    model = copy.deepcopy(model).float().eval()  # the caller's model is left as it is
    F, S, TH = (torch.from_numpy(a) for a in (data.forcing, data.statics, data.theta))
    nc = F.shape[1]
    d0 = split.split_day
    spinup_days = data.spinup_days
    pairs = np.array([(c, s) for s in split.held_sets for c in range(nc)])
    if max_series is not None and max_series < len(pairs):
        pairs = pairs[np.sort(np.random.default_rng(seed + 1).choice(len(pairs), max_series, replace=False))]
    sims, refs = [], []
    with torch.no_grad():
        for k0 in range(0, len(pairs), 256):
            c, s = pairs[k0:k0 + 256].T
            sims.append(model(F[:, c], S[c], TH[c, s])[d0:, :, 0].numpy())
            refs.append(data.sm[d0:, c, s])
    sim, ref = np.concatenate(sims, 1), np.concatenate(refs, 1)
    nses = nse(sim, ref)
    nses = np.where(np.isfinite(nses), nses, np.nan)  # a constant VIC series has no NSE
    rmses = rmse(sim, ref)
    # gradients: surrogate vs VIC, mean SM of the held-out period w.r.t. θ in unit space
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, nc, n_grad)
    held = np.asarray(split.held_sets)[rng.integers(0, len(split.held_sets), n_grad)]
    th = TH[cells, held].clone().double().requires_grad_(True)
    y = model.double()(F[:, cells].double(), S[cells].double(), th)[d0:, :, 0].mean(0).sum()
    (g_sur,) = torch.autograd.grad(y, th)
    f = cycle_spinup(F[:, cells].double(), spinup_days)
    site = _site(S[cells].double())
    th2 = TH[cells, held].clone().double().requires_grad_(True)
    params = {sp.name: sp.scale(th2[:, i]).reshape(1, -1, 1) for i, sp in enumerate(VIC_PARAMETERS)}
    out = VIC(engine="reference")(f, params, site=site).outputs["SM"][spinup_days + d0:].mean(0).sum()
    (g_vic,) = torch.autograd.grad(out, th2)
    cos = torch.nn.functional.cosine_similarity(g_sur, g_vic, dim=1).numpy()
    res = {"median_nse": float(np.nanmedian(nses)), "median_rmse": float(np.median(rmses)),
           "median_cosine": float(np.median(cos)), "n_series": int(sim.shape[1]), "n_grad": int(n_grad)}
    res["passed"] = bool(res["median_nse"] >= 0.95 and res["median_rmse"] <= 0.01 and res["median_cosine"] >= 0.9)
    return res


def load_surrogate(path: str | Path) -> tuple[VICSurrogate, dict]:
    """The frozen surrogate of a job directory (or its ``surrogate.pt``) and its gate.

    Raises:
        FileNotFoundError: no ``surrogate.pt`` (the job has not finished).
        CheckpointError: the file is damaged or does not fit.
    """
    path = Path(path)
    f = path / "surrogate.pt" if path.is_dir() else path
    if not f.exists():
        raise FileNotFoundError(f"{f} does not exist: the surrogate job has not finished "
                                "(`hydrolens surrogate --out DIR` trains it)")
    state = load_checkpoint(f, require=("model", "hidden"))
    model = VICSurrogate(hidden=int(state["hidden"]))
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(f"{f}: does not fit the surrogate ({' '.join(str(e).split())[:200]})") from None
    gate_path = f.parent / "gate.json"
    gate = json.loads(gate_path.read_text()) if gate_path.exists() else {}
    return model.eval(), gate
