"""Aggregation of per-dimension rewards into one scalar (lit_mrrml/aggregate.py), by hand."""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from lit_mrrml.aggregate import group_normalized_advantage, weighted_total


def test_weighted_total_with_shared_weights() -> None:
    rewards = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    weights = torch.tensor([0.5, 0.25, 0.25])
    # 0.5 + 0.5 + 0.75 = 1.75; 2 + 1.25 + 1.5 = 4.75
    assert_close(weighted_total(rewards, weights), torch.tensor([1.75, 4.75]))


def test_weighted_total_with_per_row_weights() -> None:
    rewards = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    weights = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    assert_close(weighted_total(rewards, weights), torch.tensor([1.0, 12.0]))


def test_group_advantage_two_rollouts_by_hand() -> None:
    # dimension 0: [1, 3] -> mean 2, std 1 -> [-1, 1]; dimension 1: [10, 30] -> [-1, 1]
    # weighted sum [-1, 1] -> standardised [-1, 1]
    rewards = torch.tensor([[1.0, 10.0], [3.0, 30.0]])
    advantage = group_normalized_advantage(rewards, torch.tensor([0.5, 0.5]), eps=0.0)
    assert_close(advantage, torch.tensor([-1.0, 1.0]))


def test_group_advantage_three_rollouts_by_hand() -> None:
    # dimension 0: [0, 1, 2], mean 1, std sqrt(2/3) -> [-sqrt(3/2), 0, sqrt(3/2)]
    # dimension 1: [2, 2, 5], mean 3, std sqrt(2)   -> [-1/sqrt2, -1/sqrt2, sqrt2]
    # weights [1, 2]: total t = [-sqrt(3/2) - sqrt2, -sqrt2, sqrt(3/2) + 2 sqrt2], then standardised
    rewards = torch.tensor([[0.0, 2.0], [1.0, 2.0], [2.0, 5.0]], dtype=torch.float64)
    a, s = math.sqrt(1.5), math.sqrt(2.0)
    total = torch.tensor([-a - s, -s, a + 2 * s], dtype=torch.float64)
    expected = (total - total.mean()) / total.std(unbiased=False)
    assert_close(expected, torch.tensor([-0.90707274, -0.48609882, 1.39317156], dtype=torch.float64))
    advantage = group_normalized_advantage(rewards, torch.tensor([1.0, 2.0], dtype=torch.float64), eps=0.0)
    assert_close(advantage, expected)


def test_group_advantage_is_standardised() -> None:
    g = torch.Generator().manual_seed(0)
    rewards = torch.randn(16, 4, generator=g) * torch.tensor([1.0, 10.0, 0.1, 3.0]) + 5.0
    advantage = group_normalized_advantage(rewards, torch.tensor([0.1, 0.2, 0.3, 0.4]))
    assert advantage.shape == (16,)
    assert_close(advantage.mean(), torch.tensor(0.0), atol=1e-5, rtol=0)
    assert_close(advantage.std(unbiased=False), torch.tensor(1.0), atol=1e-4, rtol=0)


def test_group_advantage_large_scale_dimension_does_not_dominate() -> None:
    # Dimension 1 runs opposite to dimension 0 and is 1000x larger. After per-dimension
    # standardisation the scale is irrelevant: the advantage equals the unscaled one and, with
    # weights favouring dimension 0, follows dimension 0's order.
    rewards = torch.tensor([[0.0, 1.0], [1.0, 0.5], [3.0, 0.0]])
    weights = torch.tensor([0.7, 0.3])
    advantage = group_normalized_advantage(rewards, weights)
    scaled = group_normalized_advantage(rewards * torch.tensor([1.0, 1000.0]), weights)
    assert_close(scaled, advantage)
    assert scaled.argsort().tolist() == [0, 1, 2]
    naive = weighted_total(rewards * torch.tensor([1.0, 1000.0]), weights)
    assert naive.argsort().tolist() == [2, 1, 0]  # without normalisation the large dimension wins


def test_group_advantage_constant_dimension_is_finite_and_ignored() -> None:
    rewards = torch.tensor([[0.0, 4.0], [1.0, 4.0], [2.0, 4.0]])
    advantage = group_normalized_advantage(rewards, torch.tensor([0.5, 0.5]))
    assert torch.isfinite(advantage).all()
    only_first = group_normalized_advantage(rewards[:, :1], torch.tensor([0.5]))
    assert_close(advantage, only_first)
