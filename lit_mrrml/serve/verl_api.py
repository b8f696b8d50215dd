"""The JSON shape of ``POST /verl/score``: the arguments of a verl reward function, over HTTP.

verl calls ``compute_score(data_source, solution_str, ground_truth, extra_info)`` per rollout and
takes a float, or a dict whose ``score`` is the reward and whose other keys it logs. verl does not
pass the prompt, so the dataset's ``extra_info`` carries it: ``extra_info.messages`` (the chat
messages, ending with the user's turn) and, optionally, ``extra_info.scenario`` (the weights of
the total; absent or null: uniform). ``data_source`` and ``ground_truth`` are accepted and unused.

One rollout::

    {"data_source": "medical", "solution_str": "...", "ground_truth": null,
     "extra_info": {"messages": [{"role": "user", "content": "..."}], "scenario": "emergency_referrals"}}
    -> {"score": t, "reward/accuracy": r_1, ..., "reward/safety": r_L}

Several (verl's batch reward manager): ``{"batch": [<rollout>, ...]}`` -> ``{"results": [<answer>, ...]}``.
``lit_mrrml.serve.verl`` is the client verl's ``custom_reward_function`` points at.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lit_mrrml.serve.protocol import (
    ModelCard,
    Row,
    ScoredRow,
    check_count,
    check_scenario,
    log_key,
    need,
    need_key,
    parse_messages,
)


def parse_rollout(value: Any, path: str, card: ModelCard) -> Row:
    """One rollout's row; ``path`` is the prefix of its keys in messages (``""`` or ``batch[3].``)."""
    item = need(value, dict, path.rstrip(".") or "body")
    response = need_key(item, "solution_str", str, path)
    extra = need_key(item, "extra_info", dict, path)
    messages = parse_messages(need_key(extra, "messages", list, f"{path}extra_info."), f"{path}extra_info.messages")
    return Row(messages, response, check_scenario(extra.get("scenario"), f"{path}extra_info.scenario", card))


def parse_verl(body: Any, card: ModelCard, max_items: int) -> tuple[list[Row], bool]:
    """The rows of a ``POST /verl/score`` body, and whether it was a batch."""
    request = need(body, dict, "body")
    if "batch" not in request:
        return [parse_rollout(request, "", card)], False
    batch = need(request["batch"], list, "batch")
    check_count(len(batch), "batch", max_items)
    return [parse_rollout(item, f"batch[{i}].", card) for i, item in enumerate(batch)], True


def verl_result(row: ScoredRow, card: ModelCard) -> dict[str, float]:
    """What verl's ``compute_score`` returns for one rollout: the total as ``score``, and each dimension."""
    result = {"score": row.total}
    result.update({log_key(name): value for name, value in zip(card.dimension_names, row.rewards, strict=True)})
    return result


def verl_reply(scored: Sequence[ScoredRow], card: ModelCard, batched: bool) -> dict[str, Any]:
    """The body of a ``POST /verl/score`` answer."""
    if batched:
        return {"results": [verl_result(row, card) for row in scored]}
    return verl_result(scored[0], card)
