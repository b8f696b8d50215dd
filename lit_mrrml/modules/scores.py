"""RewardScores, what ``RewardModel.score`` returns, and the checks and encoding of its inputs.

Each (prompt, response) row becomes a ranked unit with one response, encoded and collated as the
data pipeline does for training, so that ``score`` gives the rewards ``score_batch`` gives there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from torch import Tensor

from lit_mrrml.data.units import RankedUnit
from lit_mrrml.errors import InputError
from lit_mrrml.matrix.suggest import did_you_mean

Messages = Sequence[Mapping[str, str]]


class RewardScores(NamedTuple):
    """The scores of N (prompt, response) rows on the L dimensions of a reward model."""

    rewards: Tensor  # (N, L) float32 on the CPU, one column per dimension
    dimension_names: list[str]  # (L,) the names of the columns, in order
    totals: Tensor  # (N,) sum_l w_{l,s} r_l with each row's scenario weights (uniform 1/L for None)


def row_labels(n: int, row_ids: Sequence[str] | None) -> list[str]:
    """The names of the rows in error messages: the caller's ids, or ``row <i>``."""
    if row_ids is None:
        return [f"row {i}" for i in range(n)]
    if len(row_ids) != n:
        raise InputError(f"RewardModel.score: {len(row_ids)} row_ids for {n} rows")
    return [str(r) for r in row_ids]


def check_rows(
    prompts: Sequence[Messages], responses: Sequence[str], scenarios: Sequence[str | None] | None, batch_size: int
) -> None:
    """Refuse inputs whose lengths differ, naming each length, and a batch size below 1."""
    if batch_size < 1:
        raise InputError(f"RewardModel.score: batch_size must be at least 1, got {batch_size}")
    lengths = [len(prompts), len(responses)] + ([len(scenarios)] if scenarios is not None else [])
    if len(set(lengths)) > 1:
        given = f"{len(prompts)} prompts, {len(responses)} responses"
        given += f" and {len(scenarios)} scenarios" if scenarios is not None else ""
        raise InputError(f"RewardModel.score: {given}: give one of each per row")


def scenario_indices(scenarios: Sequence[str | None] | None, known: Sequence[str], n: int) -> list[int | None]:
    """Each row's index into the matrix's scenarios (None: uniform weights); an unknown id is refused."""
    if scenarios is None:
        return [None] * n
    for s in scenarios:
        if s is not None and s not in known:
            raise InputError(
                f"RewardModel.score: unknown scenario {s!r}{did_you_mean(s, known)} "
                f"(the model's matrix has {list(known)}; None gives uniform weights)"
            )
    return [None if s is None else list(known).index(s) for s in scenarios]


def score_unit(label: str, messages: Messages, response: str) -> RankedUnit:
    """One row as a ranked unit with a single response (dimension and scenario are not used)."""
    if not messages or not all(isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages):
        raise InputError(f"RewardModel.score: {label}: the prompt must be a non-empty list of role/content messages")
    if messages[-1]["role"] != "user":
        raise InputError(f"RewardModel.score: {label}: the prompt must end with the user's turn")
    if not isinstance(response, str):
        raise InputError(f"RewardModel.score: {label}: the response must be text, got {type(response).__name__}")
    prompt = tuple((m["role"], m["content"]) for m in messages)
    return RankedUnit(label, prompt, "", "", "", (response,))
