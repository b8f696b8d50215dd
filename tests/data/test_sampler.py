"""CellBalancedSampler: every populated (dimension, scenario, discipline) cell equally likely."""

from __future__ import annotations

from collections import Counter

import pytest

from lit_mrrml.data.sampler import CellBalancedSampler

# 80 units in cell a, 15 in b, 5 in c: a plain shuffle would show a 16:3:1 ratio
CELLS = [("safety", "hedging", "a")] * 80 + [("accuracy", "hedging", "b")] * 15 + [("safety", "global_health", "c")] * 5


def test_length_defaults_to_the_number_of_units() -> None:
    assert len(CellBalancedSampler(CELLS)) == 100
    assert len(list(CellBalancedSampler(CELLS))) == 100


def test_num_samples_sets_the_length() -> None:
    sampler = CellBalancedSampler(CELLS, num_samples=33)
    assert len(sampler) == 33
    assert len(list(sampler)) == 33


def test_indices_are_in_range() -> None:
    assert all(0 <= i < len(CELLS) for i in CellBalancedSampler(CELLS, num_samples=500))


def test_same_seed_and_epoch_give_the_same_order() -> None:
    first, second = CellBalancedSampler(CELLS, seed=3), CellBalancedSampler(CELLS, seed=3)
    assert list(first) == list(second)
    assert list(first) == list(first)  # iterating again repeats the epoch


def test_different_seeds_give_different_orders() -> None:
    assert list(CellBalancedSampler(CELLS, seed=0)) != list(CellBalancedSampler(CELLS, seed=1))


def test_set_epoch_changes_the_order_deterministically() -> None:
    sampler = CellBalancedSampler(CELLS, seed=0)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert epoch1 != epoch0
    other = CellBalancedSampler(CELLS, seed=0)
    other.set_epoch(1)
    assert list(other) == epoch1


def test_cells_are_drawn_about_equally_often() -> None:
    sampler = CellBalancedSampler(CELLS, num_samples=30_000, seed=0)
    freq = Counter(CELLS[i][2] for i in sampler)
    for cell in ("a", "b", "c"):
        assert freq[cell] / 30_000 == pytest.approx(1 / 3, abs=0.02), freq


def test_units_within_a_cell_are_drawn_about_equally_often() -> None:
    sampler = CellBalancedSampler(CELLS, num_samples=30_000, seed=1)
    counts = Counter(i for i in sampler if CELLS[i][2] == "c")  # 5 units share 1/3
    assert set(counts) == {95, 96, 97, 98, 99}
    assert min(counts.values()) > 0.7 * max(counts.values())


def test_empty_cells_raise() -> None:
    with pytest.raises(ValueError, match="at least one unit"):
        CellBalancedSampler([])
