"""Model compositions (δ models, the LSTM baseline) and the variant registry."""

from .delta import DeltaModel, DeltaOutput
from .lstm_baseline import StreamflowLSTM
from .param_model import ParamModel, ParamOutput
from .registry import VARIANTS, Variant, get_variant

__all__ = ["VARIANTS", "DeltaModel", "DeltaOutput", "ParamModel", "ParamOutput", "StreamflowLSTM", "Variant",
           "get_variant"]
