"""The internalised-reward check: does the reward model rank answers as the rubric judge grades them?

The paper's claim is that the reward model internalises rubric grading. Every answered row is also
scored by a trained reward model (one forward pass gives every dimension); for each HealthBench
axis with a matching reward dimension, the report gives the Spearman correlation, over the graded
rows, between that dimension's reward and the row's judge-graded axis score (rows whose criteria
on that axis have no positive points are left out, as in the axis score). ``overall`` compares
the reward model's total (the scenario-weighted sum, the scenario found from the row's theme)
with the row's overall score. Scores are cached by (reward model fingerprint, conversation).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from lit_mrrml.aggregate import weighted_total
from lit_mrrml.healthbench.fingerprint import files_fingerprint
from lit_mrrml.healthbench.grading import GradedRow
from lit_mrrml.healthbench.options import RewardCheckOptions
from lit_mrrml.healthbench.scoring import OVERALL, example_metrics
from lit_mrrml.healthbench.store import KeyedLog
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.modules import loading
from lit_mrrml.modules.reward import RewardModel

log = logging.getLogger(__name__)


def load_reward_model(path: str, device: str = "cpu", matrix: RubricMatrix | None = None) -> RewardModel:
    """``lit_mrrml.modules.loading.load_reward_model`` for ``reward_check.model``."""
    return loading.load_reward_model(path, device, matrix, what="reward_check.model")


class Correlation(NamedTuple):
    """Spearman's rho, or None with the reason it is undefined."""

    rho: float | None
    reason: str | None = None


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> Correlation:
    """Spearman's rank correlation (Pearson's on average ranks), or why there is none."""
    if len(x) != len(y):
        raise ValueError(f"{len(x)} values against {len(y)}")
    if len(x) < 3:
        return Correlation(None, f"{len(x)} graded row(s): at least 3 are needed")
    if not all(math.isfinite(v) for v in [*x, *y]):
        return Correlation(None, "non-finite values")
    if len(set(x)) < 2:
        return Correlation(None, "the reward is the same on every row")
    if len(set(y)) < 2:
        return Correlation(None, "the judge-graded score is the same on every row")
    rho = float(np.corrcoef(average_ranks(x), average_ranks(y))[0, 1])
    return Correlation(rho, None) if math.isfinite(rho) else Correlation(None, "undefined (NaN)")


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation; None below 3 points, when constant or not finite (see rank_correlation)."""
    return rank_correlation(x, y).rho


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank ([10, 20, 10] -> [1.5, 3, 1.5])."""
    _, inverse, counts = np.unique(np.asarray(values, dtype=np.float64), return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2)[inverse]


def axis_dimensions(
    model: RewardModel, axis_map: dict[str, str] | None, matrix: RubricMatrix | None = None
) -> dict[str, int]:
    """HealthBench axis tag -> reward dimension index, from the matrix (default: the model's snapshot)
    and ``axis_map``."""
    names = model.dimension_names
    found: dict[str, int] = {}
    matrix = matrix or snapshot_matrix(model)
    if matrix is not None:
        found = {d.healthbench_axis: names.index(d.id) for d in matrix.dimensions if d.healthbench_axis}
    for axis, dimension in (axis_map or {}).items():
        if dimension not in names:
            raise ValueError(f"reward_check.axis_map: {axis} -> unknown reward dimension {dimension!r} (has {names})")
        found[axis if axis.startswith("axis:") else f"axis:{axis}"] = names.index(dimension)
    return found


def snapshot_matrix(model: RewardModel) -> RubricMatrix | None:
    """The matrix the model was trained with (None when it has no snapshot)."""
    if model.matrix_snapshot is None:
        return None
    return RubricMatrix.from_dict(model.matrix_snapshot, "reward model matrix")


