"""The chat-backend contract shared by data generation, HealthBench grading and the policy.

A backend turns a batch of ``ChatRequest`` into one ``ChatReply`` each, in order. It never raises
for one request's failure: a reply that stays unusable after the bounded attempts comes back with
``error`` set (``bad_reply``: the model answered, but not in the requested form; ``request_failed``:
no usable answer from the service), so the caller decides what to record. It raises
``BackendError`` only for what would fail every request (a rejected API key, an unknown model, a
service that cannot be reached).
"""

from __future__ import annotations

import hashlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

ErrorKind = Literal["bad_reply", "request_failed"]
Parser = Callable[[str], Any]
OnReply = Callable[[int, "ChatReply"], None]  # (index of the request, its final reply)


class BackendError(RuntimeError):
    """A failure that no retry can fix (bad credentials, unknown model, unreachable service)."""


class ReplyFormatError(ValueError):
    """A reply that does not have the requested form (raised by a request's ``parse``)."""


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to make.

    ``parse`` checks the reply text and returns its parsed value, or raises ReplyFormatError; a
    reply it refuses is asked for again, within the backend's bounded attempts.
    """

    messages: tuple[tuple[str, str], ...]  # (role, content), in order
    max_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    json_mode: bool = False  # ask the service for a JSON object (response_format)
    parse: Parser | None = field(default=None, compare=False)

    @classmethod
    def of(cls, messages: Sequence[dict[str, str]], **kwargs: Any) -> ChatRequest:
        """Build from ``[{"role": ..., "content": ...}]`` messages."""
        return cls(messages=tuple((m["role"], m["content"]) for m in messages), **kwargs)

    @property
    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]

    def cache_key(self, model_id: str) -> str:
        """A stable hash of everything that decides the reply (not the parser)."""
        fields = [model_id, self.messages, self.max_tokens, self.temperature, self.top_p, self.seed, self.json_mode]
        return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode("utf-8")).hexdigest()


@dataclass
class Usage:
    """Tokens a request consumed, over all its attempts."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {"prompt": self.prompt_tokens, "completion": self.completion_tokens}

    @classmethod
    def from_dict(cls, counts: dict[str, int]) -> Usage:
        """The inverse of ``as_dict``."""
        return cls(counts["prompt"], counts["completion"])


@dataclass
class ChatReply:
    """The outcome of one request: the text and its parsed value, or the reason there is none."""

    text: str | None
    value: Any = None
    error: str | None = None
    error_kind: ErrorKind | None = None
    attempts: int = 1
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def parse_reply(request: ChatRequest, text: str) -> Any:
    """The request's parsed value of ``text`` (the stripped text when it has no parser).

    A parser's ValueError (``json.loads`` failing, say) counts as a bad reply, like ReplyFormatError.
    """
    if request.parse is not None:
        try:
            return request.parse(text)
        except ReplyFormatError:
            raise
        except ValueError as err:
            raise ReplyFormatError(f"{type(err).__name__}: {err}") from err
    if not text.strip():
        raise ReplyFormatError("the reply is empty")
    return text.strip()


@dataclass
class BackendStats:
    """Counters for progress bars: attempts sent, replies received, retries, since ``started``."""

    started: float = field(default_factory=time.perf_counter)
    attempts: int = 0
    replies: int = 0
    retries: int = 0
    unreachable: int = 0  # attempts that got no response at all (connection errors, timeouts)

    def requests_per_second(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.replies / elapsed if elapsed > 0 else 0.0


class ChatBackend(ABC):
    """An LLM that answers chat requests: a service (OpenAIChatBackend) or a local model (HFLocalBackend)."""

    def __init__(self) -> None:
        self.stats = BackendStats()

    @property
    @abstractmethod
    def id(self) -> str:
        """Who answers, for manifests and reports (model and where it runs; never a secret)."""

    @property
    def model_id(self) -> str:
        """What decides the replies (the model, not where it is served): the key of cached replies."""
        return self.id

    @abstractmethod
    async def complete(self, requests: Sequence[ChatRequest], on_reply: OnReply | None = None) -> list[ChatReply]:
        """One reply per request, in order; per-request failures come back as replies with ``error``.

        ``on_reply(i, reply)`` is called as soon as request ``i`` has its final reply (to save it
        before the rest of the batch is done).
        """

    async def aclose(self) -> None:
        """Release connections or memory; the backend can be used again afterwards."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id})"
