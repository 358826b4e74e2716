"""Evaluation: metrics (NSE, KGE, RMSE, PCC), test-period simulation of runs, prediction."""

from .evaluate import basin_metrics, evaluate_model, evaluate_run, simulate
from ..metrics import METRICS, kge, nse, pcc, rmse
from .predict import Prediction, predict_run

__all__ = ["METRICS", "Prediction", "basin_metrics", "evaluate_model", "evaluate_run", "kge", "nse",
           "pcc", "predict_run", "rmse", "simulate"]
