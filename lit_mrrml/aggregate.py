"""Aggregate per-dimension rewards into one scalar (design/gprc.md, "Aggregation")."""

from __future__ import annotations

from torch import Tensor


def weighted_total(rewards: Tensor, weights: Tensor) -> Tensor:
    """R = sum_i w_i r_i. rewards (N, L); weights (N, L) or (L,), e.g. the scenario's row of the matrix."""
    return (rewards * weights).sum(-1)


def group_normalized_advantage(rewards: Tensor, weights: Tensor, eps: float = 1e-6) -> Tensor:
    """GDPO advantage for one group of G rollouts of a prompt: rewards (G, L), weights (L,) -> (G,).

    Each dimension is standardised within the group, the standardised rewards are summed with the
    scenario's weights, and that sum is standardised again.
    """
    per_dim = (rewards - rewards.mean(0)) / (rewards.std(0, unbiased=False) + eps)  # (G, L)
    total = weighted_total(per_dim, weights)  # (G,)
    return (total - total.mean()) / (total.std(unbiased=False) + eps)
