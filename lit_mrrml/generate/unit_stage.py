"""The unit stage of a batch: best answers, rewrites down the levels, length checks, the blind judge.

Each round sends all of the batch's requests at once. A unit that cannot be finished because a
request failed to arrive is left out of this run's output (its replies so far are cached) and
asked again on the next run; one whose replies are unusable, too unequal in length or ranked
otherwise by the judge is dropped with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lit_mrrml.backends.base import ChatBackend, ChatReply, ChatRequest, Usage
from lit_mrrml.generate.cells import Slot

if TYPE_CHECKING:
    from lit_mrrml.generate.run import GenerationRun


@dataclass
class UnitJob:
    """One (slot, dimension) unit on its way: its answers so far, best first, and the tokens they took."""

    slot: Slot
    dimension: str
    key: str
    prompt: list[dict[str, str]]
    answers: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)  # the generator's tokens
    judge_usage: Usage = field(default_factory=Usage)
    verdict: dict[str, Any] | None = None  # the judge's: {"id", "order", "agrees", "tokens"}


def length_ratio(answers: list[str]) -> float:
    """Longest over shortest answer, in words."""
    words = [max(1, len(a.split())) for a in answers]
    return max(words) / min(words)


class UnitStage:
    """Turns the unit jobs of one batch into kept units and drops, and writes them."""

    def __init__(self, run: GenerationRun) -> None:
        self.ctx = run
        self.drops: list[dict[str, Any]] = []

    def _settle(self, job: UnitJob, replies: list[ChatReply], what: str, judge: bool = False) -> bool:
        """Account a job's replies of one round; True when all are usable."""
        usage = job.judge_usage if judge else job.usage
        for reply in replies:
            usage.add(reply.usage)
        failed = next((r for r in replies if r.error_kind == "request_failed"), None)
        bad = next((r for r in replies if not r.ok), None)
        if failed is not None:
            self.ctx.counters.fail(failed)
        elif bad is not None:
            reason = "judge_bad_reply" if judge else "bad_reply"
            self.drops.append(self.ctx.unit_drop(job, reason, f"{what}: {bad.error}", bad.text))
        else:
            return True
        self.ctx.progress.advance()
        return False

    async def run_round(
        self, backend: ChatBackend, jobs: list[UnitJob], requests: list[ChatRequest], per_job: int
    ) -> list[list[ChatReply]]:
        """Send one round's requests (``per_job`` for each job, in order); each job's replies."""
        if not requests:
            return [[] for _ in jobs]
        replies = await backend.complete(requests)
        self.ctx.check_alive(replies)
        return [replies[i * per_job : (i + 1) * per_job] for i in range(len(jobs))]

    async def run(self, jobs: list[UnitJob]) -> None:
        """All rounds for the batch's jobs, then one write of its units and drops."""
        if not jobs:
            return
        self.drops = []
        builder, levels = self.ctx.builder, self.ctx.builder.levels
        requests = [builder.answer(j.slot, j.dimension, j.prompt, j.key) for j in jobs]
        groups = await self.run_round(self.ctx.generator, jobs, requests, 1)
        live = []
        for job, replies in zip(jobs, groups, strict=True):
            if self._settle(job, replies, "best answer"):
                job.answers = [replies[0].value]
                live.append(job)
        requests = [
            builder.rewrite(j.slot, j.dimension, j.prompt, j.key, j.answers[0], level)
            for j in live
            for level in levels[1:]
        ]
        groups = await self.run_round(self.ctx.generator, live, requests, len(levels) - 1)
        live = [job for job, replies in zip(live, groups, strict=True) if self._rewritten(job, replies)]
        live = [job for job in live if self._similar(job)]
        if self.ctx.judge is not None:
            live = await self.verify(live)
        units = [self.ctx.unit_record(job) for job in live]
        self.ctx.store.write(drops=self.drops, units=units)
        self.ctx.counters.units += len(units)
        self.ctx.progress.advance(len(units))

    def _rewritten(self, job: UnitJob, replies: list[ChatReply]) -> bool:
        if not self._settle(job, replies, "rewrite"):
            return False
        job.answers += [r.value for r in replies]
        return True

    def _similar(self, job: UnitJob) -> bool:
        """Distinct answers within ``answers.max_length_ratio`` of each other in words."""
        limit = self.ctx.job.answers.max_length_ratio
        if len(set(job.answers)) < len(job.answers):
            self.drops.append(self.ctx.unit_drop(job, "identical_answers", "two answers are the same text"))
        elif (ratio := length_ratio(job.answers)) > limit:
            words = [len(a.split()) for a in job.answers]
            detail = f"length ratio {ratio:.2f} > {limit:g} (words {words})"
            self.drops.append(self.ctx.unit_drop(job, "length_mismatch", detail))
        else:
            return True
        self.ctx.progress.advance()
        return False

    async def verify(self, jobs: list[UnitJob]) -> list[UnitJob]:
        """The judge ranks each unit blind; units it orders otherwise are dropped as label noise."""
        builder, judge = self.ctx.builder, self.ctx.judge
        assert judge is not None
        requests = [builder.judge(j.slot, j.dimension, j.prompt, j.key, j.answers) for j in jobs]
        groups = await self.run_round(judge, jobs, requests, 1)
        kept = []
        mode = self.ctx.job.verify.agreement
        for job, replies in zip(jobs, groups, strict=True):
            if not self._settle(job, replies, "judge", judge=True):
                continue
            order = builder.judged_order(job.key, replies[0].value)
            agrees = order == list(range(len(order))) if mode == "order" else order[0] == 0
            job.verdict = {"id": judge.id, "order": order, "agrees": agrees, "tokens": job.judge_usage.as_dict()}
            if agrees:
                kept.append(job)
                continue
            detail = f"the judge ranked the answers {order} (0 is the intended best)"
            self.drops.append(self.ctx.unit_drop(job, "judge_disagrees", detail))
            self.ctx.progress.advance()
        return kept
