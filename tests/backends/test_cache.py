"""CachedBackend: replies on disk, served again without a request; failures asked again."""

from __future__ import annotations

import asyncio
import json

from lit_mrrml.backends import CachedBackend, ChatRequest, OpenAIChatBackend, RetryPolicy
from lit_mrrml.testing import ChatServer, FaultPlan


def run(backend, requests):
    async def go():
        try:
            return await backend.complete(requests)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def requests(n: int, **kwargs) -> list[ChatRequest]:
    return [ChatRequest.of([{"role": "user", "content": f"q{i}"}], seed=i, **kwargs) for i in range(n)]


def client(server: ChatServer) -> OpenAIChatBackend:
    return OpenAIChatBackend("m", base_url=server.url, api_key_env=None, retry=RetryPolicy(2, 0.0, 0.0))


def test_a_rerun_is_served_from_the_cache(tmp_path):
    path = tmp_path / "cache.jsonl"
    with ChatServer() as server:
        first = run(CachedBackend(client(server), path), requests(3))
        cached = CachedBackend(client(server), path)
        again = run(cached, requests(4))
        assert server.requests == 4  # three from the first run, only the new one from the second
    assert [r.text for r in again[:3]] == [r.text for r in first] and all(r.cached for r in again[:3])
    assert not again[3].cached and cached.hits == 3
    assert len(path.read_text().splitlines()) == 4


def test_other_settings_are_other_keys(tmp_path):
    with ChatServer() as server:
        run(CachedBackend(client(server), tmp_path / "c.jsonl"), requests(2))
        run(CachedBackend(client(server), tmp_path / "c.jsonl"), requests(2, temperature=0.5))
        assert server.requests == 4


def test_failures_are_logged_for_their_tokens_and_asked_again(tmp_path):
    path = tmp_path / "c.jsonl"
    with ChatServer(faults=FaultPlan(per_request=["bad_content", "bad_content"])) as server:
        parse = lambda text: json.loads(text)  # noqa: E731  (the fault's text is not JSON)
        cache = CachedBackend(client(server), path)
        (reply,) = run(cache, requests(1, parse=parse))
        assert not reply.ok
        (reply,) = run(CachedBackend(client(server), path), requests(1))
        assert reply.ok and server.requests == 3
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert "error" in records[0] and "error" not in records[1]
    assert CachedBackend(client(server), path).tokens_used().completion_tokens == sum(
        r["usage"]["completion"] for r in records
    )
