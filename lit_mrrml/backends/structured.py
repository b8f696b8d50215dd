"""Structured (JSON) replies: find the object in a model's text and check its fields.

Models wrap JSON in code fences or a sentence of preamble; ``extract_json_object`` takes the
first complete top-level object it can decode. A parser built with ``json_parser`` raises
ReplyFormatError (so the backend asks again) when the object is missing or fails its check.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from lit_mrrml.backends.base import Parser, ReplyFormatError


def extract_json_object(text: str) -> dict[str, Any]:
    """The first JSON object in ``text``; raises ReplyFormatError when there is none."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    snippet = text.strip().replace("\n", " ")[:120]
    raise ReplyFormatError(f"no JSON object in the reply: {snippet!r}")


def json_parser(check: Callable[[dict[str, Any]], Any]) -> Parser:
    """A request parser: extract the JSON object, then ``check`` it (returns the value or raises)."""

    def parse(text: str) -> Any:
        return check(extract_json_object(text))

    return parse


def require_field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    """``obj[name]`` if present and of ``kind``; raises ReplyFormatError naming the field otherwise."""
    if name not in obj:
        raise ReplyFormatError(f"the JSON object has no {name!r} field (keys: {sorted(obj)})")
    value, kinds = obj[name], _tuple(kind)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):  # True is an int too
        raise ReplyFormatError(f"field {name!r} must be {_names(kinds)}, got {type(value).__name__}")
    return value


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _names(kinds: tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in kinds)
