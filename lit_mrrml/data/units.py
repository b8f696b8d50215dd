"""Ranked units: one prompt, one dimension, K >= 2 responses ordered best to worst on it; and the
JSONL reading under the ``on_bad_record`` policy that every data file shares (``read_records``).

JSONL, one unit a line (design/overview.md). A chosen/rejected pair is a unit with K = 2. Every
record is checked against the rubric matrix; a bad one is reported as ``file:line: reason``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from lit_mrrml.errors import InputError
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.matrix.suggest import did_you_mean
from lit_mrrml.textio import read_lines

ROLES = ("system", "user", "assistant")
T = TypeVar("T")
OnBadRecord = Literal["fail", "skip"]


class BadRecordError(InputError):
    """A ranked-unit record that cannot be used, with the file and line in its message."""


@dataclass(frozen=True)
class RankedUnit:
    """A validated ranked unit; ``responses`` are best first."""

    id: str
    prompt: tuple[tuple[str, str], ...]  # (role, content) messages; the last is the user's turn
    dimension: str
    scenario: str
    discipline: str
    responses: tuple[str, ...]

    @property
    def messages(self) -> list[dict[str, str]]:
        """The prompt as chat messages for a tokenizer's chat template."""
        return [{"role": role, "content": content} for role, content in self.prompt]

    @property
    def prompt_key(self) -> str:
        """A stable hash of the prompt messages, compared as ``normalized_prompt``: units whose prompts
        differ only in case or whitespace share it (the split-leak check must not miss a copy)."""
        return hashlib.sha1(json.dumps(normalized_prompt(self.prompt)).encode("utf-8")).hexdigest()[:16]


def normalized_prompt(prompt: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """The messages with each content lower-cased, runs of whitespace as one space, and stripped."""
    return [(role, " ".join(content.lower().split())) for role, content in prompt]


def parse_unit(record: Any, matrix: RubricMatrix) -> RankedUnit:
    """Check one decoded record against the matrix; raises BadRecordError with the reason."""
    if not isinstance(record, Mapping):
        raise BadRecordError(f"a unit must be a JSON object, got {type(record).__name__}")
    responses = _responses(record)
    unit_id = record.get("id")
    if not isinstance(unit_id, str) or not unit_id.strip():
        raise BadRecordError("'id' must be a non-empty string")
    refs = {}
    for key, known in (
        ("dimension", matrix.dimension_ids),
        ("scenario", matrix.scenario_ids),
        ("discipline", matrix.discipline_ids),
    ):
        value = record.get(key)
        if value not in known:
            raise BadRecordError(f"unknown {key} {value!r}{did_you_mean(str(value), known)}")
        refs[key] = value
    return RankedUnit(id=unit_id, prompt=parse_messages(record.get("prompt")), responses=responses, **refs)


def _responses(record: Mapping[str, Any]) -> tuple[str, ...]:
    if "responses" in record:
        responses = record["responses"]
    elif "chosen" in record or "rejected" in record:
        responses = [record.get("chosen"), record.get("rejected")]
    else:
        raise BadRecordError("missing 'responses' (or 'chosen' and 'rejected')")
    if not isinstance(responses, list):
        raise BadRecordError("'responses' must be a list of strings, best first")
    if len(responses) < 2:
        raise BadRecordError(f"a unit needs K >= 2 responses to rank, got {len(responses)}")
    for k, text in enumerate(responses):
        if not isinstance(text, str) or not text.strip():
            raise BadRecordError(f"response {k} is empty or not a string")
    if len(set(responses)) < len(responses):
        raise BadRecordError("two responses are identical: their order cannot be learned")
    return tuple(responses)


def parse_messages(prompt: Any, key: str = "prompt") -> tuple[tuple[str, str], ...]:
    """(role, content) messages of a prompt (a message list, or a string: one user turn) that ends
    with a user turn; raises BadRecordError naming the record's field ``key``."""
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or not prompt:
        raise BadRecordError(f"'{key}' must be a non-empty list of messages (or a string)")
    messages = []
    for i, message in enumerate(prompt):
        if not isinstance(message, Mapping) or message.get("role") not in ROLES:
            raise BadRecordError(f"{key}[{i}] must be an object with a role in {ROLES}")
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            raise BadRecordError(f"{key}[{i}].content is empty or not a string")
        messages.append((message["role"], content))
    if messages[-1][0] != "user":
        raise BadRecordError(f"the {key} must end with a user turn (the one the responses answer)")
    return tuple(messages)


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any | BadRecordError]]:
    """(line number, decoded record or the decoding error) for each non-blank line; a line that is
    not UTF-8 raises NotUTF8Error (the whole file is in another encoding, not one bad record)."""
    for number, line in read_lines(path):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as err:
            yield number, BadRecordError(f"invalid JSON: {err.msg} at column {err.colno}")


def read_records(
    paths: list[Path], parse: Callable[[Path, int, Any], T | None], on_bad_record: OnBadRecord, kind: str
) -> tuple[list[T], list[str]]:
    """``parse(path, line, record)`` for every non-blank line of the files, in order.

    ``parse`` raises BadRecordError for a bad record and returns None for a record it drops on
    purpose (a repeated prompt). Returns (records, skipped ``file:line: reason`` messages); a
    missing file raises FileNotFoundError naming it and the ``kind`` of file expected.
    """
    records: list[T] = []
    skipped: list[str] = []
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{kind} file not found: {path}")
        for number, record in iter_jsonl(path):
            try:
                if isinstance(record, BadRecordError):
                    raise record
                item = parse(path, number, record)
            except BadRecordError as err:
                message = f"{path}:{number}: {err}"
                if on_bad_record == "fail":
                    raise BadRecordError(f"{message} (set on_bad_record: skip to skip such records)") from None
                skipped.append(message)
                continue
            if item is not None:
                records.append(item)
    return records, skipped


def read_units(
    paths: list[Path], matrix: RubricMatrix, on_bad_record: OnBadRecord = "fail", seen: set[str] | None = None
) -> tuple[list[RankedUnit], list[str]]:
    """Read and check units from JSONL files.

    Returns (units, skipped) where skipped lists ``file:line: reason`` for every record dropped
    under ``on_bad_record="skip"``; with "fail" the first bad record raises BadRecordError.
    Unit ids must be unique across all the files read with the same ``seen`` set.
    """
    seen = set() if seen is None else seen

    def parse(path: Path, number: int, record: Any) -> RankedUnit:
        unit = parse_unit(record, matrix)
        if unit.id in seen:
            raise BadRecordError(f"duplicate unit id '{unit.id}'")
        seen.add(unit.id)
        return unit

    return read_records(paths, parse, on_bad_record, "ranked-unit")
