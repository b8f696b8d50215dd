"""OpenAIChatBackend: any OpenAI-compatible chat-completions endpoint (vLLM, SGLang, llama.cpp, OpenAI).

Requests run concurrently on one aiohttp session, at most ``concurrency`` at a time. 429, 408 and
5xx answers, timeouts, dropped connections and malformed replies are retried with exponential
backoff and full jitter (``Retry-After`` honoured), up to ``max_attempts`` in all; so is a reply
that the request's parser refuses. Other 4xx answers fail that request at once (a prompt too long
for the model will not fit on a retry), and 401, 403 and 404 raise BackendError: every request
would fail the same way. The API key is read from the environment variable named by
``api_key_env`` when the session opens; it is sent as a bearer token and never stored in the
config, the backend's id or any message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
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
from lit_mrrml.backends.retry import RetryPolicy, backoff_delay, parse_retry_after

log = logging.getLogger(__name__)
FATAL_STATUS = {401: "the API key was refused", 403: "access denied", 404: "no such endpoint or model"}


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
            max_tokens_field: The request field for the length limit (``max_completion_tokens`` for
                OpenAI's reasoning models).
            send_seed: Send each request's seed, so that services that honour it reproduce replies.
            json_mode: Ask for ``response_format: json_object`` on requests that want JSON (turn
                off for servers that reject the field); replies are validated either way.
            extra_body: More fields for every request body (for example ``{"top_k": 20}`` for vLLM).
            jitter_seed: Seed of the backoff jitter (default: random).
        """
        super().__init__()
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.model, self.api_key_env = model, api_key_env
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.concurrency, self.timeout = concurrency, timeout
        self.retry = retry
        self.max_tokens_field, self.send_seed, self.json_mode = max_tokens_field, send_seed, json_mode
        self.extra_body = dict(extra_body or {})
        self._rng = random.Random(jitter_seed)
        self._session: aiohttp.ClientSession | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

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
            headers=headers, connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout)
        )
        self._semaphore, self._loop = asyncio.Semaphore(self.concurrency), loop
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def complete(self, requests: Sequence[ChatRequest], on_reply: OnReply | None = None) -> list[ChatReply]:
        session = await self._open()

        async def one(index: int, request: ChatRequest) -> ChatReply:
            reply = await self._complete_one(session, request)
            if on_reply is not None:
                on_reply(index, reply)
            return reply

        return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(requests))))

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
                self.stats.retries += 1
                await asyncio.sleep(backoff_delay(self.retry, attempt - 1, self._rng, failure.retry_after))
            try:
                text, finish = await self._attempt(session, body, usage)
                value = parse_reply(request, text)
            except _Retry as err:
                failure = err
                if err.final:
                    break
            except ReplyFormatError as err:
                failure, last_text = _Retry(f"bad reply: {err}", kind="bad_reply"), text
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
            self.stats.attempts += 1
            try:
                async with session.post(self.url, json=body) as response:
                    status, raw = response.status, await response.read()
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
            except asyncio.TimeoutError:
                raise _Retry(f"timed out after {self.timeout:g} s") from None
            except aiohttp.ClientError as err:
                raise _Retry(f"connection failed: {type(err).__name__}: {err}") from None
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
