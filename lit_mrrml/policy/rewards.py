"""Reward sources for the policy: per-dimension rewards r in R^L of (prompt messages, completion text).

The policy decodes each completion to text and hands the texts over; a source never sees policy
token ids (design/policy.md, step 2), so a reward model scores with its own tokenizer and chat
template. ``RewardModelReward`` is the default (a trained multi-dimensional reward model, every
dimension in one forward); ``CallableReward`` takes a plain Python function (rule rewards, tests).
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from lit_mrrml.errors import InputError
from lit_mrrml.matrix.compare import check_trained_matrix
from lit_mrrml.modules.loading import load_reward_model
from lit_mrrml.modules.reward import RewardModel

Prompts = Sequence[Sequence[Mapping[str, str]]]  # N chat message lists, each ending with the user's turn


class RewardSource(ABC):
    """Scores N (prompt, completion) pairs on L named dimensions: an (N, L) float32 CPU tensor.

    The interface leaves room for a rubric-judge reward later: one LLM call per criterion through
    ``lit_mrrml.backends``, its criteria scores summed per dimension, so that a run can compare the
    internalised rewards with judge rewards on the same rollouts.
    """

    @property
    @abstractmethod
    def dimension_names(self) -> list[str]:
        """The names of the L reward columns, in order."""

    @abstractmethod
    def score(self, prompts: Prompts, completions: Sequence[str]) -> Tensor:
        """(N, L) float32 CPU rewards of each completion (decoded text) as the reply to its prompt."""

    def to(self, device: str | torch.device) -> RewardSource:
        """Place the source on ``device`` (the policy's); nothing to move by default."""
        return self


class RewardModelReward(RewardSource):
    """A trained RewardModel, frozen and in eval mode, loaded on first use (or by ``load()``)."""

    def __init__(self, path: str, device: str | None = None, batch_size: int = 16, max_length: int = 1024) -> None:
        """
        Args:
            path: A RewardModel export folder (``save_pretrained``) or a Lightning ``.ckpt`` file.
            device: Where the reward model runs (default: the policy's device, which the policy
                module sets through ``to``; a device given here is kept).
            batch_size: (prompt, completion) rows per reward-model forward.
            max_length: Longest reward-model sequence, in the reward model's own tokens; a longer
                prompt is cut from the left.
        """
        self.path, self.device = path, device
        self.batch_size, self.max_length = batch_size, max_length
        self.placement: str | torch.device = device or "cpu"
        self.model: RewardModel | None = None

    def load(self) -> RewardModel:
        """The reward model, loaded once: frozen, in eval mode, without a feature cache."""
        if self.model is None:
            model = load_reward_model(self.path, str(self.placement), what="RewardModelReward.path")
            model.requires_grad_(False).eval()
            model.feature_cache = None  # every rollout is new text: caching its features only grows memory
            self.model = model
        return self.model

    def to(self, device: str | torch.device) -> RewardModelReward:
        """Run on ``device`` unless a device was given explicitly; moves a loaded model."""
        if self.device is None:
            self.placement = device
            if self.model is not None:
                self.model.to(device)
        return self

    @property
    def dimension_names(self) -> list[str]:
        return list(self.load().dimension_names)

    def check_matrix(self, dimension_names: list[str], matrix: dict[str, Any] | None) -> list[str]:
        """Refuse a run whose matrix has another dimension list than the model's; warn about (and
        return) the other changes (see ``lit_mrrml.matrix.compare``)."""
        model = self.load()
        return check_trained_matrix(model.dimension_names, model.matrix_snapshot, dimension_names, matrix, self.path)

    def score(self, prompts: Prompts, completions: Sequence[str]) -> Tensor:
        scores = self.load().score(
            prompts, completions, batch_size=self.batch_size, max_length=self.max_length, source=f"reward {self.path}"
        )
        return scores.rewards  # (N, L), all dimensions from one forward


def function_name(function: Callable[..., Any]) -> str:
    """``module.qualname`` of a function, for messages (the repr for other callables)."""
    qualname = getattr(function, "__qualname__", None)
    return f"{function.__module__}.{qualname}" if qualname else repr(function)


class CallableReward(RewardSource):
    """Rewards from a plain function ``function(prompts, completions)``: N rows of L numbers."""

    def __init__(self, function: Callable[..., Any], dimensions: list[str]) -> None:
        """
        Args:
            function: Called as ``function(prompts, completions)`` (chat message lists, completion
                texts); returns N rows of L finite numbers, an (N, L) tensor, or N numbers when
                L is 1. On the command line, an import path such as
                ``lit_mrrml.testing.policy_rewards.target_share``.
            dimensions: The names of the L reward columns the function returns, in order.
        """
        if not dimensions or len(set(dimensions)) != len(dimensions):
            raise InputError(f"CallableReward.dimensions: give one or more distinct names, got {dimensions}")
        self.function, self.dimensions = function, list(dimensions)

    @property
    def dimension_names(self) -> list[str]:
        return list(self.dimensions)

    def score(self, prompts: Prompts, completions: Sequence[str]) -> Tensor:
        if len(prompts) != len(completions):
            raise InputError(f"CallableReward.score: {len(prompts)} prompts and {len(completions)} completions")
        return self.check(self.function(prompts, completions), len(completions))

    def check(self, values: Any, n: int) -> Tensor:
        """(N, L) float32 CPU tensor of the function's result, or an InputError saying what is wrong."""
        name, width = function_name(self.function), len(self.dimensions)
        if isinstance(values, Tensor):
            values = values.detach().cpu().tolist()
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise InputError(f"reward function {name} returned {type(values).__name__}: expected {n} rows of numbers")
        if len(values) != n:
            raise InputError(f"reward function {name} returned {len(values)} rows for {n} completions")
        return torch.tensor([self._row(name, i, row, width) for i, row in enumerate(values)], dtype=torch.float32)

    def _row(self, name: str, i: int, row: Any, width: int) -> list[float]:
        """One row as L floats: a lone number passes when L is 1."""
        if width == 1 and isinstance(row, numbers.Real) and not isinstance(row, bool):
            row = [row]
        if isinstance(row, (str, bytes)) or not isinstance(row, Sequence):
            raise InputError(f"reward function {name}: row {i} is {row!r}, not a list of {width} numbers")
        if len(row) != width:
            raise InputError(f"reward function {name}: row {i} has {len(row)} values for the {width} {self.dimensions}")
        for dimension, value in zip(self.dimensions, row, strict=True):
            if not isinstance(value, numbers.Real) or isinstance(value, bool):
                raise InputError(f"reward function {name}: row {i}, {dimension}: {value!r} is not a number")
            if not math.isfinite(value):
                raise InputError(f"reward function {name}: row {i}, {dimension}: {value} is not finite")
        return [float(v) for v in row]
