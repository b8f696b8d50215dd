"""Per-unit statistics and their pooling (lit_mrrml/losses/statistics.py) on a hand-built batch.

The batch (K = 3, d = 2):
- unit 0, n = 3, e = [1, 0]: z = [2,0], [1,1], [0,0]; r = 2, 1, 0.
  pairs 3/3, ordered, lambda_1 = 0.5 (between), perp residual [0,1] -> ratio 1/2,
  cos(z_1 - z_K = [2,0], e) = 1, margin 2.
- unit 1, n = 3, e = [0, 1]: z = [2,0], [3,1], [0,0]; r = 1, 2, 0.
  pairs (0,1) wrong, (0,2), (1,2) right -> 2/3, not ordered, lambda_1 = 1.5 (not between),
  residual [1,1] -> ratio sqrt(2)/2, cos([2,0], [0,1]) = 0, margin 1.
- unit 2, n = 2, e = [0, 1]: z = [0,0], [0,1], padding; r = 0, 1, padding.
  pairs 0/1, not orderable, no intermediates, cos([0,-1], [0,1]) = -1, margin -1.
"""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from lit_mrrml.losses.statistics import UnitStatistics, pooled_rates, unit_statistics

NAN = float("nan")


def hand_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    z = torch.tensor(
        [
            [[2.0, 0.0], [1.0, 1.0], [0.0, 0.0]],
            [[2.0, 0.0], [3.0, 1.0], [0.0, 0.0]],
            [[0.0, 0.0], [0.0, 1.0], [0.0, 0.0]],
        ]
    )
    rewards = torch.tensor([[2.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 1.0, 0.0]])
    axes = torch.tensor([[5.0, 0.0], [0.0, 0.5], [0.0, 3.0]])
    num_responses = torch.tensor([3, 3, 2])
    return z, rewards, axes, num_responses


def test_unit_statistics_counts_by_hand() -> None:
    stats = unit_statistics(*hand_batch())
    assert_close(stats.pairs_correct, torch.tensor([3.0, 2.0, 0.0]))
    assert_close(stats.pairs_total, torch.tensor([3.0, 3.0, 1.0]))
    assert_close(stats.ordered, torch.tensor([1.0, 0.0, 0.0]))
    assert_close(stats.orderable, torch.tensor([1.0, 1.0, 0.0]))
    assert_close(stats.between, torch.tensor([1.0, 0.0, 0.0]))
    assert_close(stats.intermediates, torch.tensor([1.0, 1.0, 0.0]))


def test_unit_statistics_geometry_by_hand() -> None:
    stats = unit_statistics(*hand_batch())
    assert_close(stats.axis_cos, torch.tensor([1.0, 0.0, -1.0]))
    assert_close(stats.perp_ratio, torch.tensor([0.5, math.sqrt(2) / 2, 0.0]))
    assert_close(stats.margin, torch.tensor([2.0, 1.0, -1.0]))


def test_unit_statistics_ordered_ignores_padding_step() -> None:
    # A K = 3 unit padded in a K = 4 batch: the step from row 2 into padding row 3 must not count.
    z = torch.tensor([[[2.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]])
    rewards = torch.tensor([[2.0, 1.0, 0.0, 50.0]])
    stats = unit_statistics(z, rewards, torch.tensor([[1.0, 0.0]]), torch.tensor([3]))
    assert_close(stats.ordered, torch.tensor([1.0]))
    assert_close(stats.pairs_correct, torch.tensor([3.0]))
    assert_close(stats.pairs_total, torch.tensor([3.0]))


def test_unit_statistics_are_detached() -> None:
    z, rewards, axes, n = hand_batch()
    stats = unit_statistics(z.requires_grad_(), rewards.requires_grad_(), axes, n)
    assert all(not value.requires_grad for value in stats)


def test_pooled_rates_overall_by_hand() -> None:
    rates = pooled_rates(unit_statistics(*hand_batch()))
    assert_close(rates["pair_acc"], torch.tensor(5 / 7))
    assert_close(rates["order_acc"], torch.tensor(0.5))
    assert_close(rates["betweenness"], torch.tensor(0.5))
    assert_close(rates["axis_cos"], torch.tensor(0.0))
    assert_close(rates["perp_ratio"], torch.tensor((0.5 + math.sqrt(2) / 2) / 2))
    assert_close(rates["margin"], torch.tensor(2 / 3))


def test_pooled_rates_selection() -> None:
    rates = pooled_rates(unit_statistics(*hand_batch()), select=torch.tensor([True, False, True]))
    assert_close(rates["pair_acc"], torch.tensor(3 / 4))
    assert_close(rates["order_acc"], torch.tensor(1.0))
    assert_close(rates["axis_cos"], torch.tensor(0.0))
    assert_close(rates["margin"], torch.tensor(0.5))


def test_pooled_rates_nan_where_nothing_counted() -> None:
    # Only the K = 2 unit: no orderable unit and no intermediate answer.
    rates = pooled_rates(unit_statistics(*hand_batch()), select=torch.tensor([False, False, True]))
    assert torch.isnan(rates["order_acc"])
    assert torch.isnan(rates["betweenness"])
    assert torch.isnan(rates["perp_ratio"])
    assert_close(rates["pair_acc"], torch.tensor(0.0))
    assert_close(rates["axis_cos"], torch.tensor(-1.0))


def test_pooled_rates_all_nan_for_empty_selection() -> None:
    rates = pooled_rates(unit_statistics(*hand_batch()), select=torch.zeros(3, dtype=torch.bool))
    assert all(torch.isnan(value) for value in rates.values())


def test_pooled_rates_of_summed_rows_equal_pooling_units() -> None:
    # Rows may be sums over units (e.g. accumulated over an epoch); `units` counts them.
    stats = unit_statistics(*hand_batch())
    summed = UnitStatistics(*(torch.stack([field[:2].sum(), field[2:].sum()]) for field in stats))
    pooled = pooled_rates(summed, units=torch.tensor([2, 1]))
    expected = pooled_rates(stats)
    for name, value in expected.items():
        assert_close(pooled[name], value, msg=name)
