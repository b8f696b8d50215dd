"""Epoch-level ranking and geometry metrics per dimension, synced across processes by torchmetrics."""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor
from torchmetrics import Metric

from lit_mrrml.losses.statistics import UnitStatistics, pooled_rates

STATS = UnitStatistics._fields


class RankingMetrics(Metric):
    """Accumulates per-unit statistics by dimension; ``compute`` pools them.

    Returns ``{metric: overall}`` and ``{metric/<dimension>: value}`` for pair_acc, order_acc,
    betweenness, axis_cos, perp_ratio and margin; a metric with nothing counted (order accuracy
    with no K >= 3 unit, say) is left out rather than reported as 0.
    """

    full_state_update = False

    def __init__(self, dimension_names: list[str]) -> None:
        super().__init__()
        self.dimension_names = list(dimension_names)
        size = len(self.dimension_names)
        for name in (*STATS, "units"):
            self.add_state(name, default=torch.zeros(size, dtype=torch.float64), dist_reduce_fx="sum")

    def _state(self, name: str) -> Tensor:
        return cast(Tensor, getattr(self, name))

    def update(self, stats: UnitStatistics, dimension: Tensor) -> None:
        """stats: per-unit statistics (B,) each; dimension: (B,) long."""
        for name, value in zip(STATS, stats, strict=True):
            state = self._state(name)
            state.index_add_(0, dimension, value.to(state.dtype))
        units = self._state("units")
        units.index_add_(0, dimension, torch.ones_like(dimension, dtype=units.dtype))

    def compute(self) -> dict[str, Tensor]:
        per_dim = UnitStatistics(*(self._state(name) for name in STATS))
        units = self._state("units")
        present = units > 0  # (L,)
        out = {name: v for name, v in pooled_rates(per_dim, present, units=units).items() if not v.isnan()}
        for index, name in enumerate(self.dimension_names):
            if not present[index]:
                continue
            select = torch.zeros_like(present)
            select[index] = True
            for metric, value in pooled_rates(per_dim, select, units=units).items():
                if not value.isnan():
                    out[f"{metric}/{name}"] = value
        return {k: v.float() for k, v in out.items()}
