"""An asyncio micro-batcher: the rows of concurrent requests are scored together, off the event loop.

Rows wait in one queue. A worker takes up to ``max_batch_size`` of them, once the batch is full or
``batch_window_s`` after its oldest row arrived, and runs the scorer on them in a worker thread
(``asyncio.to_thread``), so the loop keeps accepting requests while the model runs; one scorer call
runs at a time (one model, one device). A request's rows may be spread over several batches.

Admission: at most ``max_concurrency`` requests are in flight (queued or being scored); one more is
refused at once with ``Busy`` (HTTP 503), rather than queued without bound.

Failure: when a scorer call for rows of several requests raises, each request's rows are scored
again on their own, so that one request's bad row fails that request only (``ScorerError``, HTTP
500); the others get their scores.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lit_mrrml.serve.protocol import Message, Row, ScoredRow

log = logging.getLogger(__name__)


class Scores(Protocol):
    """What a scorer returns: ``RewardScores`` (tensors) or anything with the same two fields."""

    @property
    def rewards(self) -> Any: ...  # (N, L): nested sequences, or a tensor with ``tolist()``

    @property
    def totals(self) -> Any: ...  # (N,)


ScoreFn = Callable[[list[list[Message]], list[str], list[str | None]], Scores]  # (prompts, responses, scenarios)


class Busy(Exception):
    """The server already holds ``max_concurrency`` requests (HTTP 503; retry later)."""


class ScorerError(Exception):
    """The scorer failed on a request's rows (HTTP 500), or returned what is not their scores."""


def plain(values: Any) -> list[Any]:
    """A tensor or array as nested lists; lists pass through."""
    return list(values.tolist() if hasattr(values, "tolist") else values)


def scored_rows(scores: Scores, n: int, num_dimensions: int) -> list[ScoredRow]:
    """The scorer's output for ``n`` rows, checked: (n, L) rewards and (n,) totals, all finite."""
    rewards, totals = plain(scores.rewards), plain(scores.totals)
    if len(rewards) != n or len(totals) != n or any(len(plain(r)) != num_dimensions for r in rewards):
        raise ScorerError(
            f"the scorer returned {len(rewards)} reward rows and {len(totals)} totals for {n} rows "
            f"of {num_dimensions} dimensions"
        )
    rows = [ScoredRow([float(x) for x in plain(r)], float(t)) for r, t in zip(rewards, totals, strict=True)]
    if not all(math.isfinite(x) for row in rows for x in (*row.rewards, row.total)):
        raise ScorerError("the scorer returned NaN or infinite rewards")
    return rows


@dataclass
class Pending:
    """A queued row, the request it belongs to and the future its scores go to."""

    row: Row
    ticket: int  # the request's number: rows of one request share it
    future: asyncio.Future[ScoredRow]
    arrived: float  # loop time


class MicroBatcher:
    """Scores the rows of concurrent requests in shared scorer calls (see the module docstring)."""

    def __init__(
        self,
        score_fn: ScoreFn,
        num_dimensions: int,
        batch_window_s: float = 0.01,
        max_batch_size: int = 32,
        max_concurrency: int = 64,
    ) -> None:
        self.score_fn, self.num_dimensions = score_fn, num_dimensions
        self.batch_window_s, self.max_batch_size, self.max_concurrency = batch_window_s, max_batch_size, max_concurrency
        self.in_flight = 0  # requests admitted and not yet answered
        self._queue: deque[Pending] = deque()
        self._wake = asyncio.Event()  # set when rows arrive
        self._tickets = itertools.count()
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the worker on the running loop."""
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="reward-batcher")

    async def stop(self) -> None:
        """Stop the worker; rows still queued fail with ScorerError."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(ScorerError("the server is shutting down"))

    async def score(self, rows: Sequence[Row]) -> list[ScoredRow]:
        """The scores of one request's rows, in order; Busy when the server is full."""
        if self.in_flight >= self.max_concurrency:
            raise Busy(f"busy: {self.in_flight} requests in flight, this server's --max_concurrency; retry later")
        self.in_flight += 1
        try:
            loop, ticket = asyncio.get_running_loop(), next(self._tickets)
            pending = [Pending(row, ticket, loop.create_future(), loop.time()) for row in rows]
            self._queue.extend(pending)
            self._wake.set()
            return list(await asyncio.gather(*(p.future for p in pending)))
        finally:
            self.in_flight -= 1

    async def _run(self) -> None:
        while True:
            batch = [p for p in await self._next_batch() if not p.future.done()]  # done: its client left
            if batch:
                await self._score(batch)

    async def _next_batch(self) -> list[Pending]:
        """Up to ``max_batch_size`` rows, once that many wait or the oldest has waited the window."""
        while not self._queue:
            self._wake.clear()
            await self._wake.wait()
        loop = asyncio.get_running_loop()
        deadline = self._queue[0].arrived + self.batch_window_s
        while len(self._queue) < self.max_batch_size and (left := deadline - loop.time()) > 0:
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)
        return [self._queue.popleft() for _ in range(min(self.max_batch_size, len(self._queue)))]

    async def _score(self, batch: list[Pending]) -> None:
        """Score a batch in a worker thread; on failure, each request's rows alone (see above)."""
        rows = [p.row for p in batch]
        try:
            results = await asyncio.to_thread(self._call, rows)
        except Exception as err:
            tickets = list(dict.fromkeys(p.ticket for p in batch))
            if len(tickets) > 1:
                for ticket in tickets:
                    await self._score([p for p in batch if p.ticket == ticket])
                return
            log.exception("the scorer failed on %d row(s)", len(rows))
            failure = err if isinstance(err, ScorerError) else ScorerError(f"{type(err).__name__}: {err}")
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(failure)
            return
        for p, result in zip(batch, results, strict=True):
            if not p.future.done():
                p.future.set_result(result)

    def _call(self, rows: list[Row]) -> list[ScoredRow]:
        """The scorer on ``rows`` (in the worker thread)."""
        scores = self.score_fn([r.messages for r in rows], [r.response for r in rows], [r.scenario for r in rows])
        return scored_rows(scores, len(rows), self.num_dimensions)
