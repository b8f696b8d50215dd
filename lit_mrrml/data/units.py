"""Ranked units: one prompt, one dimension, K >= 2 responses ordered best to worst on it; and the
reading of data files under the ``on_bad_record`` policy that every data file shares (``read_records``).

JSONL, one unit a line (design/overview.md). A chosen/rejected pair is a unit with K = 2. Every
record is checked against the rubric matrix; a bad one is reported as ``file:line: reason``
(``file:row N: reason`` in a parquet file or a ``datasets`` folder: lit_mrrml.data.sources).
``read_units`` also takes the other preference formats (TRL pairs, ranked or scored lists:
lit_mrrml.data.formats), with the matrix ids a record lacks from ``UnitDefaults``. No torch here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from lit_mrrml.data.formats import UnitDefaults, to_unit_record
from lit_mrrml.data.sources import BadRecordError, iter_records
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.matrix.suggest import did_you_mean

ROLES = ("system", "user", "assistant")
T = TypeVar("T")
OnBadRecord = Literal["fail", "skip"]
SKIP_HINT = "set on_bad_record: skip to skip such records"
__all__ = [  # BadRecordError is defined in lit_mrrml.data.sources, and imported from here too
    "ROLES",
    "BadRecordError",
    "OnBadRecord",
    "RankedUnit",
    "UnitDefaults",
    "iter_parsed",
    "normalized_prompt",
    "parse_messages",
    "parse_unit",
    "read_records",
    "read_units",
]


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

    def to_record(self) -> dict[str, Any]:
        """The native JSONL record (design/overview.md) that ``parse_unit`` reads back to this unit."""
        cell = {"dimension": self.dimension, "scenario": self.scenario, "discipline": self.discipline}
        return {"id": self.id, "prompt": self.messages, **cell, "responses": list(self.responses)}


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


def iter_parsed(
    paths: list[Path],
    parse: Callable[[Path, int, Any], T | None],
    on_bad_record: OnBadRecord,
    kind: str,
    skipped: list[str],
    skip_hint: str = SKIP_HINT,
) -> Iterator[T]:
    """``parse(path, number, record)`` for every record of the files, in order, as they are read.

    The files are JSONL, JSON arrays, parquet or ``datasets`` folders (lit_mrrml.data.sources;
    ``number`` is the line, or the row). ``parse`` raises BadRecordError for a bad record and
    returns None for a record it drops on purpose (a repeated prompt). Under ``on_bad_record``
    "skip", each bad record's ``file:line: reason`` is appended to ``skipped``; under "fail" the
    first raises BadRecordError with that message and ``skip_hint``. A missing file raises
    FileNotFoundError naming it and the ``kind`` of file expected.
    """
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{kind} file not found: {path}")
        for number, where, record in iter_records(path):
            try:
                if isinstance(record, BadRecordError):
                    raise record
                item = parse(path, number, record)
            except BadRecordError as err:
                message = f"{where}: {err}"
                if on_bad_record == "fail":
                    raise BadRecordError(f"{message} ({skip_hint})") from None
                skipped.append(message)
                continue
            if item is not None:
                yield item


def read_records(
    paths: list[Path], parse: Callable[[Path, int, Any], T | None], on_bad_record: OnBadRecord, kind: str
) -> tuple[list[T], list[str]]:
    """``iter_parsed`` read to the end: (records, skipped ``file:line: reason`` messages)."""
    skipped: list[str] = []
    records = list(iter_parsed(paths, parse, on_bad_record, kind, skipped))
    return records, skipped


def unit_parser(
    matrix: RubricMatrix, seen: set[str], defaults: UnitDefaults | None = None
) -> Callable[[Path, int, Any], RankedUnit]:
    """The ``parse`` of ``read_units``: a record in any preference format (lit_mrrml.data.formats),
    its missing matrix ids from ``defaults``, checked against ``matrix``; ids unique across ``seen``."""

    def parse(path: Path, number: int, record: Any) -> RankedUnit:
        unit = parse_unit(to_unit_record(record, defaults), matrix)
        if unit.id in seen:
            derived = isinstance(record, Mapping) and record.get("id") is None
            why = " (an id made from the content: this unit is in the data twice)" if derived else ""
            raise BadRecordError(f"duplicate unit id '{unit.id}'{why}")
        seen.add(unit.id)
        return unit

    return parse


def read_units(
    paths: list[Path],
    matrix: RubricMatrix,
    on_bad_record: OnBadRecord = "fail",
    seen: set[str] | None = None,
    defaults: UnitDefaults | None = None,
) -> tuple[list[RankedUnit], list[str]]:
    """Read and check units from data files (JSONL, JSON arrays, parquet, ``datasets`` folders) in
    any preference format (native units, TRL pairs, ranked or scored lists: lit_mrrml.data.formats).

    Returns (units, skipped) where skipped lists ``file:line: reason`` for every record dropped
    under ``on_bad_record="skip"``; with "fail" the first bad record raises BadRecordError.
    A record without a dimension, scenario or discipline takes the one of ``defaults``; one
    without an id gets ``formats.content_id``. Unit ids must be unique across all the files read
    with the same ``seen`` set.
    """
    seen = set() if seen is None else seen
    return read_records(paths, unit_parser(matrix, seen, defaults), on_bad_record, "ranked-unit")
