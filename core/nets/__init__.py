"""Parameter learners and plain networks."""

from .lstm import LSTMNet

__all__ = ["LSTMNet"]
