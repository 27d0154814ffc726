"""The loop's callbacks, each owning its own state: schedule, guards, MixUp, evaluation, checkpoints, blend,
status and logs. core.train.trainer registers them; the learning-rate range test (core.train.lr_finder) reuses the loop
with its own."""
from .checkpoint import BestWeights, Checkpointer, Resume
from .evaluation import EvalFiles, ExplainMistakes, TestEvaluation, Validation
from .guards import Budget, DivergenceGuard, EarlyStopping, OomRecovery, Unfreeze
from .mix import MixUp
from .schedule import Schedule
from .status import StatusHeartbeat

__all__ = ["BestWeights", "Checkpointer", "Resume", "EvalFiles", "ExplainMistakes", "TestEvaluation", "Validation", "DivergenceGuard",
           "EarlyStopping", "Budget", "OomRecovery", "Unfreeze", "MixUp", "Schedule", "StatusHeartbeat"]
