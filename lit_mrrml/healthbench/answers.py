"""Answers to HealthBench rows: from the policy (cached by policy id and prompt id) or the physicians.

The policy is any ChatBackend: a local Hugging Face model or checkpoint folder (this project's
exports included: a folder with ``config.json`` and weights, or a peft adapter folder, which
transformers loads on top of its base model) through HFLocalBackend, or an OpenAI-compatible
endpoint. Its identity in the cache is its model id, a fingerprint of local weight files (so a
retrained model in the same folder is asked again) and the answer settings.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from lit_mrrml.backends.base import ChatBackend, ChatReply, ChatRequest
from lit_mrrml.healthbench.fingerprint import files_fingerprint
from lit_mrrml.healthbench.grader import conversation_hash
from lit_mrrml.healthbench.options import AnswerOptions
from lit_mrrml.healthbench.rows import HealthBenchRow
from lit_mrrml.healthbench.store import KeyedLog
from lit_mrrml.paths import resolve_path

IDEAL_POLICY = "physicians:ideal_completion"


@dataclass(frozen=True)
class Answer:
    """The graded conversation: what the policy was sent, and its reply."""

    messages: tuple[tuple[str, str], ...]  # (role, content), the system prompt included
    text: str
    finish_reason: str | None = None

    @property
    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]

    @cached_property
    def conversation_hash(self) -> str:
        """The hash of the graded conversation: the key of its verdicts and rewards in the caches."""
        return conversation_hash(self.message_dicts, self.text)


def sent_messages(row: HealthBenchRow, options: AnswerOptions) -> tuple[tuple[str, str], ...]:
    """The row's prompt as the policy receives it (after the optional system prompt)."""
    system = (("system", options.system_prompt),) if options.system_prompt else ()
    return system + row.prompt


def weights_fingerprint(backend: ChatBackend) -> str | None:
    """A fingerprint of a local model's files; None for a service or a hub id."""
    hf_local = sys.modules.get("lit_mrrml.backends.hf_local")  # not imported: no backend is a local model
    if hf_local is None or not isinstance(backend, hf_local.HFLocalBackend):
        return None
    spec = backend.spec
    if spec.config is not None:
        return hashlib.sha256(json.dumps(spec.config, sort_keys=True).encode()).hexdigest()[:12]
    folder = Path(resolve_path(spec.path or ""))
    if not folder.exists():
        return None
    return files_fingerprint([folder / spec.gguf_file] if spec.gguf_file else [folder])


def policy_id(backend: ChatBackend, options: AnswerOptions) -> str:
    """The policy's key in the answer cache: model id, local weights, answer settings."""
    weights = weights_fingerprint(backend)
    settings = hashlib.sha256(json.dumps(asdict(options), sort_keys=True).encode()).hexdigest()[:12]
    return f"{backend.model_id}" + (f"@{weights}" if weights else "") + f"#{settings}"


def ideal_answers(rows: Sequence[HealthBenchRow]) -> dict[str, Answer]:
    """The physicians' ideal completions, for the rows that have one."""
    return {r.prompt_id: Answer(r.prompt, r.ideal_completion) for r in rows if r.ideal_completion is not None}


class PolicyAnswers:
    """Asks the policy for the rows the cache does not answer, saving each reply as it arrives."""

    def __init__(self, backend: ChatBackend, options: AnswerOptions, cache: KeyedLog) -> None:
        self.backend, self.options, self.cache = backend, options, cache
        self.id = policy_id(backend, options)

    def cached(self, row: HealthBenchRow) -> Answer | None:
        record = self.cache.get(self.id, row.prompt_id)
        if record is None or record["prompt_hash"] != row.prompt_hash:
            return None
        return Answer(sent_messages(row, self.options), record["text"], record.get("finish_reason"))

    def request(self, row: HealthBenchRow) -> ChatRequest:
        o = self.options
        return ChatRequest(
            messages=sent_messages(row, o),
            max_tokens=o.max_tokens,
            temperature=o.temperature,
            top_p=o.top_p,
            seed=o.seed,
            parse=str,  # any text is an answer to grade, the empty one included
        )

    async def answer(
        self, rows: Sequence[HealthBenchRow], on_done: Callable[[ChatReply], None]
    ) -> tuple[dict[str, Answer], dict[str, str]]:
        """(answers by prompt id, errors by prompt id of the rows the policy failed to answer)."""
        answers = {r.prompt_id: a for r in rows if (a := self.cached(r)) is not None}
        todo = [r for r in rows if r.prompt_id not in answers]
        errors: dict[str, str] = {}

        def store(i: int, reply: ChatReply) -> None:
            row = todo[i]
            if reply.ok and reply.text is not None:
                record: dict[str, Any] = {"policy": self.id, "prompt_id": row.prompt_id, "prompt_hash": row.prompt_hash}
                record |= {"text": reply.text, "finish_reason": reply.finish_reason, "usage": reply.usage.as_dict()}
                self.cache.put(record)
                answers[row.prompt_id] = Answer(sent_messages(row, self.options), reply.text, reply.finish_reason)
            else:
                errors[row.prompt_id] = reply.error or "no answer"
            on_done(reply)

        if todo:
            await self.backend.complete([self.request(r) for r in todo], store)
        return answers, errors
