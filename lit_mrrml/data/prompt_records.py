"""Policy prompts: the conversations the policy answers, read from four kinds of JSONL record.

One file may mix them, line by line:

- a prompt record ``{"id"?, "messages": [...], "scenario"?, "discipline"?}``;
- a generated prompt (``prompts.jsonl`` of ``lit-mrrml generate``): ``{"slot", "cell": {dimension,
  scenario, discipline}, "prompt": [...]}``; its id is the slot;
- a ranked unit (design/overview.md): only its prompt (and cell) is used;
- a HealthBench row ``{"prompt_id", "prompt", "example_tags", "rubrics"}``: its ``theme:<x>`` tag
  gives the matrix scenario whose ``healthbench_theme`` is that tag (None when no scenario has it).

Scenarios and disciplines are checked against the matrix. A prompt repeated in the files read
together (compared ignoring case and whitespace, as ``normalized_prompt``) is kept once, with the
first record's id: ranked units of several dimensions share one prompt. Bad records are
``file:line: reason`` under the ``on_bad_record`` policy of ``read_units``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lit_mrrml.data.units import (
    BadRecordError,
    OnBadRecord,
    normalized_prompt,
    parse_messages,
    parse_unit,
    read_records,
)
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.matrix.suggest import did_you_mean

log = logging.getLogger(__name__)
Messages = tuple[tuple[str, str], ...]
Fields = tuple[str | None, Messages, str | None, str | None]  # id (None: absent), messages, scenario, discipline
NOT_A_PROMPT = (
    "not a prompt record: expected 'messages' (a prompt record), or 'prompt' with 'cell' (a generated "
    "prompt), with 'responses' or 'chosen' (a ranked unit) or with 'prompt_id' and 'rubrics' (a HealthBench row)"
)


@dataclass(frozen=True)
class PromptRecord:
    """A validated policy prompt: chat messages that end with the user's turn, and its matrix cell."""

    id: str
    messages: Messages  # (role, content) messages; the last is the user's turn
    scenario: str | None = None  # a matrix scenario id; None: unknown (uniform weights)
    discipline: str | None = None

    @property
    def message_dicts(self) -> list[dict[str, str]]:
        """The messages as chat dicts for a tokenizer's chat template."""
        return [{"role": role, "content": content} for role, content in self.messages]

    @property
    def prompt_key(self) -> str:
        """A hash of the normalised messages, equal to ``RankedUnit.prompt_key`` for the same prompt."""
        return hashlib.sha1(json.dumps(normalized_prompt(self.messages)).encode("utf-8")).hexdigest()[:16]


def read_prompts(
    paths: list[str] | list[Path], matrix: RubricMatrix, on_bad_record: OnBadRecord = "fail"
) -> tuple[list[PromptRecord], list[str]]:
    """Read and check prompts from JSONL files.

    Returns (prompts, skipped) where skipped lists ``file:line: reason`` for every record dropped
    under ``on_bad_record="skip"``; with "fail" the first bad record raises BadRecordError. Ids must
    be unique across the files; a record without one gets ``<file stem>:<line>``.
    """
    reader = _PromptReader(matrix)
    prompts, skipped = read_records([Path(p) for p in paths], reader.parse, on_bad_record, "prompt")
    if reader.repeated:
        log.info("%d record(s) repeat an earlier prompt and were kept once (the first id wins)", reader.repeated)
    if reader.unmapped:
        log.warning(
            "%d HealthBench row(s) have no theme that a matrix scenario maps (healthbench_theme): their scenario is "
            "None, so they get uniform dimension weights",
            reader.unmapped,
        )
    return prompts, skipped


class _PromptReader:
    """Parses one record at a time, remembering the ids and prompts seen so far."""

    def __init__(self, matrix: RubricMatrix) -> None:
        self.matrix = matrix
        themes = {s.healthbench_theme: s.id for s in matrix.scenarios if s.healthbench_theme}
        self.themes = {theme.removeprefix("theme:"): scenario for theme, scenario in themes.items()}
        self.ids: set[str] = set()
        self.keys: set[str] = set()
        self.repeated = self.unmapped = 0

    def parse(self, path: Path, number: int, record: Any) -> PromptRecord | None:
        if not isinstance(record, Mapping):
            raise BadRecordError(f"a prompt record must be a JSON object, got {type(record).__name__}")
        given_id, messages, scenario, discipline = self._fields(record)
        prompt = PromptRecord(given_id or f"{path.stem}:{number}", messages, scenario, discipline)
        if prompt.id in self.ids:
            raise BadRecordError(f"duplicate prompt id '{prompt.id}'")
        self.ids.add(prompt.id)
        if prompt.prompt_key in self.keys:
            self.repeated += 1
            return None
        self.keys.add(prompt.prompt_key)
        self.unmapped += _is_healthbench(record) and scenario is None
        return prompt

    def _fields(self, record: Mapping[str, Any]) -> Fields:
        """(id or None, messages, scenario, discipline) of a record of any of the four kinds."""
        if "messages" in record:
            messages = parse_messages(record["messages"], "messages")
            scenario, discipline = record.get("scenario"), record.get("discipline")
            return _id(record, "id"), messages, self._ref("scenario", scenario), self._ref("discipline", discipline)
        if "prompt" not in record:
            raise BadRecordError(NOT_A_PROMPT)
        if _is_healthbench(record):
            return self._healthbench(record)
        if "cell" in record or "slot" in record:
            return self._generated(record)
        if any(key in record for key in ("responses", "chosen", "rejected")):
            unit = parse_unit(record, self.matrix)
            return unit.id, unit.prompt, unit.scenario, unit.discipline
        raise BadRecordError(NOT_A_PROMPT)

    def _generated(self, record: Mapping[str, Any]) -> Fields:
        slot, cell = _id(record, "slot"), record.get("cell")
        if slot is None:
            raise BadRecordError("a generated prompt needs its 'slot' (a non-empty string)")
        if not isinstance(cell, Mapping) or cell.get("scenario") is None or cell.get("discipline") is None:
            raise BadRecordError("'cell' must be an object with 'scenario' and 'discipline'")
        scenario, discipline = self._ref("scenario", cell["scenario"]), self._ref("discipline", cell["discipline"])
        return slot, parse_messages(record["prompt"]), scenario, discipline

    def _healthbench(self, record: Mapping[str, Any]) -> Fields:
        tags = record.get("example_tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise BadRecordError("'example_tags' must be a list of strings")
        themes = [t.removeprefix("theme:") for t in tags if t.startswith("theme:")]
        scenario = next((self.themes[t] for t in themes if t in self.themes), None)
        return _id(record, "prompt_id"), parse_messages(record["prompt"]), scenario, None

    def _ref(self, kind: str, value: Any) -> str | None:
        """A scenario or discipline id checked against the matrix (None stays None)."""
        if value is None:
            return None
        known = self.matrix.scenario_ids if kind == "scenario" else self.matrix.discipline_ids
        if value not in known:
            raise BadRecordError(f"unknown {kind} {value!r}{did_you_mean(str(value), known)}")
        return str(value)


def _is_healthbench(record: Mapping[str, Any]) -> bool:
    return "prompt_id" in record and ("rubrics" in record or "example_tags" in record)


def _id(record: Mapping[str, Any], key: str) -> str | None:
    """The record's ``key`` as an id: absent gives None; present, it must be a non-empty string."""
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise BadRecordError(f"'{key}' must be a non-empty string")
    return value
