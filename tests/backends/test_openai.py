"""OpenAIChatBackend against a real loopback HTTP server that injects the faults real services produce."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from lit_mrrml.backends import BackendError, ChatRequest, OpenAIChatBackend, ReplyFormatError, RetryPolicy
from lit_mrrml.backends.structured import json_parser, require_field
from lit_mrrml.errors import InputError
from lit_mrrml.testing import ChatServer, FaultPlan
from tests.conftest import dead_url

FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)


def backend(server: ChatServer, **kwargs) -> OpenAIChatBackend:
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("api_key_env", None)
    return OpenAIChatBackend("rule-based", base_url=server.url, **kwargs)


def ask(client: OpenAIChatBackend, *requests: ChatRequest):
    async def go():
        try:
            return await client.complete(list(requests))
        finally:
            await client.aclose()

    return asyncio.run(go())


def hello(n: int = 0, **kwargs) -> ChatRequest:
    return ChatRequest.of([{"role": "user", "content": f"hello {n}"}], **kwargs)


def verdict(obj: dict) -> bool:
    return require_field(obj, "met", bool)


def test_a_plain_reply_carries_text_usage_and_the_request_fields():
    with ChatServer() as server:
        (reply,) = ask(backend(server, extra_body={"top_k": 5}), hello(1, seed=7, max_tokens=33, temperature=0.2))
        body = server.bodies[0]
    assert reply.ok and reply.text == "echo: hello 1" and reply.value == "echo: hello 1" and reply.attempts == 1
    assert reply.usage.prompt_tokens == 2 and reply.usage.completion_tokens == 3 and reply.finish_reason == "stop"
    assert body["model"] == "rule-based" and body["seed"] == 7 and body["max_tokens"] == 33 and body["top_k"] == 5
    assert body["temperature"] == 0.2 and "response_format" not in body


@pytest.mark.parametrize("fault", ["429", "500", "503", "malformed", "timeout"])
def test_recovers_from_each_transient_fault(fault):
    plan = FaultPlan(per_request=[fault, fault], hang_seconds=2.0)
    with ChatServer(faults=plan) as server:
        (reply,) = ask(backend(server, timeout=0.3), hello())
        assert server.faults_served[fault] == 2
    assert reply.ok and reply.attempts == 3 and reply.text == "echo: hello 0"


def test_a_slow_reply_within_the_timeout_is_waited_for_not_retried():
    with ChatServer(faults=FaultPlan(per_request=["slow"], slow_seconds=0.3)) as server:
        started = time.perf_counter()
        (reply,) = ask(backend(server, timeout=2.0), hello())
        assert server.requests == 1
    assert reply.ok and reply.attempts == 1 and time.perf_counter() - started >= 0.3


def test_gives_up_after_the_bounded_attempts_with_the_last_error():
    with ChatServer(faults=FaultPlan(per_request=["503"] * 10)) as server:
        (reply,) = ask(backend(server), hello())
        assert server.requests == FAST.max_attempts
    assert not reply.ok and reply.error_kind == "request_failed" and reply.attempts == FAST.max_attempts
    assert "gave up after 4 attempt(s)" in reply.error and "HTTP 503" in reply.error and "injected 503" in reply.error


def test_a_rejected_request_is_not_retried():
    with ChatServer(faults=FaultPlan(per_request=["400"])) as server:
        (reply,) = ask(backend(server), hello())
        assert server.requests == 1
    assert reply.error_kind == "request_failed" and reply.attempts == 1
    assert "HTTP 400 (not retried)" in reply.error and "maximum context length" in reply.error


def test_a_structured_reply_is_validated_retried_then_recorded():
    parse = json_parser(verdict)
    replier = lambda messages, body: json.dumps({"met": True, "explanation": "fine"})  # noqa: E731
    with ChatServer(replier, faults=FaultPlan(per_request=["bad_content"])) as server:
        (reply,) = ask(backend(server), hello(parse=parse, json_mode=True))
        assert server.bodies[0]["response_format"] == {"type": "json_object"}
    assert reply.ok and reply.value is True and reply.attempts == 2

    with ChatServer(faults=FaultPlan(per_request=["bad_content"] * 10)) as server:
        (reply,) = ask(backend(server), hello(parse=parse, json_mode=True))
    assert reply.error_kind == "bad_reply" and reply.attempts == FAST.max_attempts
    assert reply.text == "I cannot answer in JSON today." and "no JSON object" in reply.error


def test_a_bad_reply_is_asked_again_with_the_next_seed():
    parse = json_parser(verdict)
    replier = lambda messages, body: json.dumps({"met": True})  # noqa: E731
    with ChatServer(replier, faults=FaultPlan(per_request=["refusal", "bad_content"])) as server:
        (reply,) = ask(backend(server), hello(parse=parse, json_mode=True, seed=41))
        seeds = [body["seed"] for body in server.bodies]
    assert reply.ok and reply.attempts == 3
    assert seeds == [41, 42, 43]  # a server that honours the seed would send the same refusal again


def test_a_refused_api_key_fails_clearly_without_retrying_or_leaking(monkeypatch, caplog):
    monkeypatch.setenv("LIT_MRRML_TEST_KEY", "sk-wrong-123")
    caplog.set_level(logging.DEBUG)
    with ChatServer(api_key="sk-right") as server:
        client = backend(server, api_key_env="LIT_MRRML_TEST_KEY")
        with pytest.raises(BackendError, match="HTTP 401") as err:
            ask(client, hello())
        assert server.requests == 1
    text = f"{err.value} {client.id} {client!r} {caplog.text}"
    assert "LIT_MRRML_TEST_KEY" in str(err.value) and "sk-wrong-123" not in text


def test_the_api_key_comes_from_the_named_environment_variable(monkeypatch):
    monkeypatch.setenv("LIT_MRRML_TEST_KEY", "sk-right")
    with ChatServer(api_key="sk-right") as server:
        (reply,) = ask(backend(server, api_key_env="LIT_MRRML_TEST_KEY"), hello())
    assert reply.ok
    monkeypatch.delenv("LIT_MRRML_TEST_KEY")
    with ChatServer() as server, pytest.raises(BackendError, match="LIT_MRRML_TEST_KEY is not set"):
        ask(backend(server, api_key_env="LIT_MRRML_TEST_KEY"), hello())


def test_an_unreachable_service_fails_each_request_after_its_attempts():
    with ChatServer() as server:
        url = server.url
    client = OpenAIChatBackend("m", base_url=url, api_key_env=None, retry=FAST)
    (reply,) = ask(client, hello())
    assert reply.error_kind == "request_failed" and "connection failed" in reply.error


def test_concurrency_is_bounded_and_used():
    with ChatServer(latency=0.05) as server:
        started = time.perf_counter()
        replies = ask(backend(server, concurrency=4), *(hello(i) for i in range(16)))
        elapsed = time.perf_counter() - started
        assert server.max_in_flight == 4
    assert [r.text for r in replies] == [f"echo: hello {i}" for i in range(16)]  # in request order
    assert elapsed < 16 * 0.05 * 0.75  # four at a time, not one


def test_retry_after_is_honoured():
    with ChatServer(faults=FaultPlan(per_request=["429"], retry_after=0.3)) as server:
        client = backend(server, retry=RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=5.0))
        started = time.perf_counter()
        (reply,) = ask(client, hello())
    assert reply.ok and reply.attempts == 2 and time.perf_counter() - started >= 0.3


def test_on_reply_reports_each_reply_as_it_arrives():
    seen = []
    with ChatServer() as server:
        client = backend(server)

        async def go():
            try:
                return await client.complete([hello(0), hello(1)], lambda i, r: seen.append((i, r.text)))
            finally:
                await client.aclose()

        asyncio.run(go())
    assert sorted(seen) == [(0, "echo: hello 0"), (1, "echo: hello 1")]


def test_parse_errors_name_the_problem():
    parse = json_parser(verdict)
    with pytest.raises(ReplyFormatError, match="'met'"):
        parse('{"explanation": "x"}')
    with pytest.raises(ReplyFormatError, match="must be bool"):
        parse('{"met": "yes"}')


def test_an_unreachable_service_stops_the_run_after_the_consecutive_failure_limit(caplog):
    url = dead_url()
    patient = RetryPolicy(max_attempts=5, base_delay=60.0, max_delay=60.0)  # sleeping out one backoff: minutes
    client = OpenAIChatBackend("m", base_url=url, api_key_env=None, concurrency=4, retry=patient)
    assert client.max_connection_failures == 20  # the default
    caplog.set_level(logging.WARNING, logger="lit_mrrml")
    started = time.perf_counter()
    with pytest.raises(BackendError) as err:
        ask(client, *(hello(i) for i in range(200)))
    assert time.perf_counter() - started < 30
    assert client.stats.unreachable == 20 and 20 <= client.stats.attempts < 24  # 20 failed, at most 3 cut off
    assert client.stats.replies == 0 and client.stats.retries == 0  # no backoff was slept out
    message = str(err.value)
    assert message.startswith(f"cannot reach {url}/chat/completions: 20 attempts in a row got no response ")
    assert "(max_connection_failures; the first: ClientConnectorError: Cannot connect to host" in message
    assert message.endswith("finished work is saved: rerun the same command once the service answers")
    assert "\n" not in message
    warnings = [r for r in caplog.records if r.name.startswith("lit_mrrml") and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert text.startswith(f"cannot reach {url}/chat/completions: ClientConnectorError: Cannot connect to host")
    assert text.endswith("; retrying, the run stops after 20 consecutive failures")


def test_requests_still_waiting_and_later_calls_stop_with_the_same_error():
    client = OpenAIChatBackend("m", base_url=dead_url(), api_key_env=None, concurrency=2, max_connection_failures=3)

    async def go():
        try:
            # two complete() calls at once: the stop in one cancels the other's requests too
            results = await asyncio.gather(
                client.complete([hello(i) for i in range(50)]),
                client.complete([hello(i) for i in range(50, 100)]),
                return_exceptions=True,
            )
            with pytest.raises(BackendError, match="3 attempts in a row"):
                await client.complete([hello(100)])  # stopped until aclose()
            return results
        finally:
            await client.aclose()

    first, second = asyncio.run(go())
    assert isinstance(first, BackendError) and second is first
    assert client.stats.unreachable == 3


def test_any_http_response_resets_the_count_of_consecutive_failures(caplog):
    # two dropped connections, then an answer, over and over: never 3 failures in a row
    plan = FaultPlan(script=["drop", "drop", "ok"] * 10)
    caplog.set_level(logging.WARNING, logger="lit_mrrml")
    with ChatServer(faults=plan) as server:
        retry = RetryPolicy(max_attempts=30, base_delay=0.001, max_delay=0.01)
        client = backend(server, concurrency=1, retry=retry, max_connection_failures=3)
        replies = ask(client, *(hello(i) for i in range(10)))
        assert server.faults_served == {"drop": 20, "ok": 10}
    assert all(r.ok for r in replies) and client.stats.unreachable == 20
    assert sum("cannot reach" in r.getMessage() for r in caplog.records) == 1  # once, not once per streak
    with ChatServer(faults=FaultPlan(script=["drop", "drop", "500", "drop", "drop", "drop"])) as server:
        client = backend(server, concurrency=1, retry=retry, max_connection_failures=3)
        with pytest.raises(BackendError, match="3 attempts in a row got no response") as err:
            ask(client, hello())
        assert server.requests == 6  # the 500 reset the count: stopped at the third drop after it
    assert "(max_connection_failures; the first: ServerDisconnectedError: Server disconnected)" in str(err.value)


def test_no_limit_retries_every_request_to_its_last_attempt(caplog):
    client = OpenAIChatBackend("m", base_url=dead_url(), api_key_env=None, retry=FAST, max_connection_failures=None)
    caplog.set_level(logging.WARNING, logger="lit_mrrml")
    replies = ask(client, *(hello(i) for i in range(10)))
    assert all(r.error_kind == "request_failed" and r.attempts == 4 for r in replies)
    assert client.stats.unreachable == 40
    (warning,) = [r.getMessage() for r in caplog.records if "cannot reach" in r.getMessage()]
    assert warning.endswith("; retrying, each request gives up after 4 attempt(s)")
    with pytest.raises(ValueError, match="max_connection_failures must be at least 1"):
        OpenAIChatBackend("m", api_key_env=None, max_connection_failures=0)


def test_timeouts_count_as_connection_failures():
    with ChatServer(faults=FaultPlan(per_request=["timeout"] * 5, hang_seconds=1.0)) as server:
        client = backend(server, timeout=0.2, concurrency=2, max_connection_failures=2)
        with pytest.raises(
            BackendError, match=r"2 attempts in a row got no response .*the first: timed out after 0.2 s"
        ):
            ask(client, hello(0), hello(1), hello(2))
    assert client.stats.unreachable == 2


@pytest.mark.parametrize("value", ["sk-proj-abc123SECRET", "my key", "1PASSWORD", ""])
def test_an_api_key_env_that_is_not_a_variable_name_is_refused_without_echoing_it(value):
    with pytest.raises(InputError) as err:
        OpenAIChatBackend("m", api_key_env=value)
    message = str(err.value)
    assert message.startswith(
        "api_key_env (model 'm' at https://api.openai.com/v1) must name the environment variable that holds the API key"
    )
    assert "not hold the key itself" in message and "\n" not in message
    assert value == "" or value not in message
    for name in ("OPENAI_API_KEY", "_KEY", "vllm_key_2"):
        assert OpenAIChatBackend("m", api_key_env=name).api_key_env == name


def test_request_bodies_are_strict_json_a_nan_is_never_sent():
    with ChatServer() as server:
        (bad,) = ask(backend(server, extra_body={"top_k": float("nan")}), hello())
        (worse,) = ask(backend(server), hello(temperature=float("inf")))
        assert server.requests == 0
    assert bad.error_kind == "request_failed" and bad.attempts == 1  # the same body would fail again
    assert bad.error.endswith("/chat/completions: not sent: the request body holds nan at top_k, which is not JSON")
    assert worse.error.endswith("not sent: the request body holds inf at temperature, which is not JSON")
