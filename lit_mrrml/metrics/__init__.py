"""torchmetrics metrics."""

from lit_mrrml.metrics.ranking import RankingMetrics

__all__ = ["RankingMetrics"]
