"""The server on loopback with a fake scorer: every endpoint's shape, batching, limits and failures."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from lit_mrrml.serve.app import BATCHER
from tests.serve.fakes import FakeScorer, loopback, user, wait_until

CHATML_PROMPT = (
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nChest pain?<|im_end|>\n<|im_start|>assistant\n"
)
GOOD = {"items": [{"messages": user("Hi?"), "response": "ok"}]}


def test_health_names_the_model_its_dimensions_and_scenarios():
    async def body() -> None:
        async with loopback(FakeScorer()) as client:
            response = await client.get("/health")
            assert response.status == 200
            assert await response.json() == {
                "status": "ok",
                "model": "fake",
                "dimensions": ["accuracy", "safety"],
                "scenarios": ["emergency_referrals", "chronic_care"],
            }

    asyncio.run(body())


def test_score_answers_each_rows_rewards_and_scenario_total():
    fake = FakeScorer()
    items = [
        {"messages": user("Chest pain?"), "response": "abcd", "scenario": "emergency_referrals"},
        {"messages": [{"role": "system", "content": "Be kind."}, *user("Cough?")], "response": "xy"},
        {"messages": user("Diabetes?"), "response": "abc", "scenario": None},
    ]

    async def body() -> None:
        async with loopback(fake) as client:
            response = await client.post("/score", json={"items": items})
            assert response.status == 200
            assert await response.json() == {
                "dimensions": ["accuracy", "safety"],
                "rewards": [[4.0, 10.0], [2.0, 20.0], [3.0, 10.0]],
                "totals": [0.25 * 4 + 0.75 * 10, 11.0, 6.5],
            }

    asyncio.run(body())
    [(prompts, responses, scenarios)] = fake.calls
    assert prompts[1] == [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Cough?"}]
    assert responses == ["abcd", "xy", "abc"] and scenarios == ["emergency_referrals", None, None]


def test_get_reward_speaks_openrlhfs_remote_reward_model_shape():
    """OpenRLHF posts query (prompt + response), prompts and labels, and reads rewards, scores and extra_logs."""
    fake = FakeScorer()
    request = {
        "query": [CHATML_PROMPT + "Call 911.<|im_end|>", "Is it urgent? Yes.<|endoftext|>"],
        "prompts": [CHATML_PROMPT, "Is it urgent?"],
        "labels": ["emergency_referrals", '{"scenario": "chronic_care"}'],
    }

    async def body() -> dict[str, Any]:
        async with loopback(fake) as client:
            response = await client.post("/get_reward", json=request)
            assert response.status == 200
            return await response.json()

    reply = asyncio.run(body())
    assert set(reply) == {"rewards", "scores", "extra_logs"}
    assert reply["rewards"] == reply["scores"] == [0.25 * 9 + 0.75 * 20, 5.0]
    assert reply["extra_logs"] == {"reward/accuracy": [9.0, 5.0], "reward/safety": [20.0, 10.0]}
    [(prompts, responses, scenarios)] = fake.calls
    assert prompts == [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Chest pain?"}],
        [{"role": "user", "content": "Is it urgent?"}],
    ]
    assert responses == ["Call 911.", " Yes."]  # the turn's end and the model's EOS are cut
    assert scenarios == ["emergency_referrals", "chronic_care"]


def test_get_reward_takes_the_messages_from_a_label_object():
    fake = FakeScorer()
    label = {"scenario": None, "messages": [{"role": "system", "content": "S"}, *user("Q?")]}

    async def body() -> None:
        async with loopback(fake) as client:
            response = await client.post(
                "/get_reward", json={"query": ["PROMPT ans"], "prompts": ["PROMPT"], "labels": [label]}
            )
            assert (await response.json())["rewards"] == [0.5 * 4 + 0.5 * 20]

    asyncio.run(body())
    assert fake.calls[0][0] == [label["messages"]] and fake.calls[0][1] == [" ans"]


def test_verl_score_one_rollout_and_a_batch():
    extra = {"messages": user("Chest pain?"), "scenario": "emergency_referrals"}
    rollout = {"data_source": "medical", "solution_str": "abcd", "ground_truth": None, "extra_info": extra}

    async def body() -> None:
        async with loopback(FakeScorer()) as client:
            one = await (await client.post("/verl/score", json=rollout)).json()
            assert one == {"score": 8.5, "reward/accuracy": 4.0, "reward/safety": 10.0}
            plain = {"solution_str": "ab", "extra_info": {"messages": user("Q")}, "index": 7}
            batch = await (await client.post("/verl/score", json={"batch": [rollout, plain]})).json()
            assert batch == {"results": [one, {"score": 6.0, "reward/accuracy": 2.0, "reward/safety": 10.0}]}

    asyncio.run(body())


def items(**changes: Any) -> dict[str, Any]:
    """A /score body of one item: GOOD's, with ``changes`` (a None value drops the key)."""
    item = {**GOOD["items"][0], **changes}
    return {"items": [{k: v for k, v in item.items() if v is not None}]}


