"""Lightning callbacks of lit_mrrml: GPRC warm-up, geometry monitoring, prediction writing."""

from callbacks.geometry import GeometryMonitor
from callbacks.prediction_writer import RewardPredictionWriter
from callbacks.warmup import GPRCWarmup

__all__ = ["GPRCWarmup", "GeometryMonitor", "RewardPredictionWriter"]
