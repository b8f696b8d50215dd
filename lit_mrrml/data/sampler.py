"""Training samplers of the reward model: seeded per epoch, sharded across ranks, resumable mid-epoch.

Both samplers are ``torch.utils.data.DistributedSampler`` subclasses, so Lightning uses them as they
are under DDP and FSDP (no ``DistributedSamplerWrapper``, no forced shuffle) and calls ``set_epoch``
before every epoch. An epoch's order over all ranks is drawn from
``torch.Generator().manual_seed(seed + epoch)``, never from the global RNG, so a resumed run draws
the order of the uninterrupted one and every epoch draws a new one. As in ``DistributedSampler``,
the order is padded to a multiple of the W ranks with its own start and rank r takes its positions
r, r + W, r + 2W, ...: the ranks get disjoint draws (apart from the padding) and equally many.
``start`` makes the next iteration skip the first indices of this rank's epoch (a run resumed
mid-epoch; see ``lit_mrrml.data.resumable``); ``set_epoch`` to another epoch clears it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterator, Sequence

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler


def process_layout(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """(num_replicas, rank): the given ones, else torch.distributed's world, else (1, 0)."""
    distributed = dist.is_available() and dist.is_initialized()
    world = num_replicas if num_replicas is not None else (dist.get_world_size() if distributed else 1)
    own = rank if rank is not None else (dist.get_rank() if distributed else 0)
    return world, own


class EpochSampler(DistributedSampler[int]):
    """This rank's share of a seeded permutation of ``size`` indices (the identity without shuffle).

    Args:
        size: Number of training units.
        shuffle: Draw a new permutation every epoch (False: the units in file order).
        seed: Seed of the permutations; epoch e uses ``seed + e``.
        num_replicas: Number of data-parallel ranks W (default: torch.distributed's world, else 1).
        rank: This rank (default: torch.distributed's rank, else 0).
    """

    def __init__(
        self, size: int, shuffle: bool = True, seed: int = 0, num_replicas: int | None = None, rank: int | None = None
    ) -> None:
        if size < 1:
            raise ValueError(f"{type(self).__name__} needs at least one unit")
        world, own = process_layout(num_replicas, rank)
        # DistributedSampler only takes len() of its dataset: the range of indices stands for it
        super().__init__(range(size), num_replicas=world, rank=own, shuffle=shuffle, seed=seed)  # type: ignore[arg-type]
        self.start = 0  # this rank's indices to skip at the next iteration (a mid-epoch resume)

    def order(self, epoch: int) -> list[int]:
        """Every rank's indices of ``epoch`` together, before padding and sharding."""
        n = len(self.dataset)  # type: ignore[arg-type]
        if not self.shuffle:
            return list(range(n))
        return torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()

    def rank_indices(self, epoch: int) -> list[int]:
        """This rank's indices of ``epoch``: the order padded with its start, every W-th from the rank."""
        order = self.order(epoch)
        padding = self.total_size - len(order)
        order += (order * math.ceil(padding / len(order)))[:padding]
        return order[self.rank : self.total_size : self.num_replicas]

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.start = 0
        super().set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        start, self.start = self.start, 0  # the skip applies to one iteration
        return iter(self.rank_indices(self.epoch)[start:])


class CellBalancedSampler(EpochSampler):
    """Draws units with replacement so that every populated cell is equally likely.

    Each draw picks unit i with probability 1 / (number of cells * units in i's cell); an epoch's
    ``num_samples`` draws (over all ranks) come from ``seed + epoch`` and are sharded like
    ``EpochSampler``'s permutation, so every rank's draws follow the same probabilities.

    Args:
        cells: Each training unit's cell, e.g. its (dimension, scenario, discipline).
        num_samples: Draws per epoch over all ranks (default: the number of units).
        seed: Seed of the draws; epoch e uses ``seed + e``.
        num_replicas: Number of data-parallel ranks W (default: torch.distributed's world, else 1).
        rank: This rank (default: torch.distributed's rank, else 0).
    """

    def __init__(
        self,
        cells: Sequence[Hashable],
        num_samples: int | None = None,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        if not cells:
            raise ValueError("CellBalancedSampler needs at least one unit")
        counts = Counter(cells)
        self.weights = torch.tensor([1.0 / counts[c] for c in cells], dtype=torch.double)  # (N,), unnormalised
        super().__init__(num_samples or len(cells), shuffle=True, seed=seed, num_replicas=num_replicas, rank=rank)

    def order(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed + epoch)
        draws = len(self.dataset)  # type: ignore[arg-type]
        return torch.multinomial(self.weights, draws, replacement=True, generator=generator).tolist()
