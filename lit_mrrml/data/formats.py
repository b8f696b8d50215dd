"""Preference-data formats: recognise one record's shape and turn it into a native ranked-unit record.

Recognised record by record (``record_format``), the first that fits:

- ``ranked``: ``responses`` [best, ..., worst], our native unit (design/overview.md), or the same list
  with ``ranks`` (1 = best: lower is better) or ``scores`` (higher is better) that order it;
- ``completions``: ``completions`` in no particular order, with ``ranks`` or ``scores``;
- ``trl``: TRL's preference record, ``prompt`` with ``chosen`` and ``rejected``; the prompt a string
  (one user turn) or messages, the answers strings or conversations;
- ``trl_implicit``: TRL's implicit prompt, ``chosen`` and ``rejected`` without a ``prompt``: two whole
  conversations, whose common leading messages are the prompt.

An answer given as a conversation must be one assistant message once the prompt's messages are
dropped from its start (TRL's conversational completion ``[{"role": "assistant", "content": ...}]``).
A missing ``dimension``, ``scenario`` or ``discipline`` comes from ``UnitDefaults``; a missing ``id``
is a hash of the unit's content (``content_id``: the same unit always gets the same id). The dict
made here still goes through ``parse_unit``, which checks it against the matrix.

The reverse, ``unit_pairs``: a unit of K responses as its K(K-1)/2 TRL preference pairs. No torch here.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lit_mrrml.data.sources import BadRecordError
from lit_mrrml.errors import InputError
from lit_mrrml.matrix.suggest import did_you_mean

if TYPE_CHECKING:
    from lit_mrrml.data.units import RankedUnit
    from lit_mrrml.matrix import RubricMatrix

CELL_KEYS = ("dimension", "scenario", "discipline")
RecordFormat = Literal["ranked", "completions", "trl", "trl_implicit"]
PromptFormat = Literal["conversational", "string"]
EXPECTED = (
    "expected 'responses' (a ranked list, best first, or ordered by 'ranks' or 'scores'), 'completions' with "
    "'ranks' or 'scores', or 'chosen' and 'rejected' (TRL preference, with a 'prompt' or an implicit one)"
)


@dataclass(frozen=True)
class UnitDefaults:
    """The matrix ids that a record without its own gets (TRL data names no rubric dimension).

    Args:
        dimension: Dimension id of every record that has no ``dimension``.
        scenario: Scenario id of every record that has no ``scenario``.
        discipline: Discipline id of every record that has no ``discipline``.
    """

    dimension: str | None = None
    scenario: str | None = None
    discipline: str | None = None

    def check(self, matrix: RubricMatrix, key_path: str) -> None:
        """Raise InputError for an id the matrix lacks, naming ``key_path.format(key=...)``, such as
        ``data.defaults.{key}``, with the closest id."""
        known = dict(zip(CELL_KEYS, (matrix.dimension_ids, matrix.scenario_ids, matrix.discipline_ids), strict=True))
        for key in CELL_KEYS:
            value = getattr(self, key)
            if value is not None and value not in known[key]:
                hint = did_you_mean(value, known[key])
                raise InputError(f"{key_path.format(key=key)}: unknown {key} {value!r}{hint}")


def record_format(record: Mapping[str, Any]) -> RecordFormat:
    """Which of the formats ``record`` is in, by its keys; raises BadRecordError naming what was expected."""
    if "responses" in record:
        return "ranked"
    if "completions" in record:
        if "ranks" not in record and "scores" not in record:
            raise BadRecordError(
                "'completions' need 'ranks' (1 = best) or 'scores' (higher is better) to order them "
                "(a list already best first is 'responses')"
            )
        return "completions"
    if "chosen" in record or "rejected" in record:
        for key in ("chosen", "rejected"):
            if key not in record:
                raise BadRecordError(f"a TRL preference record needs both 'chosen' and 'rejected'; '{key}' is missing")
        return "trl" if record.get("prompt") is not None else "trl_implicit"
    keys = sorted(map(str, record))
    shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
    hint = ""
    if "completion" in record and "label" in record:
        hint = "; TRL unpaired preference ('completion', 'label') ranks nothing: pair its completions first"
    raise BadRecordError(f"no known preference format: {EXPECTED}; this record has keys [{shown}]{hint}")


def to_unit_record(record: Any, defaults: UnitDefaults | None = None) -> dict[str, Any]:
    """The native ranked-unit record (``id``, ``prompt``, cell, ``responses`` best first) of a record
    in any of the formats; raises BadRecordError. The values are not checked yet: ``parse_unit`` does."""
    if not isinstance(record, Mapping):
        raise BadRecordError(f"a unit must be a JSON object, got {type(record).__name__}")
    kind = record_format(record)
    if kind == "ranked":
        prompt, responses = record.get("prompt"), _ordered(record, "responses")
    elif kind == "completions":
        prompt, responses = record.get("prompt"), _ordered(record, "completions")
    else:
        prompt = record["prompt"] if kind == "trl" else _implicit_prompt(record["chosen"], record["rejected"])
        responses = [_answer(record[key], prompt, key) for key in ("chosen", "rejected")]
    unit: dict[str, Any] = {"id": record.get("id"), "prompt": prompt}
    for key in CELL_KEYS:
        value = record.get(key)
        unit[key] = getattr(defaults, key, None) if value is None else value
        if unit[key] is None:
            raise BadRecordError(
                f"missing '{key}', and no default {key} is set (data.defaults.{key}, or convert --{key})"
            )
    unit["responses"] = responses
    if unit["id"] is None:
        unit["id"] = content_id(unit)
    return unit


def _ordered(record: Mapping[str, Any], key: str) -> Any:
    """The answers under ``key``, best first: as listed, or sorted by ``ranks`` or ``scores``."""
    items = record[key]
    if not isinstance(items, list):
        return items  # parse_unit says what is wrong with it
    answers = [_answer(item, record.get("prompt"), f"{key}[{k}]") for k, item in enumerate(items)]
    order = _order(record, len(answers))
    return answers if order is None else [answers[k] for k in order]


def _order(record: Mapping[str, Any], n: int) -> list[int] | None:
    """Indices best first by ``ranks`` (ascending) or ``scores`` (descending); None when neither is given."""
    if "ranks" in record and "scores" in record:
        raise BadRecordError("give 'ranks' or 'scores', not both")
    key = "ranks" if "ranks" in record else "scores" if "scores" in record else None
    if key is None:
        return None
    values = record[key]
    if not isinstance(values, list) or len(values) != n or not all(_is_number(v) for v in values):
        raise BadRecordError(f"'{key}' must be a list of {n} finite numbers, one per response")
    sign = 1 if key == "ranks" else -1
    order = sorted(range(n), key=lambda k: sign * values[k])
    for a, b in itertools.pairwise(order):
        if values[a] == values[b]:
            first, second = sorted((a, b))
            raise BadRecordError(
                f"responses {first} and {second} tie on {key} ({values[a]}): their order cannot be learned"
            )
    return order


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_conversation(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, Mapping) and "role" in m for m in value)


def _turns(messages: list[Any]) -> list[tuple[Any, Any]]:
    """(role, content) of each message: messages compare by these alone (a parquet struct column
    adds its other fields, as None, to every message)."""
    return [(m.get("role"), m.get("content")) for m in messages]


def _implicit_prompt(chosen: Any, rejected: Any) -> list[Any]:
    """The messages that both conversations start with (TRL's implicit prompt)."""
    if not (_is_conversation(chosen) and _is_conversation(rejected)):
        raise BadRecordError(
            "no 'prompt', and 'chosen' and 'rejected' are not both conversations (lists of messages): "
            "the prompt cannot be told from the answers; give a 'prompt'"
        )
    shared = 0
    for mine, theirs in zip(_turns(chosen), _turns(rejected), strict=False):  # the shorter one bounds the prefix
        if mine != theirs:
            break
        shared += 1
    if shared == len(chosen) == len(rejected):
        raise BadRecordError("'chosen' and 'rejected' are the same conversation: their order cannot be learned")
    if shared == 0:
        raise BadRecordError(
            "no 'prompt', and 'chosen' and 'rejected' start with different messages: an implicit prompt is "
            "the messages both conversations start with"
        )
    return list(chosen[:shared])


def _answer(value: Any, prompt: Any, key: str) -> Any:
    """A response's text: a string as it is, a conversation as its one assistant message once the
    prompt's messages are dropped from its start; anything else as it is, for parse_unit to refuse."""
    if not _is_conversation(value):
        return value
    lead = _turns(_prompt_messages(prompt))
    messages = list(value)
    if lead and _turns(messages[: len(lead)]) == lead:
        messages = messages[len(lead) :]
    if len(messages) != 1 or messages[0].get("role") != "assistant":
        roles = [m.get("role") for m in messages]
        raise BadRecordError(
            f"'{key}' must be a string or one assistant message (after the prompt's messages), got roles {roles}"
        )
    return messages[0].get("content")


def _prompt_messages(prompt: Any) -> list[Any]:
    """The prompt as a list of message dicts (a string is one user turn); [] for anything else."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return list(prompt) if _is_conversation(prompt) else []


def content_id(unit: Mapping[str, Any]) -> str:
    """A stable id from a unit's content: the first 16 hex digits of the sha256 of its canonical JSON
    (prompt as role/content messages, responses best first, dimension, scenario, discipline).

    The same unit always gets the same id, whether its prompt came as a string or as messages; a
    changed response, order or cell gives another id.
    """
    messages = _prompt_messages(unit.get("prompt"))
    prompt = [{"role": r, "content": c} for r, c in _turns(messages)] if messages else unit.get("prompt")
    canonical = {"prompt": prompt, "responses": unit.get("responses")} | {k: unit.get(k) for k in CELL_KEYS}
    text = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def unit_pairs(unit: RankedUnit, prompt_format: PromptFormat = "conversational") -> list[dict[str, Any]]:
    """The unit's K(K-1)/2 TRL preference pairs: for every two responses, the better-ranked one is
    ``chosen``. In order (0, 1), (0, 2), ..., (K-2, K-1) of the best-first ranks.

    ``conversational``: ``prompt`` is the messages, ``chosen``/``rejected`` one assistant message each;
    ``string``: all three are strings (the prompt must be one user turn). Each pair keeps the unit's
    cell and ``unit_id``; its ``id`` is the unit's when K = 2 (such a unit is a pair), else
    ``<unit id>:<i>-<j>`` with the ranks of chosen and rejected.
    """
    if prompt_format == "string" and len(unit.prompt) != 1:
        raise BadRecordError(
            f"unit '{unit.id}' has a prompt of {len(unit.prompt)} messages, and a string prompt is one user "
            "turn: write the conversational prompt format"
        )
    k = len(unit.responses)
    pairs = []
    for better, worse in itertools.combinations(range(k), 2):
        chosen, rejected = unit.responses[better], unit.responses[worse]
        pair: dict[str, Any]
        if prompt_format == "string":
            pair = {"prompt": unit.prompt[0][1], "chosen": chosen, "rejected": rejected}
        else:
            pair = {
                "prompt": unit.messages,
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
            }
        pair["id"] = unit.id if k == 2 else f"{unit.id}:{better}-{worse}"
        pair |= {"unit_id": unit.id, "dimension": unit.dimension, "scenario": unit.scenario}
        pair["discipline"] = unit.discipline
        pairs.append(pair)
    return pairs
