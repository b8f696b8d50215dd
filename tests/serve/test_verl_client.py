"""``lit_mrrml.serve.verl``, the function a verl run points at, against a live loopback server."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from lit_mrrml.serve import verl
from tests.serve.fakes import FakeScorer, loopback, user, wait_until


def test_compute_score_and_its_batch_form_return_what_verl_reads(monkeypatch):
    fake = FakeScorer()
    extra = {"messages": tuple(user("Chest pain?")), "scenario": "emergency_referrals", "index": object()}

    async def body() -> tuple[Any, Any]:
        async with loopback(fake) as client:
            monkeypatch.setenv(verl.URL_ENV, str(client.make_url("/")))
            one = await asyncio.to_thread(verl.compute_score, "medical", "abcd", None, extra)
            batch = await asyncio.to_thread(
                verl.compute_score_batch, ["medical", None], ["abcd", "ab"], [None, 3], [extra, {"messages": user("Q")}]
            )
            return one, batch

    one, batch = asyncio.run(body())
    assert one == {"score": 8.5, "reward/accuracy": 4.0, "reward/safety": 10.0}
    assert batch == [one, {"score": 6.0, "reward/accuracy": 2.0, "reward/safety": 10.0}]
    assert fake.calls[0] == ([user("Chest pain?")], ["abcd"], ["emergency_referrals"])


def test_a_refused_rollout_raises_with_the_servers_reason(monkeypatch):
    async def body() -> None:
        async with loopback(FakeScorer()) as client:
            monkeypatch.setenv(verl.URL_ENV, str(client.make_url("/verl/score")))  # the full URL works too
            bad = {"messages": user("Q"), "scenario": "emergency"}
            with pytest.raises(
                ValueError, match=r"refused the request: extra_info.scenario: unknown scenario 'emergency'"
            ):
                await asyncio.to_thread(verl.compute_score, "m", "a", None, bad)

    asyncio.run(body())
    with pytest.raises(ValueError, match="extra_info has no 'messages'"):
        verl.compute_score("m", "a", None, {"question": "Q"})
    monkeypatch.delenv(verl.URL_ENV)
    with pytest.raises(RuntimeError, match=f"{verl.URL_ENV} is not set"):
        verl.compute_score("m", "a", None, {"messages": user("Q")})


def test_a_busy_server_is_retried_after_its_retry_after(monkeypatch):
    gate = threading.Event()
    fake = FakeScorer(gate=gate)

    async def body() -> tuple[dict[str, float], float]:
        async with loopback(fake, max_concurrency=1, batch_window_ms=0) as client:
            monkeypatch.setenv(verl.URL_ENV, str(client.make_url("/")))
            held = asyncio.ensure_future(
                client.post("/score", json={"items": [{"messages": user("Q"), "response": "x"}]})
            )
            await wait_until(fake.entered.is_set)
            start = time.monotonic()
            retried = asyncio.ensure_future(
                asyncio.to_thread(verl.compute_score, "m", "ab", None, {"messages": user("Q")})
            )
            await asyncio.sleep(0.3)  # its first try got the 503; it waits out Retry-After (1 s)
            gate.set()
            assert (await held).status == 200
            return await retried, time.monotonic() - start

    try:
        result, seconds = asyncio.run(body())
        assert result == {"score": 6.0, "reward/accuracy": 2.0, "reward/safety": 10.0} and seconds >= 0.95
    finally:
        gate.set()
    assert len(fake.calls) == 2


def test_an_unreachable_server_raises_after_its_retries(monkeypatch):
    from tests.conftest import dead_url

    monkeypatch.setenv(verl.URL_ENV, dead_url().removesuffix("/v1"))
    monkeypatch.setenv(verl.RETRIES_ENV, "1")
    with pytest.raises(RuntimeError, match="cannot reach the reward server"):
        verl.compute_score("m", "a", None, {"messages": user("Q")})
