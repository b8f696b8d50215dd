"""GenerationRun: one run of a DataGenerator over its output folder, batch by batch.

It holds what the run needs (the store and what it already holds, the cached backends, the
near-duplicate index and the contamination guard, the request builder, the progress bar), writes
each batch's prompts (again for dropped ones, up to their attempts), then hands the batch's units
to the UnitStage.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lit_mrrml.backends.base import ChatReply
from lit_mrrml.backends.cache import CachedBackend
from lit_mrrml.generate import records
from lit_mrrml.generate.cells import Slot
from lit_mrrml.generate.progress import GenerationProgress
from lit_mrrml.generate.requests import PromptDraft, RequestBuilder
from lit_mrrml.generate.store import GenerationStore, ResumeState
from lit_mrrml.generate.unit_stage import UnitJob, UnitStage
from lit_mrrml.overlap import OverlapFilter, prompt_text, screen_prompt

if TYPE_CHECKING:
    from lit_mrrml.generate.pipeline import DataGenerator


class GenerationAborted(RuntimeError):
    """Every request of a round failed: the service is down or refusing; what is finished is saved."""


@dataclass
class RunCounters:
    """What this run did (the manifest counts every run into the folder)."""

    prompts: int = 0
    units: int = 0
    drops: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    last_error: str | None = None
    unfinished: int = 0  # planned unit keys the logs do not finish at the end of the run (``unfinished_units``)
    complete: bool = False  # nothing unfinished and no request failed (settled by ``write_outputs``)
    manifest: Path | None = None

    def fail(self, reply: ChatReply) -> None:
        self.failed += 1
        self.last_error = reply.error


def unit_keys_left(job: DataGenerator, state: ResumeState, slot: Slot) -> list[tuple[str, str]]:
    """(dimension, unit key) of the slot's units that ``state`` has neither kept nor dropped."""
    keys = [(d, job.unit_key(slot, d)) for d in job.target_dimensions(slot.cell)]
    return [(d, k) for d, k in keys if k not in state.done]


def has_prompt_chance(job: DataGenerator, state: ResumeState, slot: Slot) -> bool:
    """Whether the slot has its prompt, or prompt attempts left (a slot out of them is finished)."""
    return slot.key in state.prompts or state.attempts[slot.key] < job.prompts.max_attempts


def unfinished_units(job: DataGenerator, state: ResumeState) -> int:
    """The planned unit keys that ``state`` does not finish: not kept, not dropped, on a slot not out of attempts."""
    return sum(len(unit_keys_left(job, state, slot)) for slot in job.slots if has_prompt_chance(job, state, slot))


class GenerationRun:
    """The state of one run: the stores, filters and backends, and the work left to do."""

    def __init__(
        self,
        job: DataGenerator,
        store: GenerationStore,
        state: ResumeState,
        counters: RunCounters,
        generator: CachedBackend,
        judge: CachedBackend | None,
    ) -> None:
        self.job, self.store, self.state, self.counters = job, store, state, counters
        self.generator, self.judge = generator, judge
        self.builder = RequestBuilder(job.matrix, job.templates, job.prompts, job.answers, job.verify, job.seed)
        self.guard = job.guard
        self.dedup: OverlapFilter | None = None
        if job.dedup.enabled:
            self.dedup = OverlapFilter(job.dedup.threshold, job.dedup.ngram, "jaccard")
            for key, record in state.prompts.items():
                self.dedup.add(key, prompt_text(record["prompt"]))
        self.work = [slot for slot in job.slots if self.unfinished(slot)]
        left = unfinished_units(job, state)
        self.progress = GenerationProgress(job.planned_units, job.planned_units - left, self.stats, job.progress)
        self.units = UnitStage(self)

    def stats(self) -> tuple[float, int, int]:
        c = self.counters
        return self.generator.stats.requests_per_second(), sum(c.drops.values()), c.failed

    def unit_keys(self, slot: Slot) -> list[tuple[str, str]]:
        """(dimension, unit key) of the slot's units not yet kept or dropped."""
        return unit_keys_left(self.job, self.state, slot)

    def has_prompt_chance(self, slot: Slot) -> bool:
        return has_prompt_chance(self.job, self.state, slot)

    def unfinished(self, slot: Slot) -> bool:
        return self.has_prompt_chance(slot) and bool(self.unit_keys(slot))

    def check_alive(self, replies: list[ChatReply]) -> None:
        """Abort when every reply of a round failed to arrive: the service is down."""
        if replies and all(r.error_kind == "request_failed" for r in replies):
            raise GenerationAborted(
                f"all {len(replies)} requests of the last round failed ({replies[-1].error}); finished work is "
                "saved: rerun the same command to resume once the service answers"
            )

    async def batch(self, slots: list[Slot]) -> None:
        await self.write_prompts(slots)
        jobs = [
            UnitJob(slot, dimension, key, self.state.prompts[slot.key]["prompt"])
            for slot in slots
            if slot.key in self.state.prompts
            for dimension, key in self.unit_keys(slot)
        ]
        await self.units.run(jobs)

    async def write_prompts(self, slots: list[Slot]) -> None:
        """Write prompts for the slots that have none, again for dropped ones, until kept or out of attempts."""
        need = [s for s in slots if s.key not in self.state.prompts and self.has_prompt_chance(s)]
        while need:
            drafts = [self.builder.prompt(slot, self.state.attempts[slot.key]) for slot in need]
            replies = await self.generator.complete([d.request for d in drafts])
            self.check_alive(replies)
            kept, drops, need = [], [], []
            for draft, reply in zip(drafts, replies, strict=True):
                if reply.error_kind == "request_failed":
                    self.counters.fail(reply)
                    self.progress.advance(len(self.unit_keys(draft.slot)))
                    continue
                verdict = self.screen(draft, reply)
                if verdict is None:
                    record = records.prompt_record(draft, reply)
                    kept.append(record)
                    self.state.prompts[draft.slot.key] = record
                    continue
                drops.append(self.prompt_drop(draft, reply, *verdict))
                self.state.attempts[draft.slot.key] += 1
                if self.has_prompt_chance(draft.slot):
                    need.append(draft.slot)
                else:
                    self.progress.advance(len(self.unit_keys(draft.slot)))
            self.store.write(prompts=kept, drops=drops)
            self.counters.prompts += len(kept)

    def screen(self, draft: PromptDraft, reply: ChatReply) -> tuple[str, str] | None:
        """(reason, detail) when the prompt must be dropped, None when it is kept."""
        if not reply.ok:
            return "bad_reply", str(reply.error)
        found = screen_prompt(draft.slot.key, prompt_text(reply.value), self.guard, self.dedup)
        if found is None:
            return None
        reason, match = found
        return reason, f"overlap {match.score:.2f} with {match.key}"

    def prompt_drop(self, draft: PromptDraft, reply: ChatReply, reason: str, detail: str) -> dict[str, Any]:
        self.counters.drops[reason] += 1
        return records.prompt_drop(draft, reply, reason, detail)

    def unit_drop(self, job: UnitJob, reason: str, detail: str, reply: str | None = None) -> dict[str, Any]:
        self.counters.drops[reason] += 1
        return records.unit_drop(job, reason, detail, reply)

    def unit_record(self, job: UnitJob) -> dict[str, Any]:
        generated_by = {"generator": self.generator.id, "templates": self.job.templates.version}
        return records.unit_record(job, self.job.unit_id(job.key), self.builder.levels, generated_by)
