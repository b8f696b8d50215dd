"""Rollout batches of policy prompts: sharded across ranks by whole prompts, and resumable.

Each epoch's order is a permutation drawn from ``torch.Generator().manual_seed(seed + epoch)``
(the identity without shuffle). With W ranks and B prompts a rank, the order is cut into global
batches of W*B prompts and rank r takes prompts [r*B, (r+1)*B) of each, so every rank keeps whole
prompts (its G rollouts stay on it) and all ranks run the same number of batches. ``drop_last``
drops the incomplete tail; otherwise the tail is padded to a multiple of W with prompts from the
start of the order and split evenly (a smaller last batch).

``PromptBatches`` is a plain iterable, not a DataLoader, so Lightning leaves the sharding alone (no
DistributedSampler) and saves its ``state_dict`` in checkpoints: after ``--ckpt_path last`` the
next batch is the one the uninterrupted run would have drawn (Lightning does not fast-forward a
map-style DataLoader mid-epoch).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from lit_mrrml.data.prompt_records import PromptRecord
from lit_mrrml.errors import InputError


@dataclass(frozen=True)
class EncodedPrompt:
    """A prompt with its policy token ids (chat template, generation prompt on)."""

    record: PromptRecord
    prompt_ids: tuple[int, ...]  # unpadded; left-truncated to the longest prompt allowed
    scenario: int  # the matrix scenario index, -1 when the prompt has none
    truncated: bool  # the start of the prompt was cut


def collate_prompts(prompts: Sequence[EncodedPrompt]) -> dict[str, Any]:
    """A rollout batch: lists per prompt, and the (B,) scenario indices as a tensor."""
    return {
        "ids": [p.record.id for p in prompts],
        "messages": [p.record.message_dicts for p in prompts],
        "prompt_ids": [list(p.prompt_ids) for p in prompts],
        "scenario": torch.tensor([p.scenario for p in prompts], dtype=torch.long),  # (B,), -1: none
        "scenario_ids": [p.record.scenario for p in prompts],
    }


class PromptBatches:
    """Batches of ``batch_size`` prompts for this rank, in a seeded order that resumes exactly.

    ``rank`` and ``world_size`` default to ``torch.distributed`` at iteration time (0 and 1 when it
    is not initialised). ``state_dict`` is the epoch and the batches already yielded in it.
    """

    def __init__(
        self,
        prompts: Sequence[EncodedPrompt],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise InputError(f"data.batch_size must be at least 1 prompt, got {batch_size}")
        self.prompts = list(prompts)
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.batches_done = 0  # batches yielded in the current epoch

    def _layout(self) -> tuple[int, int]:
        """(rank, world size), refusing fewer prompts than one global batch."""
        distributed = dist.is_available() and dist.is_initialized()
        world = self.world_size or (dist.get_world_size() if distributed else 1)
        rank = self.rank if self.rank is not None else (dist.get_rank() if distributed else 0)
        if len(self.prompts) < world * self.batch_size:
            raise InputError(
                f"{len(self.prompts)} training prompt(s) cannot fill one rollout batch of data.batch_size="
                f"{self.batch_size} prompts on each of {world} rank(s) ({world * self.batch_size} prompts): add "
                "prompts or lower data.batch_size"
            )
        return rank, world

    def __len__(self) -> int:
        """Batches per epoch on each rank."""
        _, world = self._layout()
        full, tail = divmod(len(self.prompts), world * self.batch_size)
        return full + (0 if self.drop_last or not tail else 1)

    def order(self, epoch: int) -> list[int]:
        """The prompt indices of an epoch, all ranks together."""
        n = len(self.prompts)
        if not self.shuffle:
            return list(range(n))
        return torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()

    def rank_batches(self, epoch: int, rank: int, world: int) -> list[list[int]]:
        """The prompt indices of each of this rank's batches in an epoch."""
        order, step = self.order(epoch), world * self.batch_size
        batches = []
        for begin in range(0, len(order), step):
            chunk = order[begin : begin + step]
            if len(chunk) < step:
                if self.drop_last:
                    break
                chunk += order[: -len(chunk) % world]  # pad the tail to a multiple of W
            size = len(chunk) // world
            batches.append(chunk[rank * size : (rank + 1) * size])
        return batches

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rank, world = self._layout()
        if self.batches_done >= len(self):  # an epoch stopped after its last batch
            self.epoch, self.batches_done = self.epoch + 1, 0
        return self._run(self.rank_batches(self.epoch, rank, world), self.epoch, self.batches_done)

    def _run(self, batches: list[list[int]], epoch: int, start: int) -> Iterator[dict[str, Any]]:
        for k in range(start, len(batches)):
            # count the batch before handing it out: a checkpoint taken after its step resumes at k + 1
            last = k + 1 == len(batches)
            self.epoch, self.batches_done = (epoch + 1, 0) if last else (epoch, k + 1)
            yield collate_prompts([self.prompts[i] for i in batches[k]])

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches_done": self.batches_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from this state at the next ``iter()``."""
        self.epoch, self.batches_done = int(state["epoch"]), int(state["batches_done"])
