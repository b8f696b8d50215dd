"""OpenAIChatBackend: any OpenAI-compatible chat-completions endpoint (vLLM, SGLang, llama.cpp, OpenAI).

Requests run concurrently on one aiohttp session, at most ``concurrency`` at a time. 429, 408 and
5xx answers, timeouts, dropped connections and malformed replies are retried with exponential
backoff and full jitter (``Retry-After`` honoured), up to ``max_attempts`` in all; so is a reply
that the request's parser refuses (asked again with the next seed, since a server that honours the
seed would repeat itself; greedy decoding repeats itself anyway). Other 4xx answers fail that
request at once (a prompt too long for the model will not fit on a retry), and 401, 403 and 404
raise BackendError: every request would fail the same way. So does a service that cannot be
reached: after ``max_connection_failures`` attempts in a row without any HTTP response, every
request stops at once (a HealthBench run with thousands of judge requests fails in seconds, not
after every request's retries; see ``reachability``); the first such failure is logged once, as a
warning. The API key is read from the environment variable named by ``api_key_env`` when the
session opens; it is sent as a bearer token and never stored in the config, the backend's id or
any message. Request bodies are strict JSON: a NaN is never sent.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import random
import re
from collections.abc import Sequence
from typing import Any, Literal

import aiohttp
from yarl import URL

from lit_mrrml.backends.base import (
    BackendError,
    ChatBackend,
    ChatReply,
    ChatRequest,
    ErrorKind,
    OnReply,
    ReplyFormatError,
    Usage,
    parse_reply,
)
from lit_mrrml.backends.reachability import FailureStreak
from lit_mrrml.backends.retry import RetryPolicy, backoff_delay, parse_retry_after
from lit_mrrml.errors import InputError
from lit_mrrml.jsonio import NonFiniteJSONError, dumps, non_finite_paths

log = logging.getLogger(__name__)
FATAL_STATUS = {401: "the API key was refused", 403: "access denied", 404: "no such endpoint or model"}
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Retry(Exception):
    """A failed attempt: what went wrong, how long the server asked us to wait, and whether to try again."""

    def __init__(
        self, message: str, kind: ErrorKind = "request_failed", retry_after: float | None = None, final: bool = False
    ) -> None:
        super().__init__(message)
        self.kind, self.retry_after, self.final = kind, retry_after, final


class OpenAIChatBackend(ChatBackend):
    """Chat completions from an OpenAI-compatible HTTP service."""

    def __init__(
        self,
        model: str,
        base_url: str = "https://api.openai.com/v1",
        api_key_env: str | None = "OPENAI_API_KEY",
        concurrency: int = 16,
        timeout: float = 120.0,
        retry: RetryPolicy = RetryPolicy(),
        max_connection_failures: int | None = 20,
        max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens",
        send_seed: bool = True,
        json_mode: bool = True,
        extra_body: dict[str, Any] | None = None,
        jitter_seed: int | None = None,
    ) -> None:
        """
        Args:
            model: The model name the service serves (for vLLM, its ``--served-model-name``).
            base_url: The API root, up to and including ``/v1``; requests go to ``<base_url>/chat/completions``.
            api_key_env: Name of the environment variable holding the API key (never the key itself);
                null for a local server without authentication.
            concurrency: Most requests in flight at once.
            timeout: Seconds one attempt may take, connection included, before it is retried.
            retry: Attempts per request and the backoff between them.
            max_connection_failures: Stop the run once this many attempts in a row, over all requests,
                got no HTTP response at all (connection refused or reset, DNS errors, timeouts): every
                request in flight or waiting then stops and the run fails at once, instead of after
                every request's retries. Any HTTP response resets the count; null: never stop early.
            max_tokens_field: The request field for the length limit (``max_completion_tokens`` for
                OpenAI's reasoning models).
            send_seed: Send each request's seed, so that services that honour it reproduce replies.
            json_mode: Ask for ``response_format: json_object`` on requests that want JSON (turn
                off for servers that reject the field); replies are validated either way.
            extra_body: More fields for every request body (for example ``{"top_k": 20}`` for vLLM).
            jitter_seed: Seed of the backoff jitter (default: random).
        """
        super().__init__()
        check_api_key_env(api_key_env, f"model {model!r} at {URL(base_url).with_user(None)}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.model, self.api_key_env = model, api_key_env
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.concurrency, self.timeout = concurrency, timeout
        self.retry, self.max_connection_failures = retry, max_connection_failures
        self.streak = FailureStreak(self.url, max_connection_failures, retry.max_attempts, self._cancel_others)
        self.max_tokens_field, self.send_seed, self.json_mode = max_tokens_field, send_seed, json_mode
        self.extra_body = dict(extra_body or {})
        self._rng = random.Random(jitter_seed)
        self._session: aiohttp.ClientSession | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._requests: set[asyncio.Future[ChatReply]] = set()  # of every complete() in progress

    @property
    def id(self) -> str:
        return f"openai:{self.model}@{URL(self.base_url).with_user(None)}"

    @property
    def model_id(self) -> str:
        return f"openai:{self.model}"  # the same model behind another address gives the same replies

    def _api_key(self) -> str | None:
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env, "")
        if not key:
            raise BackendError(
                f"environment variable {self.api_key_env} is not set: export the API key there, "
                "or set api_key_env: null for a server without authentication"
            )
        return key

    async def _open(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is not None and self._loop is loop and not self._session.closed:
            return self._session
        key = self._api_key()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=self.concurrency)
        self._session = aiohttp.ClientSession(
            headers=headers,
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            json_serialize=functools.partial(dumps, what="request body"),  # strict JSON: NaN is an error
        )
        self._semaphore, self._loop = asyncio.Semaphore(self.concurrency), loop
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
        self.streak.reset()  # a new session may find the service up again

    async def complete(self, requests: Sequence[ChatRequest], on_reply: OnReply | None = None) -> list[ChatReply]:
        self.streak.check()
        session = await self._open()

        async def one(index: int, request: ChatRequest) -> ChatReply:
            try:
                reply = await self._complete_one(session, request)
            except asyncio.CancelledError:
                self.streak.check()  # cancelled by the stop: the caller gets its reason
                raise
            if on_reply is not None:
                on_reply(index, reply)
            return reply

        tasks = [asyncio.ensure_future(one(i, r)) for i, r in enumerate(requests)]
        self._requests.update(tasks)
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            # after a BackendError (or ctrl-C) the other requests must not go on in the background
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._requests.difference_update(tasks)

    def payload(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body of a request."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": request.message_dicts,
            self.max_tokens_field: request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
        }
        if self.send_seed and request.seed is not None:
            body["seed"] = request.seed
        if self.json_mode and request.json_mode:
            body["response_format"] = {"type": "json_object"}
        return {**body, **self.extra_body}

    async def _complete_one(self, session: aiohttp.ClientSession, request: ChatRequest) -> ChatReply:
        usage, body = Usage(), self.payload(request)
        failure, last_text = _Retry("no attempt made"), None
        for attempt in range(1, self.retry.max_attempts + 1):
            if attempt > 1:
                await asyncio.sleep(backoff_delay(self.retry, attempt - 1, self._rng, failure.retry_after))
                self.stats.retries += 1  # counted once made: a backoff cut short by a stop is no retry
            try:
                text, finish = await self._attempt(session, body, usage)
                value = parse_reply(request, text)
            except _Retry as err:
                failure = err
                if err.final:
                    break
            except ReplyFormatError as err:
                failure, last_text = _Retry(f"bad reply: {err}", kind="bad_reply"), text
                if "seed" in body:  # a server that honours the seed would send the same reply again
                    body = {**body, "seed": ((request.seed or 0) + attempt) & 0x7FFFFFFF}
            else:
                self.stats.replies += 1
                return ChatReply(text, value, attempts=attempt, usage=usage, finish_reason=finish)
            log.debug("attempt %d/%d at %s failed: %s", attempt, self.retry.max_attempts, self.url, failure)
        self.stats.replies += 1
        message = f"gave up after {attempt} attempt(s) at {self.url}: {failure}"
        return ChatReply(last_text, error=message, error_kind=failure.kind, attempts=attempt, usage=usage)

    async def _attempt(self, session: aiohttp.ClientSession, body: dict[str, Any], usage: Usage) -> tuple[str, str]:
        """One POST; returns (text, finish_reason) or raises _Retry / BackendError."""
        assert self._semaphore is not None
        async with self._semaphore:
            self.streak.check()  # stopped while this request waited for its turn
            self.stats.attempts += 1
            try:
                async with session.post(self.url, json=body) as response:
                    status, raw = response.status, await response.read()
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
            except NonFiniteJSONError:  # the same body would fail every attempt
                path, value = next(non_finite_paths(body))
                raise _Retry(
                    f"not sent: the request body holds {value} at {path}, which is not JSON", final=True
                ) from None
            except asyncio.TimeoutError:
                raise self._no_response(f"timed out after {self.timeout:g} s", "") from None
            except aiohttp.ClientConnectionError as err:
                raise self._no_response(f"{type(err).__name__}: {err}", "connection failed: ") from None
            except aiohttp.ClientError as err:  # a response came, but broken (a cut body, bad headers)
                self.streak.answered()
                raise _Retry(f"connection failed: {type(err).__name__}: {err}") from None
            self.streak.answered()  # the service answers, whatever the status
        if status in FATAL_STATUS:
            raise BackendError(
                f"HTTP {status} from {self.url} ({FATAL_STATUS[status]}; model {self.model!r}, "
                f"key from ${self.api_key_env or '<none>'}): {_error_message(raw)}"
            )
        if status == 429 or status == 408 or status >= 500:
            raise _Retry(f"HTTP {status}: {_error_message(raw)}", retry_after=retry_after)
        if status >= 400:  # this request is wrong (too long, bad field): retrying cannot help
            raise _Retry(f"HTTP {status} (not retried): {_error_message(raw)}", final=True)
        text, finish, reply_usage = read_completion(raw)
        usage.add(reply_usage)
        return text, finish

    def _no_response(self, error: str, reply_prefix: str) -> _Retry:
        """Count an attempt that got no HTTP response; the _Retry to raise (or BackendError at the limit).

        ``error`` goes into the warning and the final message; the request's own error, if it gives
        up, is ``reply_prefix + error``.
        """
        self.stats.unreachable += 1
        self.streak.failed(error)
        return _Retry(reply_prefix + error)

    def _cancel_others(self) -> None:
        """At the stop: every other request of every complete() in progress stops now (in flight,
        waiting for a slot or sleeping out a backoff)."""
        current = asyncio.current_task()
        for task in self._requests:
            if task is not current:
                task.cancel()


def check_api_key_env(name: str | None, backend: str) -> None:
    """Refuse an ``api_key_env`` that cannot be a variable name: most likely the key itself, never echoed."""
    if name is not None and not ENV_NAME.fullmatch(name):
        raise InputError(
            f"api_key_env ({backend}) must name the environment variable that holds the API key (letters, "
            "digits and _, not starting with a digit), not hold the key itself: export the key as, say, "
            "OPENAI_API_KEY and set api_key_env: OPENAI_API_KEY (the value given is not shown or saved; if it "
            "was a key, take it out of the config or command line)"
        )


def read_completion(raw: bytes) -> tuple[str, str, Usage]:
    """(content, finish_reason, usage) of a chat-completions reply body; raises _Retry if malformed."""
    try:
        data = json.loads(raw)
        choice = data["choices"][0]
        content = choice["message"]["content"]
        if not isinstance(content, str):
            raise TypeError(f"message content is {type(content).__name__}")
    except (ValueError, KeyError, IndexError, TypeError) as err:
        raise _Retry(f"malformed reply ({type(err).__name__}: {err}): {raw[:120]!r}") from None
    counts = data.get("usage") or {}
    usage = Usage(int(counts.get("prompt_tokens") or 0), int(counts.get("completion_tokens") or 0))
    return content, str(choice.get("finish_reason") or ""), usage


def _error_message(raw: bytes) -> str:
    try:
        error = json.loads(raw).get("error")
        message = error.get("message") if isinstance(error, dict) else error
        if message:
            return str(message)[:300]
    except (ValueError, AttributeError):
        pass
    return raw[:300].decode("utf-8", "replace") or "(empty body)"