def openrlhf(**changes: Any) -> dict[str, Any]:
    return {"query": ["P a"], "prompts": ["P"], **changes}


ASSISTANT_LAST = [*user("Q"), {"role": "assistant", "content": "A"}]
BAD_REQUESTS = [
    ("/score", b"{", "the body is not JSON: Expecting property name"),
    ("/score", b"\xff\xfe", "the body is not UTF-8 text"),
    ("/score", b"[]", "body: expected an object, got an array"),
    ("/score", {}, "items: missing"),
    ("/score", {"items": {}}, "items: expected an array, got an object"),
    ("/score", {"items": []}, "items: empty; give at least one item"),
    ("/score", {"items": GOOD["items"] * 5}, "items: 5 items, more than this server's --max_items 4; split"),
    ("/score", items(scenarios="x"), "items[0].scenarios: unknown key; did you mean 'scenario'?"),
    ("/score", items(response=3), "items[0].response: expected a string, got a number"),
    ("/score", {"items": [{"messages": user("Q")}]}, "items[0].response: missing; given: ['messages']"),
    ("/score", items(messages=[]), "items[0].messages: empty; give the chat messages"),
    ("/score", items(messages=[{"content": "Q"}]), "items[0].messages[0].role: missing; given: ['content']"),
    ("/score", items(messages=[{"role": "user", "content": 1}]), "items[0].messages[0].content: expected a string"),
    ("/score", items(messages=ASSISTANT_LAST), "items[0].messages[1].role: the prompt must end with the user's turn"),
    ("/score", items(scenario="emergency_referals"),
     "items[0].scenario: unknown scenario 'emergency_referals'; did you mean 'emergency_referrals'?"),
    ("/score", items(scenario=5), "items[0].scenario: expected a string or null, got a number"),
    ("/get_reward", {"query": ["P a"]}, "prompts: missing; given: ['query']"),
    ("/get_reward", {"query": []}, "query: empty"),
    ("/get_reward", openrlhf(query="P a"), "query: expected an array, got a string"),
    ("/get_reward", openrlhf(query=["P a", "P b"]), "prompts: 1 prompts for 2 queries"),
    ("/get_reward", openrlhf(prompts=["Q"]), "query[0]: does not start with prompts[0]"),
    ("/get_reward", openrlhf(labels=["a", "b"]), "labels: 2 labels for 1 queries"),
    ("/get_reward", openrlhf(labels=["chronic"]), "labels[0]: unknown scenario 'chronic'"),
    ("/get_reward", openrlhf(labels=["{oops"]), "labels[0]: starts with '{' but is not"),
    ("/get_reward", openrlhf(labels=[{"scenario": 1}]), "labels[0].scenario: expected"),
    ("/get_reward", {"query": ["<|im_start|>user\nHi a"], "prompts": ["<|im_start|>user\nHi"]},
     "prompts[0]: looks like a ChatML prompt but does not read as its turns"),
    ("/verl/score", {"solution_str": "a"}, "extra_info: missing; given: ['solution_str']"),
    ("/verl/score", {"solution_str": "a", "extra_info": {}}, "extra_info.messages: missing"),
    ("/verl/score", {"batch": []}, "batch: empty"),
    ("/verl/score", {"batch": [{"solution_str": "a", "extra_info": {"messages": user("Q")}}, {"solution_str": None}]},
     "batch[1].solution_str: expected a string, got null"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "reason"), BAD_REQUESTS, ids=[r for _, _, r in BAD_REQUESTS])
def test_a_bad_request_gets_a_400_with_its_reason_and_the_server_goes_on(path, body, reason):
    fake = FakeScorer()

    async def check() -> None:
        async with loopback(fake, max_items=4) as client:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            response = await client.post(path, data=data)
            assert response.status == 400
            assert reason in (await response.json())["error"]
            assert (await client.post("/score", json=GOOD)).status == 200

    asyncio.run(check())
    assert len(fake.calls) == 1  # the bad request never reached the scorer


def test_unknown_routes_methods_and_oversized_bodies_get_json_errors():
    async def body() -> None:
        async with loopback(FakeScorer(), max_body_bytes=1000) as client:
            missing = await client.post("/v1/score", json=GOOD)
            assert missing.status == 404 and "POST /v1/score: 404: Not Found" in (await missing.json())["error"]
            wrong = await client.get("/score")
            assert wrong.status == 405 and wrong.headers["Allow"] == "POST" and "error" in await wrong.json()
            big = await client.post("/score", data=b"x" * 2000)
            assert big.status == 413 and "Maximum request body size 1000 exceeded" in (await big.json())["error"]
            assert (await client.post("/score", json=GOOD)).status == 200

    asyncio.run(body())


