"""Evaluation: metrics (NSE, KGE, RMSE, PCC) and test-period simulation of runs."""

from .evaluate import basin_metrics, evaluate_run, simulate
from .metrics import METRICS, kge, nse, pcc, rmse

__all__ = ["METRICS", "basin_metrics", "evaluate_run", "kge", "nse", "pcc", "rmse", "simulate"]
