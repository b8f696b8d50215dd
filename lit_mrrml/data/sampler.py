"""Cell-balanced sampling over (dimension, scenario, discipline) cells of the rubric matrix."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterator, Sequence

import torch
from torch.utils.data import Sampler


class CellBalancedSampler(Sampler[int]):
    """Draws units with replacement so that every populated cell is equally likely.

    Each unit's probability is 1 / (number of cells * units in its cell). A new permutation is
    drawn every epoch from ``seed + epoch`` (Lightning calls ``set_epoch``; under DDP it wraps
    this sampler in a distributed one).
    """

    def __init__(self, cells: Sequence[Hashable], num_samples: int | None = None, seed: int = 0) -> None:
        if not cells:
            raise ValueError("CellBalancedSampler needs at least one unit")
        counts = Counter(cells)
        self.weights = torch.tensor([1.0 / counts[c] for c in cells], dtype=torch.double)
        self.num_samples = num_samples or len(cells)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        drawn = torch.multinomial(self.weights, self.num_samples, replacement=True, generator=generator)
        return iter(drawn.tolist())
