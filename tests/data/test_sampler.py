"""The training samplers: CellBalancedSampler makes every populated (dimension, scenario, discipline)
cell equally likely; both it and EpochSampler draw each epoch from seed + epoch and shard over ranks."""

from __future__ import annotations

from collections import Counter

import pytest
from lightning.fabric.utilities.data import _set_sampler_epoch
from torch.utils.data import DataLoader, DistributedSampler

from lit_mrrml.data.sampler import CellBalancedSampler, EpochSampler

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


# ---- seeded per epoch, sharded over ranks, resumable ----------------------------------------------


def test_both_samplers_are_distributed_samplers_so_lightning_leaves_them_alone() -> None:
    # Lightning wraps a sampler in its DistributedSamplerWrapper only if it is not a DistributedSampler
    assert isinstance(EpochSampler(10), DistributedSampler)
    assert isinstance(CellBalancedSampler(CELLS), DistributedSampler)


def test_without_shuffle_the_ranks_take_every_other_unit_and_pad_with_the_start() -> None:
    # 5 units on 2 ranks: [0, 1, 2, 3, 4] padded to [0, 1, 2, 3, 4, 0]; rank r takes positions r, r+2, r+4
    assert list(EpochSampler(5, shuffle=False, num_replicas=2, rank=0)) == [0, 2, 4]
    assert list(EpochSampler(5, shuffle=False, num_replicas=2, rank=1)) == [1, 3, 0]
    assert list(EpochSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("epoch", [0, 1, 5])
def test_the_shuffled_shards_are_torch_distributed_samplers_shards(epoch: int) -> None:
    for rank in (0, 1):
        ours, torchs = (
            EpochSampler(11, seed=3, num_replicas=2, rank=rank),
            DistributedSampler(range(11), num_replicas=2, rank=rank, seed=3),
        )
        ours.set_epoch(epoch)
        torchs.set_epoch(epoch)
        assert list(ours) == list(torchs)


def test_two_ranks_split_an_epoch_into_disjoint_equal_shares() -> None:
    ranks = [list(EpochSampler(10, seed=0, num_replicas=2, rank=r)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 5
    assert set(ranks[0]).isdisjoint(ranks[1]) and sorted(ranks[0] + ranks[1]) == list(range(10))


def test_the_permutation_is_new_every_epoch_and_fixed_by_seed_and_epoch() -> None:
    sampler = EpochSampler(20, seed=4)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert sorted(epoch0) == sorted(epoch1) == list(range(20)) and epoch0 != epoch1
    again = EpochSampler(20, seed=4)
    again.set_epoch(1)
    assert list(again) == epoch1
    assert list(EpochSampler(20, seed=5)) != epoch0


def test_start_skips_the_first_indices_of_one_iteration_only() -> None:
    sampler = EpochSampler(6, seed=1)
    full = list(sampler)
    sampler.start = 4
    assert list(sampler) == full[4:]
    assert list(sampler) == full  # the skip was used up
    sampler.start = 4
    sampler.set_epoch(0)  # the same epoch: a resume's Lightning set_epoch keeps the skip
    assert list(sampler) == full[4:]
    sampler.start = 4
    sampler.set_epoch(1)  # another epoch starts from its start
    assert len(list(sampler)) == 6


def test_cell_balanced_weights_are_one_over_cells_times_cell_size() -> None:
    weights = CellBalancedSampler(CELLS).weights
    p = weights / weights.sum()
    # 3 cells of 80, 15 and 5 units: 1/(3*80), 1/(3*15), 1/(3*5)
    assert p[0].item() == pytest.approx(1 / 240) and p[80].item() == pytest.approx(1 / 45)
    assert p[99].item() == pytest.approx(1 / 15)


def test_cell_balanced_ranks_share_the_global_draws_of_the_epoch() -> None:
    # one process draws the epoch's 100 draws; on 2 ranks, rank r takes draws r, r+2, r+4...
    single = CellBalancedSampler(CELLS, seed=2)
    ranks = [CellBalancedSampler(CELLS, seed=2, num_replicas=2, rank=r) for r in (0, 1)]
    assert [len(r) for r in ranks] == [50, 50]
    assert list(ranks[0]) == list(single)[0::2] and list(ranks[1]) == list(single)[1::2]


def test_under_two_ranks_each_ranks_cell_balanced_draws_change_every_epoch() -> None:
    ranks = [CellBalancedSampler(CELLS, seed=0, num_replicas=2, rank=r) for r in (0, 1)]
    draws = {}
    for epoch in (0, 1, 2):
        for rank, sampler in enumerate(ranks):
            loader = DataLoader(range(len(CELLS)), sampler=sampler, batch_size=10)
            _set_sampler_epoch(loader, epoch)  # what Lightning's fit loop calls before every epoch
            draws[rank, epoch] = [i for batch in loader for i in batch.tolist()]
    for rank in (0, 1):
        assert len({tuple(draws[rank, e]) for e in (0, 1, 2)}) == 3, rank
    assert draws[0, 1] != draws[1, 1]


def test_cell_balanced_probabilities_hold_on_each_of_two_ranks() -> None:
    for rank in (0, 1):
        sampler = CellBalancedSampler(CELLS, num_samples=60_000, seed=5, num_replicas=2, rank=rank)
        freq = Counter(CELLS[i][2] for i in sampler)
        for cell in ("a", "b", "c"):
            assert freq[cell] / 30_000 == pytest.approx(1 / 3, abs=0.02), (rank, freq)
