"""δ models: an LSTM parameter learner g_A composed with the differentiable HBV and routing.

Feng et al. (2022, WRR e2022WR032404): g_A reads normalised forcings (P, T, PET) and the 35
static CAMELS attributes and outputs, per basin, ``nmul`` sets of HBV parameters plus two routing
parameters. Static parameters are the learner's output on the last day of the input window;
parameters listed as dynamic (BETA and/or GAMMA) take the learner's output of each day. The HBV
is first run without gradient over the warm-up days with the static parameters (a dynamic
parameter uses its last day's value there), and its final state starts the target window; the
routing takes the last 14 warm-up days as history. ``conventions="feng2022"`` switches to the
release's hand-over instead (:data:`CONVENTIONS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from .._runtime import learner_autocast
from ..nets import LSTMNet, with_static
from ..physics import HBV, ROUTING_PARAMETERS, UH_LENGTH, RechargeNet, gamma_unit_hydrograph, route


#: How the warm-up hands over to the target window (docs/models.md, "Conventions"):
#: ``warmup_parameters`` "last_day" (the window's static parameters, and the last day's value of
#: a dynamic one) or "warmup_end" (the learner's output on day warmup − 1, as Feng et al.'s
#: release, rnn.py ``parameters[bufftime-1]``, and hydrodl2); ``route_history``: route the
#: window with the last 14 warm-up days of unrouted Q as history (else from zero);
#: ``sm_floor``: SM floor after ET in mm (hydrodl2's ``nearzero``).
CONVENTIONS: dict[str, dict] = {
    "hydrolens": {"warmup_parameters": "last_day", "route_history": True, "sm_floor": 0.0},
    "feng2022": {"warmup_parameters": "warmup_end", "route_history": False, "sm_floor": 1e-5},
}


@dataclass
class DeltaOutput:
    """Outputs of a δ model over the target window.

    Attributes:
        outputs: name -> [time, site]: every HBV state/flux plus ``Q_sim`` (routed, mm/d).
        params: name -> physical parameters; HBV ones [1, basin, nmul] (static) or
            [time - warmup, basin, nmul] (dynamic, the target window), routing [site].
        final_state: name -> [site, nmul], to continue the run.
    """

    outputs: dict[str, torch.Tensor]
    params: dict[str, torch.Tensor]
    final_state: dict[str, torch.Tensor]


class DeltaModel(nn.Module):
    """g_A (LSTM) → HBV parameters → HBV (n components) → gamma-UH routing.

    Args:
        n_dynamic: number of dynamic learner inputs (normalised forcings).
        n_static: number of static attributes.
        nmul: HBV components n.
        dynamic: names of parameters predicted per day (subset of {"BETA", "GAMMA"}).
        use_gamma: include the ET-shape exponent γ.
        hidden, dropout: learner size.
        engine: HBV implementation ("auto", "fused", "reference"; see core.physics.HBV).
        nn_recharge: δn(NN_r): the recharge equation is replaced by ``RechargeNet`` (trained
            with the learner; runs the reference HBV loop).
        forget_bias: initial forget-gate bias of g_A (``LSTMNet``; None: PyTorch's init).
        conventions: ``"hydrolens"`` or ``"feng2022"`` (Feng et al.'s dPLHBVrelease and hydrodl2
            1.4.0): how the warm-up hands over to the window, see :data:`CONVENTIONS`.
        warmup_grad: back-propagate through the warm-up too (the states it hands over depend on
            the parameters); False (the default): the HBV warm-up runs under no_grad (as
            hydrodl2) and g_A runs the warm-up days without a graph, carrying its (h, c) into
            the window (truncated back-propagation through time; the same outputs).
    """

    def __init__(self, n_dynamic: int, n_static: int, nmul: int = 16,
                 dynamic: tuple[str, ...] = (), use_gamma: bool = False,
                 hidden: int = 256, dropout: float = 0.5, engine: str = "auto",
                 nn_recharge: bool = False, forget_bias: float | None = None,
                 conventions: str = "hydrolens", warmup_grad: bool = False):
        super().__init__()
        self.warmup_grad = bool(warmup_grad)
        if conventions not in CONVENTIONS:
            raise ValueError(f"conventions must be one of {tuple(CONVENTIONS)}, got {conventions!r}")
        self.conventions = conventions
        self.backbone = HBV(nmul=nmul, use_gamma=use_gamma or "GAMMA" in dynamic, engine=engine,
                            recharge_net=RechargeNet() if nn_recharge else None,
                            sm_floor=CONVENTIONS[conventions]["sm_floor"])
        specs = self.backbone.parameter_specs
        bad = [d for d in dynamic if d not in {s.name for s in specs if s.dynamic_capable}]
        if bad:
            raise ValueError(f"parameters {bad} cannot be dynamic; allowed: "
                             f"{[s.name for s in specs if s.dynamic_capable]}")
        self.nmul = nmul
        self.dynamic = tuple(dynamic)
        self.n_hbv = len(specs)
        #: the learner's arithmetic, set by the trainer from ``train.precision``: "bf16" runs g_A
        #: under bf16 autocast (the HBV, routing and loss stay fp32)
        self.precision = "fp32"
        self.learner = LSTMNet(n_dynamic + n_static, self.n_hbv * nmul + len(ROUTING_PARAMETERS),
                               hidden=hidden, dropout=dropout, forget_bias=forget_bias)

    #: the output compared with the training target (routed streamflow, mm/d)
    target_output = "Q_sim"
    #: physical per-site inputs the model reads (``site_static``): none for the HBV
    site_inputs: tuple[str, ...] = ()

    def prepare(self, target) -> None:
        """Data-dependent set-up before training (the model contract): none for δ models."""

    def learner_inputs(self, x_dyn: torch.Tensor, x_static: torch.Tensor) -> torch.Tensor:
        """[time, site, n_dynamic] ⊕ [site, n_static] → [time, site, n_dynamic + n_static]."""
        return with_static(x_dyn, x_static)

    def parameters_from(self, x_dyn: torch.Tensor, x_static: torch.Tensor,
                        dynamic_from: int = 0) -> dict[str, torch.Tensor]:
        """Physical parameters from the learner.

        Static parameters (and routing) come from the learner's output on the last day; dynamic
        ones from its output on days ``dynamic_from..time-1``. Only the output units that are
        used are computed: the output layer runs on one day for the static units and on the
        window for the dynamic units, so no [time, site, 13·nmul+2] tensor is built or
        back-propagated.

        Args:
            x_dyn: [time, site, n_dynamic]; x_static: [site, n_static].
            dynamic_from: first day whose dynamic parameters are needed (the warm-up uses the
                static value of a dynamic parameter, Feng et al. 2022).

        Returns:
            name -> tensor; HBV parameters: static [1, basin, nmul], dynamic
            [time - dynamic_from, basin, nmul]; routing (route_a, route_b): [site].
        """
        h = self._hidden(x_dyn, x_static)
        return self._params_from_hidden(h, h[-1], dynamic_from)

    def _hidden(self, x_dyn: torch.Tensor, x_static: torch.Tensor, no_grad_days: int = 0) -> torch.Tensor:
        """g_A's hidden states [time, site, H] (under bf16 autocast when ``precision`` is bf16);
        the first ``no_grad_days`` days without a graph (``LSTMNet.features``)."""
        with learner_autocast(self.precision, x_dyn.device.type):
            return self.learner.features(self.learner_inputs(x_dyn, x_static), no_grad_days)

    def _head(self, h: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """g_A's output layer on ``h``, back in fp32 from bf16 (fp64 inputs stay fp64)."""
        with learner_autocast(self.precision, h.device.type):
            out = self.learner.head(h, rows)
        return out.float() if out.dtype == torch.bfloat16 else out

    def _params_from_hidden(self, h: torch.Tensor, h_static: torch.Tensor, dynamic_from: int) -> dict[str, torch.Tensor]:
        """``parameters_from`` on the learner's hidden states ``h`` [time, site, H], the static
        parameters (and routing) from ``h_static`` [site, H]."""
        nb, nm, nh = h.shape[1], self.nmul, self.n_hbv
        last = torch.sigmoid(self._head(h_static))                         # [site, ny]
        hbv_last = last[:, : nh * nm].reshape(nb, nh, nm).unsqueeze(0)     # [1, basin, n_hbv, nmul]
        specs = self.backbone.parameter_specs
        dyn_idx = [i for i, s in enumerate(specs) if s.name in self.dynamic]
        dyn = {}
        if dyn_idx:
            rows = torch.tensor([i * nm + k for i in dyn_idx for k in range(nm)], device=h.device)
            raw = torch.sigmoid(self._head(h[dynamic_from:], rows))
            dyn = dict(zip(dyn_idx, raw.reshape(raw.shape[0], nb, len(dyn_idx), nm).unbind(2)))
        out = {}
        for i, (s, r) in enumerate(zip(specs, hbv_last.unbind(2))):
            out[s.name] = s.scale(dyn.get(i, r))
        for j, s in enumerate(ROUTING_PARAMETERS):
            out[s.name] = s.scale(last[:, nh * nm + j])
        return out

    def forward(self, x_dyn: torch.Tensor, x_static: torch.Tensor, forcing: torch.Tensor,
                warmup: int, state: Mapping[str, torch.Tensor] | None = None,
                site_static: torch.Tensor | None = None) -> DeltaOutput:
        """Simulate the window after ``warmup`` days.

        Args:
            x_dyn: normalised dynamic inputs [time, site, n_dynamic].
            x_static: normalised attributes [site, n_static].
            forcing: physical forcing [time, site, 3] (P mm/d, T °C, PET mm/d).
            warmup: leading days used only to spin up states (no gradient), 0 ≤ warmup < time.
            state: initial HBV state (name -> [site, nmul]); default the backbone's.
            site_static: physical per-site inputs (the model contract); the HBV has none
                (``site_inputs`` is empty), so it is not used.

        Returns:
            DeltaOutput over days ``warmup..time-1``.
        """
        nt = forcing.shape[0]
        if not 0 <= warmup < nt:
            raise ValueError(f"warmup must be in [0, {nt}), got {warmup}")
        conv = CONVENTIONS[self.conventions]
        # no gradient through the warm-up year, for the learner's recurrence too: without
        # warmup_grad nothing of days 0..warmup-1 reaches the loss except through h's recurrence,
        # so g_A runs them without a graph and back-propagates over the window only
        h = self._hidden(x_dyn, x_static, no_grad_days=0 if self.warmup_grad else warmup)
        params = self._params_from_hidden(h, h[-1], dynamic_from=warmup)
        hbv_names = self.backbone.parameter_names
        q_before = None
        if warmup > 0:
            grad = self.warmup_grad and torch.is_grad_enabled()
            with torch.set_grad_enabled(grad):
                if conv["warmup_parameters"] == "last_day":
                    static = {n: params[n][-1:] for n in hbv_names}
                else:  # the learner's output on the last warm-up day, every parameter static
                    wp = self._params_from_hidden(h[warmup - 1:warmup], h[warmup - 1], dynamic_from=0)
                    static = {n: wp[n][-1:] for n in hbv_names}
                if not grad:
                    static = {n: v.detach() for n, v in static.items()}
                warm = self.backbone(forcing[:warmup], static, state)
            state = warm.final_state
            tail = warm.outputs["Q_unrouted"][-(UH_LENGTH - 1):]
            if conv["route_history"] and tail.shape[0] == UH_LENGTH - 1:
                q_before = tail
        window = {n: params[n] for n in hbv_names}
        res = self.backbone(forcing[warmup:], window, state)
        uh = gamma_unit_hydrograph(params["route_a"], params["route_b"])
        outputs = dict(res.outputs)
        outputs["Q_sim"] = route(outputs["Q_unrouted"], uh, q_before)
        return DeltaOutput(outputs=outputs, params=params, final_state=res.final_state)