class RewardScorer:
    """Scores (conversation, answer) pairs with a reward model, through the reward cache."""

    def __init__(self, options: RewardCheckOptions, cache: KeyedLog) -> None:
        assert options.model is not None
        self.options, self.cache = options, cache
        self.id = f"{Path(options.model).name}@{files_fingerprint([Path(options.model)])}"
        in_use = RubricMatrix.from_yaml(options.matrix) if options.matrix else None
        self.model = load_reward_model(options.model, options.device, in_use)
        self.matrix = in_use or snapshot_matrix(self.model)

    def cached(self, g: GradedRow) -> list[float] | None:
        """The cached rewards of an answer; a record with a non-finite value is scored again."""
        record = self.cache.get(self.id, g.answer.conversation_hash)
        if record is None or not all(math.isfinite(r) for r in record["rewards"]):
            return None
        return list(record["rewards"])

    def pending(self, graded: Sequence[GradedRow]) -> int:
        return sum(self.cached(g) is None for g in graded)

    def score(self, graded: Sequence[GradedRow], advance: Callable[[int], None]) -> list[list[float]]:
        """(N, L) rewards of every answer on every dimension, in order."""
        todo = [g for g in graded if self.cached(g) is None]
        for start in range(0, len(todo), self.options.batch_size):
            batch = todo[start : start + self.options.batch_size]
            for g, rewards in zip(batch, self._forward(batch), strict=True):
                record = {"reward_model": self.id, "conversation": g.answer.conversation_hash, "rewards": rewards}
                self.cache.put(record)
            advance(len(batch))
        return [self.cached(g) or [] for g in graded]

    def _forward(self, batch: Sequence[GradedRow]) -> list[list[float]]:
        scores = self.model.score(
            [g.answer.message_dicts for g in batch],
            [g.answer.text for g in batch],
            batch_size=self.options.batch_size,
            max_length=self.options.max_length,
            row_ids=[g.row.prompt_id for g in batch],
            source=f"reward_check.model {self.id}",
        )
        return scores.rewards.tolist()  # (B, L)

    def totals(self, graded: Sequence[GradedRow], rewards: list[list[float]]) -> list[float]:
        """The scenario-weighted total reward of each answer (uniform where no scenario matches)."""
        by_theme = self._theme_weights()
        uniform = [1.0 / self.model.num_dimensions] * self.model.num_dimensions
        weights = [next((by_theme[t] for t in g.row.example_tags if t in by_theme), uniform) for g in graded]
        totals = weighted_total(torch.tensor(rewards, dtype=torch.float64), torch.tensor(weights, dtype=torch.float64))
        return totals.tolist()  # (N,)

    def _theme_weights(self) -> dict[str, list[float]]:
        if self.matrix is None:
            return {}
        rows = self.matrix.weight_matrix()  # (S, L)
        return {s.healthbench_theme: list(rows[i]) for i, s in enumerate(self.matrix.scenarios) if s.healthbench_theme}

    def check(self, graded: Sequence[GradedRow], advance: Callable[[int], None]) -> dict[str, Any]:
        """Per axis (and overall): the matched dimension, Spearman's rho and the rows it is over."""
        rewards = self.score(graded, advance)
        per_row = [example_metrics(g.row, g.met) for g in graded]
        pairs: dict[str, tuple[str, list[float]]] = {
            OVERALL: ("total", self.totals(graded, rewards)),
        }
        names = self.model.dimension_names
        for axis, index in sorted(axis_dimensions(self.model, self.options.axis_map, self.matrix).items()):
            pairs[axis] = (names[index], [r[index] for r in rewards])
        result: dict[str, Any] = {}
        for key, (dimension, values) in pairs.items():
            kept = [(v, m[key]) for v, m in zip(values, per_row, strict=True) if key in m]
            rho, reason = rank_correlation([v for v, _ in kept], [s for _, s in kept])
            result[key] = {"dimension": dimension, "spearman": rho, "reason": reason, "n": len(kept)}
        return {"reward_model": self.id, "path": self.options.model, "axes": result}
