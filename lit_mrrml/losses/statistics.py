"""Per-unit ranking and geometry statistics (design/gprc.md, "Metrics the loss returns").

Each statistic is a (B,) tensor of counts or values per unit, so that a caller can pool them
over a batch, a dimension or a whole epoch (torchmetrics) without bias from unit sizes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from lit_mrrml.losses.functional import (
    cosine_to_axis,
    intermediate_mask,
    last_response,
    pair_mask,
    reference_projection,
    response_mask,
    unit_axes,
)


class UnitStatistics(NamedTuple):
    """Counts and values per unit, all (B,), detached."""

    pairs_correct: Tensor  # ordered pairs j < k with r_j > r_k
    pairs_total: Tensor  # ordered pairs j < k
    ordered: Tensor  # 1 when K >= 3 and r_1 > r_2 > ... > r_K
    orderable: Tensor  # 1 when K >= 3
    between: Tensor  # intermediate answers with 0 < lambda_j < 1
    intermediates: Tensor  # intermediate answers (K - 2)
    axis_cos: Tensor  # cos(z_1 - z_K, e_i)
    perp_ratio: Tensor  # sum over intermediates of ||perpendicular residual|| / ||d||
    margin: Tensor  # r_1 - r_K


@torch.no_grad()
def unit_statistics(
    z: Tensor, rewards: Tensor, axes: Tensor, num_responses: Tensor, eps: float = 1e-8
) -> UnitStatistics:
    """Statistics for z (B, K, d), rewards (B, K) on each unit's dimension, axes (B, d)."""
    k = rewards.shape[1]
    valid = response_mask(num_responses, k)
    pairs = pair_mask(num_responses, k)  # (B, K, K)
    correct = (rewards[:, :, None] > rewards[:, None, :]) & pairs
    steps = (rewards[:, :-1] > rewards[:, 1:]) | ~(valid[:, 1:])  # (B, K-1): each real step descends
    orderable = num_responses >= 3
    inter = intermediate_mask(num_responses, k)
    lam, perp_sq, _ = reference_projection(z, num_responses, eps)
    d = z[:, 0] - last_response(z, num_responses)
    return UnitStatistics(
        pairs_correct=correct.sum((1, 2)).to(rewards.dtype),
        pairs_total=pairs.sum((1, 2)).to(rewards.dtype),
        ordered=(steps.all(dim=1) & orderable).to(rewards.dtype),
        orderable=orderable.to(rewards.dtype),
        between=((lam > 0) & (lam < 1) & inter).sum(1).to(rewards.dtype),
        intermediates=inter.sum(1).to(rewards.dtype),
        axis_cos=cosine_to_axis(d, unit_axes(axes, eps), eps),
        perp_ratio=(perp_sq.clamp_min(0).sqrt() * inter).sum(1),
        margin=rewards[:, 0] - last_response(rewards, num_responses),
    )


def pooled_rates(stats: UnitStatistics, select: Tensor | None = None, units: Tensor | None = None) -> dict[str, Tensor]:
    """Pool statistics into shares and means over the selected rows (all by default).

    Rows are units, or sums over units (then ``units`` counts the units summed in each row).
    """
    if select is None:
        select = torch.ones_like(stats.pairs_total, dtype=torch.bool)
    s = select.to(stats.pairs_total.dtype)

    def ratio(num: Tensor, den: Tensor) -> Tensor:  # NaN where nothing is counted: undefined, not 0
        total = (den * s).sum()
        return torch.where(total > 0, (num * s).sum() / total.clamp_min(1e-12), torch.nan)

    units = torch.ones_like(s) if units is None else units.to(s.dtype)
    return {
        "pair_acc": ratio(stats.pairs_correct, stats.pairs_total),
        "order_acc": ratio(stats.ordered, stats.orderable),
        "betweenness": ratio(stats.between, stats.intermediates),
        "axis_cos": ratio(stats.axis_cos, units),
        "perp_ratio": ratio(stats.perp_ratio, stats.intermediates),
        "margin": ratio(stats.margin, units),
    }
