"""CachedBackend: replies kept on disk, so that a rerun or a resumed run never pays twice.

Every reply is appended to an AppendLog the moment it arrives, keyed by the hash of the
backend's model id (the model, not its address) and everything that decides the reply
(messages, sampling settings, seed). A request whose key has a successful reply in the log is
answered from it, parsed again by its own parser; failures are logged only for their token
counts and are asked again on the next run. The log is thus also the ledger of every token paid
for (``tokens_used``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lit_mrrml.appendlog import AppendLog
from lit_mrrml.backends.base import ChatBackend, ChatReply, ChatRequest, OnReply, ReplyFormatError, Usage, parse_reply


class CachedBackend(ChatBackend):
    """A ChatBackend in front of another, with its successful replies cached in a JSONL file."""

    def __init__(self, backend: ChatBackend, path: str | Path) -> None:
        """
        Args:
            backend: The backend that answers what the cache does not hold.
            path: The cache file (JSONL, append-only); several runs may share it.
        """
        super().__init__()
        self.backend, self.log = backend, AppendLog(path)
        self.stats = backend.stats
        self.hits = 0
        self._replies: dict[str, dict[str, Any]] = {}
        self._paid = Usage()  # every record's tokens, failed replies included
        for record in self.log:
            self._paid.add(Usage.from_dict(record["usage"]))
            if "error" not in record:
                self._replies[record["key"]] = record

    @property
    def id(self) -> str:
        return self.backend.id

    @property
    def model_id(self) -> str:
        return self.backend.model_id

    async def complete(self, requests: Sequence[ChatRequest], on_reply: OnReply | None = None) -> list[ChatReply]:
        keys = [r.cache_key(self.backend.model_id) for r in requests]
        replies: list[ChatReply | None] = [self._cached(r, k) for r, k in zip(requests, keys, strict=True)]
        for i, reply in enumerate(replies):
            if reply is not None and on_reply is not None:
                on_reply(i, reply)
        missing = [i for i, reply in enumerate(replies) if reply is None]
        self.hits += len(requests) - len(missing)

        def store(j: int, reply: ChatReply) -> None:
            i = missing[j]
            record: dict[str, Any] = {"key": keys[i], "text": reply.text, "finish_reason": reply.finish_reason}
            record["usage"] = reply.usage.as_dict()
            if reply.ok:
                self._replies[keys[i]] = record
            else:
                record["error"] = reply.error
            self._paid.add(reply.usage)
            self.log.append([record])
            if on_reply is not None:
                on_reply(i, reply)

        fresh = await self.backend.complete([requests[i] for i in missing], store) if missing else []
        for i, reply in zip(missing, fresh, strict=True):
            replies[i] = reply
        return [r for r in replies if r is not None]

    def _cached(self, request: ChatRequest, key: str) -> ChatReply | None:
        record = self._replies.get(key)
        if record is None:
            return None
        try:
            value = parse_reply(request, record["text"])
        except ReplyFormatError:
            return None  # the parser has changed since: ask again
        usage = Usage.from_dict(record["usage"])
        return ChatReply(record["text"], value, usage=usage, finish_reason=record.get("finish_reason"), cached=True)

    def tokens_used(self) -> Usage:
        """Tokens of every reply in the log, failed ones included: what this cache's runs paid for."""
        return Usage(self._paid.prompt_tokens, self._paid.completion_tokens)

    async def aclose(self) -> None:
        self.log.close()
        await self.backend.aclose()