def test_the_scorer_raising_is_a_500_with_its_reason_and_the_server_goes_on():
    async def body() -> None:
        async with loopback(FakeScorer(fail_on="boom")) as client:
            response = await client.post("/score", json={"items": [{"messages": user("Q"), "response": "boom"}]})
            assert response.status == 500
            assert await response.json() == {"error": "the scorer failed: RuntimeError: cannot score 'boom'"}
            assert (await client.post("/score", json=GOOD)).status == 200

    asyncio.run(body())


@pytest.mark.parametrize(
    ("table", "reason"),
    [
        (([[1.0, float("nan")]], [1.0]), "the scorer returned NaN or infinite rewards"),
        (([[1.0, 2.0]], [1.0, 2.0]), "the scorer returned 1 reward rows and 2 totals for 1 rows of 2 dimensions"),
        (([[1.0]], [1.0]), "for 1 rows of 2 dimensions"),
    ],
)
def test_a_scorer_answering_what_is_not_scores_is_a_500(table, reason):
    async def body() -> None:
        async with loopback(lambda prompts, responses, scenarios: FakeTable(*table)) as client:
            response = await client.post("/score", json=GOOD)
            assert response.status == 500 and reason in (await response.json())["error"]

    asyncio.run(body())


class FakeTable:
    def __init__(self, rewards: Any, totals: Any) -> None:
        self.rewards, self.totals = rewards, totals


def test_concurrent_requests_within_the_window_share_one_scorer_call():
    fake = FakeScorer()
    first = {"items": [{"messages": user("Q1"), "response": "a"}]}

    async def body() -> None:
        async with loopback(fake, batch_window_ms=300) as client:
            one, two = await asyncio.gather(client.post("/score", json=first), client.post("/get_reward", json={
                "query": ["Q2bb", "Q3ccc"], "prompts": ["Q2", "Q3"]}))  # fmt: skip
            assert (await one.json())["rewards"] == [[1.0, 10.0]]
            assert (await two.json())["extra_logs"]["reward/accuracy"] == [2.0, 3.0]

    asyncio.run(body())
    assert len(fake.calls) == 1 and sorted(fake.calls[0][1]) == ["a", "bb", "ccc"]


def test_a_request_larger_than_max_batch_size_is_scored_in_several_calls_in_order():
    fake = FakeScorer()
    items = [{"messages": user("Q"), "response": "x" * n} for n in range(1, 6)]

    async def body() -> None:
        async with loopback(fake, max_batch_size=2, batch_window_ms=0) as client:
            reply = await (await client.post("/score", json={"items": items})).json()
            assert [r[0] for r in reply["rewards"]] == [1.0, 2.0, 3.0, 4.0, 5.0]

    asyncio.run(body())
    assert [len(call[1]) for call in fake.calls] == [2, 2, 1]


def test_a_failing_request_batched_with_others_fails_alone():
    fake = FakeScorer(fail_on="boom")

    async def body() -> None:
        async with loopback(fake, batch_window_ms=300) as client:
            bad, good = await asyncio.gather(
                client.post("/score", json={"items": [{"messages": user("Q"), "response": "boom"}]}),
                client.post("/score", json={"items": [{"messages": user("Q"), "response": "fine"}]}),
            )
            assert bad.status == 500 and good.status == 200
            assert (await good.json())["rewards"] == [[4.0, 10.0]]

    asyncio.run(body())
    assert [call[1] for call in fake.calls] == [["boom", "fine"], ["boom"], ["fine"]]


def test_past_max_concurrency_a_request_gets_a_503_until_others_finish():
    gate = threading.Event()
    fake = FakeScorer(gate=gate)

    async def body() -> None:
        async with loopback(fake, max_concurrency=2, batch_window_ms=0) as client:
            batcher = client.server.app[BATCHER]
            held = [asyncio.ensure_future(client.post("/score", json=GOOD)) for _ in range(2)]
            await wait_until(lambda: batcher.in_flight == 2 and fake.entered.is_set())
            refused = await client.post("/score", json=GOOD)
            assert refused.status == 503 and refused.headers["Retry-After"] == "1"
            assert "busy: 2 requests in flight, this server's --max_concurrency" in (await refused.json())["error"]
            health = await client.get("/health")  # the loop is free while the scorer works
            assert health.status == 200
            gate.set()
            assert [r.status for r in await asyncio.gather(*held)] == [200, 200]
            assert (await client.post("/score", json=GOOD)).status == 200

    try:
        asyncio.run(body())
    finally:
        gate.set()
