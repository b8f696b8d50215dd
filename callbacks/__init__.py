"""Lightning callbacks of lit_mrrml: GPRC warm-up, geometry monitoring, prediction writing, policy
rollout samples, export at the end of fit, and a checkpoint whose last.ckpt is the latest state."""

from callbacks.checkpoint import ResumableCheckpoint
from callbacks.export import ExportOnFitEnd
from callbacks.geometry import GeometryMonitor
from callbacks.prediction_writer import RewardPredictionWriter
from callbacks.rollout_samples import RolloutSamples
from callbacks.warmup import GPRCWarmup

__all__ = [
    "ExportOnFitEnd",
    "GPRCWarmup",
    "GeometryMonitor",
    "ResumableCheckpoint",
    "RewardPredictionWriter",
    "RolloutSamples",
]
