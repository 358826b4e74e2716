"""The model factory: a variant name -> its family's builder (no ``isinstance`` downstream).

Every built model follows one contract, used alike by training, evaluation and prediction:
``model(x_dyn, x_static, forcing, warmup, state=None)`` -> an output with ``outputs`` (name ->
[time, site]), ``params`` and ``final_state``; ``model.target_output`` names the output compared
with the training target; ``model.prepare(target)`` does any data-dependent set-up before
training (the LSTM's target scaling).
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from ..physics.vic import VIC
from .calibrated import CalibratedModel
from .delta import DeltaModel
from .lstm_baseline import StreamflowLSTM
from .param_model import ParamModel
from .registry import Variant, get_variant


def _delta(v: Variant, m, n_dynamic: int, n_static: int) -> nn.Module:
    return DeltaModel(n_dynamic=n_dynamic, n_static=n_static, nmul=m.nmul or v.nmul, dynamic=v.dynamic,
                      use_gamma=v.use_gamma, hidden=m.hidden, dropout=m.dropout, engine=m.engine,
                      nn_recharge=v.nn_recharge, forget_bias=m.forget_bias, conventions=m.conventions,
                      warmup_grad=m.warmup_grad)


def _lstm(v: Variant, m, n_dynamic: int, n_static: int) -> nn.Module:
    return StreamflowLSTM(n_dynamic, n_static, hidden=m.hidden, dropout=m.dropout, forget_bias=m.forget_bias)


def _backbone(v: Variant, m) -> nn.Module:
    if v.backbone != "vic":
        raise ValueError(f"variant {v.name!r}: no parameter-learning backbone {v.backbone!r}")
    return VIC(nmul=m.nmul or v.nmul, engine=m.engine, resid_moist=m.resid_moist)


def _param(v: Variant, m, n_dynamic: int, n_static: int) -> nn.Module:
    # LSTM_Z reads the config's hidden/dropout; the other learners keep the paper's sizes
    hyper = {"hidden": m.hidden, "dropout": m.dropout} if v.learner == "LSTM_Z" else {}
    return ParamModel(v.learner, _backbone(v, m), n_dynamic, n_static, z_window=m.z_window,
                      surrogate=m.surrogate if m.coupling == "surrogate" else None,
                      param_bound=m.param_bound, **hyper)


def _calibration(v: Variant, m, n_dynamic: int, n_static: int) -> nn.Module:
    return CalibratedModel(_backbone(v, m), method=v.calibration)


#: family name -> builder(variant, model config, n_dynamic, n_static)
FAMILIES: dict[str, Callable[..., nn.Module]] = {"delta": _delta, "lstm": _lstm, "param": _param,
                                                 "calibration": _calibration}


def build_model(model_cfg, n_dynamic: int, n_static: int) -> nn.Module:
    """The model of ``model_cfg`` (a ``ModelConfig``: variant, nmul, hidden, dropout, engine),
    sized from the data (``n_dynamic`` learner inputs per day, ``n_static`` attributes).

    Raises:
        ValueError: unknown variant, or a variant whose family has no builder.
    """
    v = get_variant(model_cfg.variant)
    try:
        builder = FAMILIES[v.family]
    except KeyError:
        raise ValueError(f"variant {v.name!r}: no model builder for family {v.family!r}; "
                         f"known families: {', '.join(FAMILIES)}") from None
    return builder(v, model_cfg, n_dynamic, n_static)
