"""Aggregate per-dimension rewards into one scalar (design/gprc.md, "Aggregation").

Group advantages for the policy stage live in ``lit_mrrml.losses.grpo.group_advantages``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def weighted_total(rewards: Tensor, weights: Tensor) -> Tensor:
    """R = sum_i w_i r_i. rewards (N, L); weights (N, L) or (L,), e.g. the scenario's row of the matrix."""
    return (rewards * weights).sum(-1)


def row_weights(table: Tensor | None, scenario: Tensor, num_dimensions: int) -> Tensor:
    """(N, L) each row's weights: row ``scenario[i]`` of the matrix's (S, L) ``table``, and uniform
    1/L where the row has no scenario (index -1) or there is no table."""
    dtype = table.dtype if table is not None else torch.float32
    uniform = torch.full((scenario.shape[0], num_dimensions), 1.0 / num_dimensions, dtype=dtype, device=scenario.device)
    if table is None:
        return uniform
    rows = table.to(scenario.device)[scenario.clamp(min=0)]  # (N, L)
    return torch.where((scenario >= 0)[:, None], rows, uniform)
