"""Parsers of the generator's and the judge's replies (they raise ReplyFormatError, so a bad reply
is asked for again): a user prompt (one message or a conversation), an answer, a ranking."""

from __future__ import annotations

import re
from typing import Any

from lit_mrrml.backends.base import Parser, ReplyFormatError
from lit_mrrml.backends.structured import json_parser, require_field

TURN = re.compile(r"^[ \t]*\**(USER|ASSISTANT)\**[ \t]*:[ \t]*", re.IGNORECASE | re.MULTILINE)
FENCE = re.compile(r"^```[\w-]*\n?|\n?```$")
LEADING_LABEL = re.compile(r"^(?:rewritten answer|answer|reply|response|message)\s*:\s*", re.IGNORECASE)
MIN_PROMPT_WORDS = 4
MIN_ANSWER_WORDS = 3


def _clean(text: str) -> str:
    text = FENCE.sub("", text.strip()).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def parse_prompt(text: str, multi_turn: bool) -> list[dict[str, str]]:
    """The prompt messages of a prompt-writer reply; a conversation must alternate and end with the user."""
    text = _clean(text)
    parts = TURN.split(text)
    head = parts[0].strip()
    turns = [(role.lower(), body.strip()) for role, body in zip(parts[1::2], parts[2::2], strict=True)]
    if not multi_turn:
        if any(role == "assistant" for role, _ in turns):
            raise ReplyFormatError("a single user message was asked for, but the reply contains an assistant turn")
        message = " ".join([head, *(body for _, body in turns)]).strip()
        _enough_words(message, MIN_PROMPT_WORDS, "prompt")
        return [{"role": "user", "content": message}]
    if head or len(turns) < 3:
        raise ReplyFormatError("a conversation was asked for: lines starting USER: and ASSISTANT:, at least 3 turns")
    for i, (role, body) in enumerate(turns):
        if role != ("user" if i % 2 == 0 else "assistant"):
            raise ReplyFormatError(f"turn {i + 1} is {role.upper()}: turns must alternate, starting with USER")
        _enough_words(body, 1, f"turn {i + 1}")
    if turns[-1][0] != "user":
        raise ReplyFormatError("the conversation must end with a USER turn")
    _enough_words(turns[-1][1], MIN_PROMPT_WORDS, "the last user turn")
    return [{"role": role, "content": body} for role, body in turns]


def parse_answer(text: str) -> str:
    """An answer with fences, quotes and a leading 'Answer:' label removed."""
    answer = LEADING_LABEL.sub("", _clean(text)).strip()
    _enough_words(answer, MIN_ANSWER_WORDS, "answer")
    return answer


def ranking_parser(labels: list[str]) -> Parser:
    """A parser of ``{"ranking": [labels, best first]}`` that must list each label once."""

    def check(obj: dict[str, Any]) -> list[str]:
        ranking = require_field(obj, "ranking", list)
        cleaned = [_label(item) for item in ranking]
        if sorted(cleaned) != sorted(labels):
            raise ReplyFormatError(f"the ranking must list each of {labels} once, got {ranking}")
        return cleaned

    return json_parser(check)


def _label(item: Any) -> str:
    """'B', 'Answer B', 'b' and '(B)' all name answer B."""
    text = str(item).strip().strip("()[]").strip()
    return re.sub(r"^answer\s+", "", text, flags=re.IGNORECASE).strip().upper()


def _enough_words(text: str, least: int, what: str) -> None:
    if len(text.split()) < least:
        raise ReplyFormatError(f"the {what} is too short ({len(text.split())} words; at least {least})")
