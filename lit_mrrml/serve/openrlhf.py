"""OpenRLHF's remote reward model shape (``POST /get_reward``, for ``--remote_rm_url``).

OpenRLHF's client posts ``{"query": [prompt + response texts], "prompts": [prompt texts],
"labels": [labels]}`` and reads ``rewards`` (the rewards of its advantages), ``scores`` (its dynamic
filtering; it falls back to ``rewards``) and ``extra_logs`` (logged per key). The answer::

    {"rewards": [t_1, ...], "scores": [t_1, ...], "extra_logs": {"reward/<dimension>": [r_1, ...], ...}}

with the scenario-weighted totals as ``rewards`` and ``scores``. Each row is read as:

- response: ``query[i][len(prompts[i]):]``, without the end-of-turn marker the policy's output
  ends with (the reward model's template adds its own); a query that does not start with its
  prompt is refused;
- messages: the prompt text read back through its chat template (``chat_text``), or the
  ``messages`` of the label;
- scenario: from the label, which is null or "" (uniform weights), a scenario id, or an object
  (or its JSON text) with optional ``scenario`` and ``messages``; set OpenRLHF's ``--label_key``
  to the dataset field that holds it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from lit_mrrml.serve.chat_text import prompt_messages, strip_end_markers, turn_ends
from lit_mrrml.serve.protocol import (
    BadRequest,
    Message,
    ModelCard,
    Row,
    ScoredRow,
    check_count,
    check_scenario,
    dimension_logs,
    need,
    need_key,
    parse_messages,
)


def label_fields(label: Any, path: str, card: ModelCard) -> tuple[str | None, list[Message] | None]:
    """The scenario and the messages (None: read them from the prompt) that a label gives."""
    if label is None or label == "":
        return None, None
    if isinstance(label, str) and label.lstrip().startswith("{"):
        try:
            label = json.loads(label)
        except json.JSONDecodeError as err:
            raise BadRequest(f"{path}: starts with '{{' but is not a JSON object: {err}") from None
    if isinstance(label, str):
        return check_scenario(label, path, card), None
    fields = need(label, dict, path)
    messages = parse_messages(fields["messages"], f"{path}.messages") if "messages" in fields else None
    return check_scenario(fields.get("scenario"), f"{path}.scenario", card), messages


def split_query(query: str, prompt: str, i: int, card: ModelCard) -> str:
    """The response of one query: what follows its prompt, without the markers that close it."""
    if not query.startswith(prompt):
        raise BadRequest(
            f"query[{i}]: does not start with prompts[{i}]; the response is what follows the prompt in the query"
        )
    return strip_end_markers(query[len(prompt) :], turn_ends(prompt) + card.end_markers)


def read_prompt(prompt: str, i: int) -> list[Message]:
    """The messages of ``prompts[i]`` (see ``chat_text``)."""
    try:
        return prompt_messages(prompt)
    except ValueError as err:
        raise BadRequest(f"prompts[{i}]: {err}") from None


def text_list(body: dict[str, Any], key: str, n: int | None) -> list[str]:
    """``body[key]`` as an array of strings (of length ``n`` when given)."""
    values = need_key(body, key, list, "")
    if n is not None and len(values) != n:
        raise BadRequest(f"{key}: {len(values)} {key} for {n} queries; give one per query")
    for i, value in enumerate(values):
        need(value, str, f"{key}[{i}]")
    return values


def parse_openrlhf(body: Any, card: ModelCard, max_items: int) -> list[Row]:
    """The rows of an OpenRLHF request."""
    request = need(body, dict, "body")
    queries = text_list(request, "query", None)
    check_count(len(queries), "query", max_items)
    prompts = text_list(request, "prompts", len(queries))
    labels = request.get("labels")
    if labels is None:
        labels = [None] * len(queries)
    elif len(need(labels, list, "labels")) != len(queries):
        raise BadRequest(f"labels: {len(labels)} labels for {len(queries)} queries; give one per query, or none")
    rows = []
    for i, (query, prompt, label) in enumerate(zip(queries, prompts, labels, strict=True)):
        scenario, messages = label_fields(label, f"labels[{i}]", card)
        response = split_query(query, prompt, i, card)
        rows.append(Row(messages or read_prompt(prompt, i), response, scenario))
    return rows


def openrlhf_reply(scored: Sequence[ScoredRow], card: ModelCard) -> dict[str, Any]:
    """The answer OpenRLHF reads: totals as rewards and scores, each dimension in extra_logs."""
    totals = [row.total for row in scored]  # (N,)
    return {"rewards": totals, "scores": totals, "extra_logs": dimension_logs(scored, card)}
