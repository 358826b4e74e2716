"""Parameter learners and plain networks."""

from .lstm import LSTMNet, with_static

__all__ = ["LSTMNet", "with_static"]
