"""Aggregation of per-dimension rewards into one scalar (lit_mrrml/aggregate.py), by hand.

Group advantages are tested with their new home, tests/losses/test_grpo.py.
"""

from __future__ import annotations

import torch
from torch.testing import assert_close

from lit_mrrml.aggregate import row_weights, weighted_total


def test_weighted_total_with_shared_weights() -> None:
    rewards = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    weights = torch.tensor([0.5, 0.25, 0.25])
    # 0.5 + 0.5 + 0.75 = 1.75; 2 + 1.25 + 1.5 = 4.75
    assert_close(weighted_total(rewards, weights), torch.tensor([1.75, 4.75]))


def test_weighted_total_with_per_row_weights() -> None:
    rewards = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    weights = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    assert_close(weighted_total(rewards, weights), torch.tensor([1.0, 12.0]))


def test_row_weights_take_each_rows_scenario_and_uniform_for_none() -> None:
    table = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.2, 0.6]])  # (S, L)
    weights = row_weights(table, torch.tensor([1, -1, 0]), 3)
    torch.testing.assert_close(weights, torch.tensor([[0.2, 0.2, 0.6], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0]]))
    assert row_weights(None, torch.tensor([0, 1]), 2).tolist() == [[0.5, 0.5], [0.5, 0.5]]
