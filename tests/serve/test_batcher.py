"""The micro-batcher on its own: batch forming while the scorer works, shutdown, and output checks."""

from __future__ import annotations

import asyncio
import threading

import pytest

from lit_mrrml.serve.batcher import Busy, MicroBatcher, ScorerError, scored_rows
from lit_mrrml.serve.protocol import Row, ScoredRow
from tests.serve.fakes import FakeScorer, Table, user, wait_until


def row(response: str) -> Row:
    return Row(user("Q"), response, None)


def test_rows_arriving_while_the_scorer_works_form_the_next_batch():
    gate = threading.Event()
    fake = FakeScorer(gate=gate)

    async def body() -> None:
        batcher = MicroBatcher(fake, 2, batch_window_s=0.0, max_batch_size=8)
        batcher.start()
        first = asyncio.ensure_future(batcher.score([row("a")]))
        await wait_until(fake.entered.is_set)  # the first call holds the scorer
        later = [asyncio.ensure_future(batcher.score([row("b" * n)])) for n in (1, 2, 3)]
        await wait_until(lambda: batcher.in_flight == 4)
        gate.set()
        assert await first == [ScoredRow([1.0, 10.0], 5.5)]
        assert [r[0].rewards[0] for r in await asyncio.gather(*later)] == [1.0, 2.0, 3.0]
        await batcher.stop()
        with pytest.raises(Busy):
            await MicroBatcher(fake, 2, max_concurrency=0).score([row("x")])

    try:
        asyncio.run(body())
    finally:
        gate.set()
    assert [call[1] for call in fake.calls] == [["a"], ["b", "bb", "bbb"]]


def test_stopping_fails_the_rows_still_queued():
    async def body() -> None:
        batcher = MicroBatcher(FakeScorer(), 2)  # never started: rows stay queued
        waiting = asyncio.ensure_future(batcher.score([row("a")]))
        await wait_until(lambda: batcher.in_flight == 1)
        await batcher.stop()
        with pytest.raises(ScorerError, match="shutting down"):
            await waiting
        assert batcher.in_flight == 0

    asyncio.run(body())


class Tensorish:
    """What a tensor offers the batcher: ``tolist()``."""

    def __init__(self, values: list) -> None:
        self.values = values

    def tolist(self) -> list:
        return self.values


def test_scored_rows_takes_tensors_or_lists_and_checks_them():
    scores = Table(Tensorish([[1, 2.5]]), Tensorish([3]))
    assert scored_rows(scores, 1, 2) == [ScoredRow([1.0, 2.5], 3.0)]
    assert scored_rows(Table([[1.0, 2.0], [3.0, 4.0]], [0.0, 1.0]), 2, 2)[1] == ScoredRow([3.0, 4.0], 1.0)
    with pytest.raises(ScorerError, match="1 reward rows and 1 totals for 2 rows of 2 dimensions"):
        scored_rows(Table([[1.0, 2.0]], [1.0]), 2, 2)
    with pytest.raises(ScorerError, match="NaN or infinite"):
        scored_rows(Table([[1.0, 2.0]], [float("inf")]), 1, 2)
