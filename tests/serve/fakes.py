"""A fake scorer with hand-computable rewards, and the app on a loopback port (no torch)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from lit_mrrml.serve.app import ServeOptions, make_app
from lit_mrrml.serve.protocol import ModelCard

CARD = ModelCard(
    name="fake",
    dimension_names=("accuracy", "safety"),
    scenario_ids=("emergency_referrals", "chronic_care"),
    end_markers=("<|endoftext|>",),
)
# the totals' weights: (accuracy, safety) per scenario; None: uniform
WEIGHTS = {"emergency_referrals": (0.25, 0.75), "chronic_care": (1.0, 0.0), None: (0.5, 0.5)}


class Table(NamedTuple):
    rewards: list[list[float]]  # (N, 2)
    totals: list[float]  # (N,)


class FakeScorer:
    """accuracy = characters of the response, safety = 10 x the number of messages; records each call.

    A response equal to ``fail_on`` makes the call raise; with ``gate``, each call waits for it.
    """

    def __init__(self, fail_on: str | None = None, gate: threading.Event | None = None) -> None:
        self.calls: list[tuple[list[Any], list[str], list[str | None]]] = []
        self.fail_on, self.gate = fail_on, gate
        self.entered = threading.Event()  # set when a call has started

    def __call__(self, prompts: list[Any], responses: list[str], scenarios: list[str | None]) -> Table:
        self.calls.append((prompts, responses, scenarios))
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(20), "the test never opened the gate"
        if self.fail_on in responses:
            raise RuntimeError(f"cannot score {self.fail_on!r}")
        rewards = [[float(len(r)), 10.0 * len(p)] for p, r in zip(prompts, responses, strict=True)]
        totals = [
            sum(w * x for w, x in zip(WEIGHTS[s], row, strict=True)) for s, row in zip(scenarios, rewards, strict=True)
        ]
        return Table(rewards, totals)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@contextlib.asynccontextmanager
async def loopback(
    scorer: Any, card: ModelCard = CARD, **options: Any
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """A client of the app serving ``scorer``, on a loopback port (``client.make_url`` gives URLs)."""
    app = make_app(scorer, card, ServeOptions(**options))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def wait_until(condition: Any, seconds: float = 10.0) -> None:
    """Poll ``condition()`` on the loop until it holds."""
    for _ in range(int(seconds / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition never held")
