"""Parameter learners and plain networks."""

from .learners import LEARNERS, LearnerOutput, make_learner
from .lstm import LSTMNet, with_static

__all__ = ["LEARNERS", "LSTMNet", "LearnerOutput", "make_learner", "with_static"]
