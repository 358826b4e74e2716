"""Training: configuration, losses, data preparation and the trainer."""

from .config import PRESETS, ConfigError, DataConfig, ModelConfig, OptimConfig, RunConfig, preset_config
from ..losses import masked_rmse, range_boundary_loss, rmse_comb_loss
from .trainer import Trainer, build_model, load_model, select_device

__all__ = [
    "PRESETS", "ConfigError", "DataConfig", "ModelConfig", "OptimConfig", "RunConfig", "Trainer",
    "build_model", "load_model", "masked_rmse", "preset_config", "range_boundary_loss", "rmse_comb_loss",
    "select_device",
]
