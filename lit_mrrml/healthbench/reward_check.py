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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lit_mrrml.aggregate import weighted_total
from lit_mrrml.data.collate import RankedUnitCollator
from lit_mrrml.data.encode import encode_unit
from lit_mrrml.data.units import RankedUnit
from lit_mrrml.healthbench.fingerprint import files_fingerprint
from lit_mrrml.healthbench.grading import GradedRow
from lit_mrrml.healthbench.options import RewardCheckOptions
from lit_mrrml.healthbench.scoring import OVERALL, example_metrics
from lit_mrrml.healthbench.store import KeyedLog
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.models.backbone import load_tokenizer
from lit_mrrml.modules.reward import RewardModel

log = logging.getLogger(__name__)


def load_reward_model(path: str, device: str = "cpu") -> RewardModel:
    """A reward model export folder or a Lightning checkpoint file, in eval mode."""
    source = Path(path)
    if source.is_dir():
        return RewardModel.from_pretrained(source, map_location=device)
    if source.is_file():
        return RewardModel.load_from_checkpoint(source, map_location=device).eval()
    raise FileNotFoundError(f"reward_check.model: {path} is neither an export folder nor a checkpoint file")


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation: Pearson's on average ranks; None below 3 points or when constant."""
    if len(x) != len(y):
        raise ValueError(f"{len(x)} values against {len(y)}")
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(np.corrcoef(average_ranks(x), average_ranks(y))[0, 1])


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank ([10, 20, 10] -> [1.5, 3, 1.5])."""
    _, inverse, counts = np.unique(np.asarray(values, dtype=np.float64), return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2)[inverse]


def axis_dimensions(model: RewardModel, axis_map: dict[str, str] | None) -> dict[str, int]:
    """HealthBench axis tag -> reward dimension index, from the matrix snapshot and ``axis_map``."""
    names = model.dimension_names
    found: dict[str, int] = {}
    if model.matrix_snapshot is not None:
        matrix = RubricMatrix.from_dict(model.matrix_snapshot, "reward model matrix")
        found = {d.healthbench_axis: names.index(d.id) for d in matrix.dimensions if d.healthbench_axis}
    for axis, dimension in (axis_map or {}).items():
        if dimension not in names:
            raise ValueError(f"reward_check.axis_map: {axis} -> unknown reward dimension {dimension!r} (has {names})")
        found[axis if axis.startswith("axis:") else f"axis:{axis}"] = names.index(dimension)
    return found


class RewardScorer:
    """Scores (conversation, answer) pairs with a reward model, through the reward cache."""

    def __init__(self, options: RewardCheckOptions, cache: KeyedLog) -> None:
        assert options.model is not None
        self.options, self.cache = options, cache
        self.id = f"{Path(options.model).name}@{files_fingerprint([Path(options.model)])}"
        self.model = load_reward_model(options.model, options.device)
        self.tokenizer = load_tokenizer(self.model.spec)
        self.collate = RankedUnitCollator(int(self.tokenizer.pad_token_id))

    def pending(self, graded: Sequence[GradedRow]) -> int:
        return sum(self.cache.get(self.id, g.answer.conversation_hash) is None for g in graded)

    def score(self, graded: Sequence[GradedRow], advance: Callable[[int], None]) -> list[list[float]]:
        """(N, L) rewards of every answer on every dimension, in order."""
        todo = [g for g in graded if self.cache.get(self.id, g.answer.conversation_hash) is None]
        for start in range(0, len(todo), self.options.batch_size):
            batch = todo[start : start + self.options.batch_size]
            for g, rewards in zip(batch, self._forward(batch), strict=True):
                record = {"reward_model": self.id, "conversation": g.answer.conversation_hash, "rewards": rewards}
                self.cache.put(record)
            advance(len(batch))
        return [self.cache.get(self.id, g.answer.conversation_hash)["rewards"] for g in graded]  # type: ignore[index]

    @torch.inference_mode()
    def _forward(self, batch: Sequence[GradedRow]) -> list[list[float]]:
        units = [
            encode_unit(
                RankedUnit(g.row.prompt_id, g.answer.messages, "", "", "", (g.answer.text,)),
                self.tokenizer,
                self.options.max_length,
                dimension=0,
                scenario=0,
            )
            for g in batch
        ]
        tensors = {k: v.to(self.model.device) if torch.is_tensor(v) else v for k, v in self.collate(units).items()}
        out, _ = self.model.score_batch(tensors)  # rewards (B, 1, L)
        return out.rewards[:, 0].float().cpu().tolist()

    def totals(self, graded: Sequence[GradedRow], rewards: list[list[float]]) -> list[float]:
        """The scenario-weighted total reward of each answer (uniform where no scenario matches)."""
        by_theme = self._theme_weights()
        uniform = [1.0 / self.model.num_dimensions] * self.model.num_dimensions
        weights = [next((by_theme[t] for t in g.row.example_tags if t in by_theme), uniform) for g in graded]
        totals = weighted_total(torch.tensor(rewards, dtype=torch.float64), torch.tensor(weights, dtype=torch.float64))
        return totals.tolist()  # (N,)

    def _theme_weights(self) -> dict[str, list[float]]:
        if self.model.matrix_snapshot is None:
            return {}
        matrix = RubricMatrix.from_dict(self.model.matrix_snapshot, "reward model matrix")
        rows = matrix.weight_matrix()  # (S, L)
        return {s.healthbench_theme: list(rows[i]) for i, s in enumerate(matrix.scenarios) if s.healthbench_theme}

    def check(self, graded: Sequence[GradedRow], advance: Callable[[int], None]) -> dict[str, Any]:
        """Per axis (and overall): the matched dimension, Spearman's rho and the rows it is over."""
        rewards = self.score(graded, advance)
        per_row = [example_metrics(g.row, g.met) for g in graded]
        pairs: dict[str, tuple[str, list[float]]] = {
            OVERALL: ("total", self.totals(graded, rewards)),
        }
        names = self.model.dimension_names
        for axis, index in sorted(axis_dimensions(self.model, self.options.axis_map).items()):
            pairs[axis] = (names[index], [r[index] for r in rewards])
        result: dict[str, Any] = {}
        for key, (dimension, values) in pairs.items():
            kept = [(v, m[key]) for v, m in zip(values, per_row, strict=True) if key in m]
            rho = spearman([v for v, _ in kept], [s for _, s in kept])
            result[key] = {"dimension": dimension, "spearman": rho, "n": len(kept)}
        return {"reward_model": self.id, "path": self.options.model, "axes": result}
