"""Reward functions for TRL's GRPOTrainer from an exported lit_mrrml reward model.

``reward_funcs(directory)`` gives one callable per dimension, named after it (TRL logs
``rewards/<__name__>/mean`` and ``/std``), so that GRPOTrainer can sum them
(``multi_objective_aggregation="sum_then_normalize"``, weighted by ``GRPOConfig.reward_weights``)
or normalise each within its group first (``"normalize_then_sum"``: GDPO). TRL calls the L
functions one after the other on the same rollouts; they share one ``SharedScorer``, which scores
every dimension in one forward and keeps the rewards of its last call, so that one step costs one
scoring pass. ``total_reward_func(directory)`` gives the scenario-weighted total of the model's
matrix snapshot, reading each row's ``scenario`` dataset column (uniform weights without one).

The callables are small picklable objects (TRL's async rollout worker sends reward functions to a
child process): they carry the export folder and the scoring settings, and find or load their
scorer in the process that calls them. This module imports torch and Lightning only when a scorer
is first built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lit_mrrml.errors import InputError
from lit_mrrml.integrations.trl_inputs import RowKey, scored_rows

if TYPE_CHECKING:
    from torch import Tensor

    from lit_mrrml.policy.rewards import RewardModelReward


@dataclass(frozen=True)
class ScorerKey:
    """Which reward model a function scores with, and how: the key of the shared scorer."""

    directory: str  # the export folder, resolved
    device: str
    batch_size: int
    max_length: int


class SharedScorer:
    """One loaded reward model and the (N, L) rewards of the last rows it scored."""

    def __init__(self, key: ScorerKey) -> None:
        from lit_mrrml.policy.rewards import RewardModelReward

        self.key = key
        self.source: RewardModelReward = RewardModelReward(key.directory, key.device, key.batch_size, key.max_length)
        self.source.load()  # fail here, at reward_funcs(), on a bad export
        self.passes = 0  # forward passes of the reward model over a call's rows (memo misses)
        self._rows: list[RowKey] | None = None
        self._rewards: Tensor | None = None

    @property
    def dimension_names(self) -> list[str]:
        return self.source.dimension_names

    def rewards(self, prompts: Sequence[Any], completions: Sequence[Any], caller: str) -> Tensor:
        """(N, L) float32 CPU rewards of TRL's rows: scored once, then served from the memo while
        the rows stay the same."""
        rows = scored_rows(prompts, completions, caller)
        if rows != self._rows or self._rewards is None:
            messages = [[{"role": role, "content": text} for role, text in prompt] for prompt, _ in rows]
            self._rewards = self.source.score(messages, [response for _, response in rows])
            self._rows = rows
            self.passes += 1
        return self._rewards

    def totals(
        self, prompts: Sequence[Any], completions: Sequence[Any], scenarios: Sequence[str | None] | None, caller: str
    ) -> Tensor:
        """(N,) sum_l w_{l,s} r_l with each row's scenario weights (uniform 1/L for None or no list)."""
        import torch

        from lit_mrrml.aggregate import weighted_total
        from lit_mrrml.modules.scores import scenario_indices

        rewards = self.rewards(prompts, completions, caller)
        model = self.source.load()
        if scenarios is not None and len(scenarios) != rewards.shape[0]:
            raise InputError(f"{caller}: {len(scenarios)} scenarios for {rewards.shape[0]} rows")
        rows = scenario_indices(scenarios, model.scenario_ids, rewards.shape[0])
        index = torch.tensor([-1 if i is None else i for i in rows], dtype=torch.long)  # (N,), -1: uniform
        return weighted_total(rewards, model.total_weights(index).cpu())


_SCORERS: dict[ScorerKey, SharedScorer] = {}  # one loaded model per key and process


def shared_scorer(key: ScorerKey) -> SharedScorer:
    """The process's scorer for ``key``, loaded on first use."""
    if key not in _SCORERS:
        _SCORERS[key] = SharedScorer(key)
    return _SCORERS[key]


class DimensionReward:
    """TRL reward function for one dimension: ``f(prompts, completions, **columns) -> list[float]``."""

    def __init__(self, key: ScorerKey, dimension: str, column: int) -> None:
        self.key, self.column = key, column
        self.__name__ = dimension  # TRL's name for it: rewards/<dimension>/mean

    @property
    def scorer(self) -> SharedScorer:
        return shared_scorer(self.key)

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        rewards = self.scorer.rewards(prompts, completions, f"reward function {self.__name__}")  # (N, L)
        return [float(v) for v in rewards[:, self.column].tolist()]

    def __repr__(self) -> str:
        return f"DimensionReward({self.__name__!r}, {self.key.directory!r})"


class TotalReward:
    """TRL reward function for the scenario-weighted total, reading the ``scenario`` column."""

    def __init__(self, key: ScorerKey, name: str = "total") -> None:
        self.key = key
        self.__name__ = name

    @property
    def scorer(self) -> SharedScorer:
        return shared_scorer(self.key)

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], scenario: Sequence[str | None] | None = None, **_: Any
    ) -> list[float]:
        totals = self.scorer.totals(prompts, completions, scenario, f"reward function {self.__name__}")
        return [float(v) for v in totals.tolist()]

    def __repr__(self) -> str:
        return f"TotalReward({self.key.directory!r})"


def _key(directory: str | Path, device: str, batch_size: int, max_length: int) -> ScorerKey:
    return ScorerKey(str(Path(directory).resolve()), str(device), int(batch_size), int(max_length))


def reward_funcs(
    directory: str | Path, device: str = "cpu", batch_size: int = 16, max_length: int = 1024
) -> list[DimensionReward]:
    """One TRL reward function per dimension of the reward model exported to ``directory``
    (``RewardModel.save_pretrained``; a Lightning checkpoint works too), in the model's order.

    Args:
        directory: The export folder; loaded once per process and shared by every function built
            with the same settings (``total_reward_func`` included).
        device: Where the reward model runs (``"cuda"`` under ``accelerate launch``: each process's
            current device).
        batch_size: (prompt, completion) rows per reward-model forward.
        max_length: Longest reward-model sequence in its own tokens (a longer prompt is cut from the left).
    """
    key = _key(directory, device, batch_size, max_length)
    names = shared_scorer(key).dimension_names
    return [DimensionReward(key, name, column) for column, name in enumerate(names)]


def total_reward_func(
    directory: str | Path, device: str = "cpu", batch_size: int = 16, max_length: int = 1024, name: str = "total"
) -> TotalReward:
    """One TRL reward function for the scenario-weighted total R = sum_l w_{l,s} r_l of the model's
    matrix snapshot, with s the row's ``scenario`` column (uniform 1/L where there is none); it
    shares the scorer of ``reward_funcs`` built with the same settings. Arguments as there."""
    key = _key(directory, device, batch_size, max_length)
    shared_scorer(key)
    return TotalReward(key, name)
