"""The server's own request shape (``POST /score``), and the checks every request shape shares.

A request is read into ``Row``s, each checked as ``RewardModel.score`` would check it, so that a bad
row is refused with a 400 before it joins a batch with other clients' rows. A refusal is a
``BadRequest`` whose message starts with the key path of the bad value (``items[2].messages[0].role:
expected a string, got a number``).

``POST /score``::

    {"items": [{"messages": [{"role": "user", "content": "..."}], "response": "...",
                "scenario": "emergency_referrals"}]}          # scenario: optional, null = uniform weights
    -> {"dimensions": ["accuracy", ...], "rewards": [[r_1, ..., r_L]], "totals": [t]}

No torch here: this module runs in servers and clients that never load a model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lit_mrrml.errors import InputError
from lit_mrrml.matrix.suggest import did_you_mean

Message = dict[str, str]


class BadRequest(InputError):
    """A request the server refuses (HTTP 400); the message names the key path and the fix."""


@dataclass(frozen=True)
class ModelCard:
    """What the server tells clients about its model, and what requests are checked against."""

    name: str  # shown by GET /health (the export folder)
    dimension_names: tuple[str, ...]  # (L,) the reward columns, in order
    scenario_ids: tuple[str, ...]  # the scenarios a row may name for its total's weights
    end_markers: tuple[str, ...] = ()  # tokenizer texts (eos, pad) cut from the end of an OpenRLHF response


@dataclass(frozen=True)
class Row:
    """One (prompt, response) to score: chat messages ending with the user's turn, and a scenario."""

    messages: list[Message]
    response: str
    scenario: str | None  # None: uniform weights 1/L in the total


@dataclass(frozen=True)
class ScoredRow:
    """A row's rewards, one per dimension, and its scenario-weighted total."""

    rewards: list[float]  # (L,)
    total: float


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for messages (``a number``, ``null``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    kinds = {str: "a string", int: "a number", float: "a number", list: "an array", dict: "an object"}
    return kinds.get(type(value), type(value).__name__)


def decode_body(raw: bytes) -> Any:
    """The JSON value of a request body."""
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise BadRequest(f"the body is not UTF-8 text: {err}") from None
    except json.JSONDecodeError as err:
        raise BadRequest(f"the body is not JSON: {err}") from None


def need(value: Any, kind: type, path: str) -> Any:
    """``value`` if it is a ``kind`` (str, list or dict), else a BadRequest naming ``path``."""
    if not isinstance(value, kind):
        raise BadRequest(f"{path}: expected {json_type(kind())}, got {json_type(value)}")
    return value


def need_key(obj: dict[str, Any], key: str, kind: type, path: str) -> Any:
    """``obj[key]`` of type ``kind``; a missing key is named with the keys that were given."""
    if key not in obj:
        given = f"; given: {sorted(obj)}" if obj else ""
        raise BadRequest(f"{path}{key}: missing{given}")
    return need(obj[key], kind, f"{path}{key}")


def refuse_unknown(obj: dict[str, Any], known: Sequence[str], path: str) -> None:
    """Refuse keys outside ``known`` (a typo such as ``scenarios`` would silently mean uniform weights)."""
    for key in obj:
        if key not in known:
            raise BadRequest(f"{path}{key}: unknown key{did_you_mean(key, known)} (known: {list(known)})")


def check_count(n: int, path: str, max_items: int) -> None:
    """A batch holds 1 to ``max_items`` rows."""
    if n == 0:
        raise BadRequest(f"{path}: empty; give at least one item")
    if n > max_items:
        raise BadRequest(f"{path}: {n} items, more than this server's --max_items {max_items}; split the request")


def parse_messages(value: Any, path: str) -> list[Message]:
    """Chat messages: a non-empty array of ``{role, content}`` strings ending with the user's turn."""
    items = need(value, list, path)
    if not items:
        raise BadRequest(f"{path}: empty; give the chat messages, ending with the user's turn")
    messages = []
    for i, item in enumerate(items):
        message = need(item, dict, f"{path}[{i}]")
        role = need_key(message, "role", str, f"{path}[{i}].")
        content = need_key(message, "content", str, f"{path}[{i}].")
        messages.append({"role": role, "content": content})
    if messages[-1]["role"] != "user":
        last = f"{path}[{len(messages) - 1}].role"
        raise BadRequest(f"{last}: the prompt must end with the user's turn, got {messages[-1]['role']!r}")
    return messages


def check_scenario(value: Any, path: str, card: ModelCard) -> str | None:
    """A scenario id of the model's matrix, or None (uniform weights)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{path}: expected a string or null, got {json_type(value)}")
    if value not in card.scenario_ids:
        raise BadRequest(
            f"{path}: unknown scenario {value!r}{did_you_mean(value, card.scenario_ids)} "
            f"(this model's scenarios: {list(card.scenario_ids)}; null gives uniform weights)"
        )
    return value


def parse_score_request(body: Any, card: ModelCard, max_items: int) -> list[Row]:
    """The rows of a ``POST /score`` body."""
    request = need(body, dict, "body")
    refuse_unknown(request, ("items",), "")
    items = need_key(request, "items", list, "")
    check_count(len(items), "items", max_items)
    rows = []
    for i, value in enumerate(items):
        path = f"items[{i}]"
        item = need(value, dict, path)
        refuse_unknown(item, ("messages", "response", "scenario"), f"{path}.")
        messages = parse_messages(need_key(item, "messages", list, f"{path}."), f"{path}.messages")
        response = need_key(item, "response", str, f"{path}.")
        rows.append(Row(messages, response, check_scenario(item.get("scenario"), f"{path}.scenario", card)))
    return rows


def score_reply(scored: Sequence[ScoredRow], card: ModelCard) -> dict[str, Any]:
    """The body of a ``POST /score`` answer."""
    return {
        "dimensions": list(card.dimension_names),
        "rewards": [row.rewards for row in scored],  # (N, L)
        "totals": [row.total for row in scored],  # (N,)
    }


def log_key(dimension: str) -> str:
    """The key of a dimension's reward among the extra values OpenRLHF and verl log."""
    return f"reward/{dimension}"


def dimension_logs(scored: Sequence[ScoredRow], card: ModelCard) -> dict[str, list[float]]:
    """Each dimension's rewards (N,) under its ``log_key``."""
    return {log_key(name): [row.rewards[j] for row in scored] for j, name in enumerate(card.dimension_names)}
