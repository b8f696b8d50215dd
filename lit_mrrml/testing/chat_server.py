"""ChatServer: a real HTTP server on loopback that speaks the chat-completions protocol.

It answers ``POST /v1/chat/completions`` with a ``replier`` (messages in, text out; see
``GenerationRules``) and injects faults on demand, so that clients are tested against the
failures real services produce. The kinds of fault (``FAULT_KINDS`` holds the same list, which
``--help`` shows):

- ``ok``: no fault, the replier's answer;
- ``429``, ``500``, ``503``: that status with an OpenAI-style error body (429 with ``Retry-After``);
- ``400``: a request the service refuses ("context too long"), which no retry can fix;
- ``timeout``: the reply comes after ``hang_seconds``, past any sane client timeout;
- ``drop``: the connection is closed without any HTTP response (a crashed or restarting service);
- ``malformed``: status 200 with a body that is not a chat completion;
- ``bad_content``: a well-formed completion whose content is not the JSON that was asked for;
- ``refusal``: a well-formed completion whose content is a refusal instead of the task's output;
- ``slow``: a correct reply after ``slow_seconds``.

A ``FaultPlan`` says which: ``per_request`` applies to the first attempts of every distinct
request (its body but the seed, which a client may change on a retry; ``["429", "500"]``: each
request fails twice, then succeeds), ``script`` to the next
requests in order of arrival, ``rates`` at random (seeded). ``python -m lit_mrrml.testing``
runs one in the foreground (for benchmarks and for dry runs of a generation config); its flags
(``lit_mrrml.testing.cli``) build the FaultPlan.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Replier = Callable[[list[dict[str, str]], dict[str, Any]], str]  # (messages, request body) -> reply text
FAULT_KINDS = {
    "ok": "no fault: the replier's answer",
    "400": "HTTP 400, a request the service refuses (context too long); no retry can fix it",
    "429": "HTTP 429 with Retry-After (--retry-after)",
    "500": "HTTP 500 with an OpenAI-style error body",
    "503": "HTTP 503 with an OpenAI-style error body",
    "timeout": "the reply comes after --hang-seconds, past any sane client timeout",
    "drop": "the connection is closed without any HTTP response",
    "malformed": "status 200 with a body that is not a chat completion",
    "bad_content": "a well-formed completion whose content is not the JSON that was asked for",
    "refusal": "a well-formed completion whose content is a refusal instead of the task's output",
    "slow": "a correct reply after --slow-seconds",
}
FAULTS = tuple(FAULT_KINDS)
REFUSAL = "I'm sorry, but I can't help with that request."


@dataclass
class FaultPlan:
    """Which requests fail, and how (the kinds and what each does: ``FAULT_KINDS``)."""

    per_request: list[str] = field(default_factory=list)
    script: list[str] = field(default_factory=list)
    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    hang_seconds: float = 30.0
    slow_seconds: float = 0.5
    retry_after: float = 0.0  # the Retry-After of a 429, in seconds
    models: list[str] | None = None  # only requests for these models get faults (default: all)

    def __post_init__(self) -> None:
        unknown = {*self.per_request, *self.script, *self.rates} - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}; known: {FAULTS}")
        outside = sorted(kind for kind, rate in self.rates.items() if not 0.0 <= rate <= 1.0)  # NaN included
        if outside:
            raise ValueError(f"the rates of {outside} must be shares in [0, 1]")
        if sum(self.rates.values()) > 1.0 + 1e-9:  # the tolerance lets 0.1 + 0.2 + 0.7 through
            raise ValueError(f"the rates add up to {sum(self.rates.values()):g}, more than 1")
        self._rng = random.Random(self.seed)
        self._seen: Counter[str] = Counter()

    def choose(self, body_key: str, model: str | None = None) -> str:
        """The fault for this arrival of a request with this body hash (for this model)."""
        if self.models is not None and model not in self.models:
            return "ok"
        attempt = self._seen[body_key]
        self._seen[body_key] += 1
        if attempt < len(self.per_request):
            return self.per_request[attempt]
        if self.script:
            return self.script.pop(0)
        draw = self._rng.random()
        for kind, rate in self.rates.items():
            if draw < rate:
                return kind
            draw -= rate
        return "ok"


def echo_replier(messages: list[dict[str, str]], body: dict[str, Any]) -> str:
    """Replies with the last message, or a JSON object echoing it when JSON was asked for."""
    last = messages[-1]["content"] if messages else ""
    return json.dumps({"echo": last}) if body.get("response_format") else f"echo: {last}"


class ChatServer:
    """An aiohttp chat-completions server in a background thread: ``with ChatServer(...) as server:``."""

    def __init__(
        self,
        replier: Replier = echo_replier,
        faults: FaultPlan | None = None,
        latency: float = 0.0,
        api_key: str | None = None,
        model: str = "rule-based",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.replier, self.faults, self.latency = replier, faults or FaultPlan(), latency
        self.api_key, self.model, self.host, self.port = api_key, model, host, port
        self.requests = 0
        self.faults_served: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = self.max_in_flight = 0
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The base URL to give a client (``http://127.0.0.1:<port>/v1``)."""
        return f"http://{self.host}:{self.port}/v1"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_get("/v1/models", self._models)
        return app

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self.requests += 1
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        raw = await request.read()
        try:
            body = json.loads(raw)
            messages = body["messages"]
        except (ValueError, KeyError, TypeError):
            return _error(400, "the body must be JSON with a 'messages' list", "invalid_request_error")
        with self._lock:
            self.bodies.append(body)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fault = self.faults.choose(request_key(body), body.get("model"))
            self.faults_served[fault] += 1
        try:
            if fault == "drop":
                return _drop(request)
            return await self._reply(fault, body, messages)
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _reply(self, fault: str, body: dict[str, Any], messages: list[dict[str, str]]) -> web.StreamResponse:
        delay = {"timeout": self.faults.hang_seconds, "slow": self.faults.slow_seconds}.get(fault, self.latency)
        if delay:
            await asyncio.sleep(delay)
        if fault in ("429", "500", "503"):
            headers = {"Retry-After": f"{self.faults.retry_after:g}"} if fault == "429" else {}
            return _error(int(fault), f"injected {fault}", "server_error", headers)
        if fault == "400":
            return _error(400, "injected 400: this model's maximum context length is exceeded", "invalid_request_error")
        if fault == "malformed":
            return web.Response(status=200, text='{"choices": [', content_type="application/json")
        canned = {"bad_content": "I cannot answer in JSON today.", "refusal": REFUSAL}
        text = canned[fault] if fault in canned else self.replier(messages, body)
        return web.json_response(completion(self.model, text, messages))

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    def start(self) -> ChatServer:
        """Start serving in a daemon thread; returns once the port is bound."""
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="chat-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the chat server did not start within 10 s")
        return self

    def stop(self) -> None:
        if self._loop is None or self._runner is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = self._runner = None

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def request_key(body: dict[str, Any]) -> str:
    """What makes two arrivals the same request: the body without its seed (a retry may change it)."""
    fields = {k: v for k, v in body.items() if k != "seed"}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()


def completion(model: str, text: str, messages: list[dict[str, str]]) -> dict[str, Any]:
    """A chat.completion body, with word counts standing in for token counts."""
    prompt_tokens = sum(len(m.get("content", "").split()) for m in messages)
    return {
        "id": f"chatcmpl-{hashlib.sha1(text.encode()).hexdigest()[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(text.split()),
            "total_tokens": prompt_tokens + len(text.split()),
        },
    }


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"error": {"message": message, "type": kind, "code": status}}
    return web.json_response(body, status=status, headers=headers)


def _drop(request: web.Request) -> web.Response:
    """Close the connection before any byte of a response: the client sees a disconnect, not a status."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)  # never sent: aiohttp writes nothing to a closed transport
