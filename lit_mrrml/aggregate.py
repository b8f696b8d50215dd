"""Aggregate per-dimension rewards into one scalar (design/gprc.md, "Aggregation").

Group advantages for the policy stage live in ``lit_mrrml.losses.grpo.group_advantages``.
"""

from __future__ import annotations

from torch import Tensor


def weighted_total(rewards: Tensor, weights: Tensor) -> Tensor:
    """R = sum_i w_i r_i. rewards (N, L); weights (N, L) or (L,), e.g. the scenario's row of the matrix."""
    return (rewards * weights).sum(-1)
