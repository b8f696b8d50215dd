"""Grading answered rows: one judge call per (row, criterion), cached, with bounded attempts.

A verdict the cache holds is never asked again. Requests go to the judge backend in chunks (it
runs each chunk with its own concurrency and bounded retries); a criterion still without a valid
verdict after the judge's attempts is ungraded: its row is reported separately and left out of
every score, never guessed. The next run asks only for what is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lit_mrrml.backends.base import ChatBackend, ChatReply, ChatRequest
from lit_mrrml.healthbench.answers import Answer
from lit_mrrml.healthbench.grader import Grader, Verdict, render_conversation
from lit_mrrml.healthbench.rows import HealthBenchRow
from lit_mrrml.healthbench.store import VERDICT_KEY, KeyedLog

CHUNK = 4096  # judge requests handed to the backend at once (its own concurrency limit applies)


@dataclass
class GradedRow:
    """A row, its answer, and the judge's verdict (or the last error) on each of its criteria."""

    row: HealthBenchRow
    answer: Answer
    verdicts: list[Verdict | None]
    errors: list[str | None] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(v is not None for v in self.verdicts)

    @property
    def met(self) -> list[bool]:
        return [v.criteria_met for v in self.verdicts if v is not None]

    def ungraded(self) -> list[dict[str, Any]]:
        """The criteria left without a verdict, with the judge's last error on each."""
        return [
            {"criterion": str(c), "error": e}
            for c, v, e in zip(self.row.rubrics, self.verdicts, self.errors, strict=True)
            if v is None
        ]


Work = tuple[GradedRow, int, ChatRequest]  # (graded row, criterion index, the judge request)


class RubricGrading:
    """Grades answers with a judge backend through the verdict cache."""

    def __init__(self, judge: ChatBackend, grader: Grader, cache: KeyedLog) -> None:
        self.judge, self.grader, self.cache = judge, grader, cache
        self.key_prefix = (judge.model_id, grader.fingerprint)

    def pending(self, rows: Sequence[HealthBenchRow], answers: dict[str, Answer]) -> int:
        """How many criteria of the answered rows still need a judge call."""
        missing = 0
        for row in rows:
            answer = answers.get(row.prompt_id)
            if answer is not None:
                missing += sum(self._cached(answer.conversation_hash, str(c)) is None for c in row.rubrics)
        return missing

    def _cached(self, conversation: str, criterion: str) -> Verdict | None:
        record = self.cache.get(*self.key_prefix, conversation, criterion)
        return Verdict(record["criteria_met"], record.get("explanation")) if record is not None else None

    def prepare(self, rows: Sequence[HealthBenchRow], answers: dict[str, Answer]) -> tuple[list[GradedRow], list[Work]]:
        """A GradedRow for every answered row, in the rows' order (cached verdicts filled in), and the
        judge requests still to make for the others."""
        graded, work = [], []
        for row in rows:
            answer = answers.get(row.prompt_id)
            if answer is None:
                continue
            verdicts = [self._cached(answer.conversation_hash, str(c)) for c in row.rubrics]
            item = GradedRow(row, answer, verdicts, [None] * len(row.rubrics))
            graded.append(item)
            text = None
            for j, criterion in enumerate(row.rubrics):
                if item.verdicts[j] is None:
                    text = text or render_conversation(answer.message_dicts, answer.text)
                    work.append((item, j, self.grader.request(text, criterion)))
        return graded, work

    async def run(self, work: Sequence[Work], on_done: Callable[[ChatReply], None]) -> None:
        """Ask the judge for every request of ``work``, filling in (and caching) its verdicts."""
        for start in range(0, len(work), CHUNK):
            await self._run(list(work[start : start + CHUNK]), on_done)

    async def grade(
        self,
        rows: Sequence[HealthBenchRow],
        answers: dict[str, Answer],
        on_done: Callable[[ChatReply], None],
    ) -> list[GradedRow]:
        """A GradedRow for every answered row, in the rows' order (``prepare`` then ``run``)."""
        graded, work = self.prepare(rows, answers)
        await self.run(work, on_done)
        return graded

    async def _run(self, chunk: list[Work], on_done: Callable[[ChatReply], None]) -> None:
        def store(i: int, reply: ChatReply) -> None:
            item, j, _ = chunk[i]
            criterion, conv = str(item.row.rubrics[j]), item.answer.conversation_hash
            if reply.ok:
                verdict: Verdict = reply.value
                item.verdicts[j] = verdict
                record: dict[str, Any] = dict(zip(VERDICT_KEY, (*self.key_prefix, conv, criterion), strict=True))
                record |= {"criteria_met": verdict.criteria_met, "explanation": verdict.explanation}
                self.cache.put(record | {"attempts": reply.attempts, "usage": reply.usage.as_dict()})
            else:
                item.errors[j] = reply.error
            on_done(reply)

        await self.judge.complete([request for *_, request in chunk], store)
