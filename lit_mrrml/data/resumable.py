"""ResumableLoader: a DataLoader over an EpochSampler that resumes mid-epoch at the next batch.

Lightning does not fast-forward a DataLoader when a run resumes mid-epoch: it would start the
epoch over. It does save the ``state_dict()`` of a train loader that has ``state_dict`` and
``load_state_dict`` in the checkpoint (``fit_loop.state_dict.combined_loader``) and gives it back
with ``load_state_dict`` before iterating again. This loader's state is the epoch and the batches
it has handed out in it (counted in the main process as Lightning takes them, so worker
prefetching does not count); after ``load_state_dict`` the next iteration skips those batches'
indices in the sampler, without loading their units.

Iterating is lazy: the sampler's order, and worker processes, start at the first ``next()``,
after Lightning's ``set_epoch``. The loader has its own ``torch.Generator`` (reseeded from the
sampler's seed and epoch every iteration) for the workers' base seed, so iterating it never
draws from the global RNG that dropout uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from lit_mrrml.data.sampler import EpochSampler


class ResumableLoader(DataLoader[Any]):
    """A DataLoader (every other argument is torch's) whose ``state_dict`` is (epoch, batches done).

    Args:
        dataset: The map-style dataset.
        sampler: The epoch sampler (``EpochSampler`` or ``CellBalancedSampler``).
        batch_size: Samples per batch.
        **kwargs: Other DataLoader arguments (``num_workers``, ``collate_fn``...); not ``shuffle``,
            ``batch_sampler`` or ``generator``.
    """

    sampler: EpochSampler

    def __init__(self, dataset: Dataset[Any], sampler: EpochSampler, batch_size: int, **kwargs: Any) -> None:
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, generator=torch.Generator(), **kwargs)
        self.epoch = sampler.epoch
        self.batches_done = 0  # batches of self.epoch handed out (or skipped at a resume)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]  # a generator around torch's iterator
        return self._batches()

    def _batches(self) -> Iterator[Any]:
        sampler = self.sampler
        assert self.batch_size is not None and self.generator is not None
        self.epoch, self.batches_done = sampler.epoch, sampler.start // self.batch_size
        self.generator.manual_seed(sampler.seed + sampler.epoch)  # the workers' base seed
        for batch in super().__iter__():
            self.batches_done += 1  # counted before it is trained on: a checkpoint after its step resumes after it
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches_done": self.batches_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue epoch ``state["epoch"]`` after its first ``state["batches_done"]`` batches at the
        next iteration (a later ``set_epoch`` to another epoch starts that one from its start)."""
        assert self.batch_size is not None
        self.epoch, self.batches_done = int(state["epoch"]), int(state["batches_done"])
        self.sampler.set_epoch(self.epoch)
        self.sampler.start = self.batches_done * self.batch_size
