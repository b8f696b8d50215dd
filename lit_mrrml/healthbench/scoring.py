"""HealthBench scores, exactly as the reference computes them (design/healthbench.md).

- Example score: points of the met criteria (negative ones included) over the positive points of
  all its criteria. Not clipped: it can be below 0; it is at most 1.
- Rubric-tag score (``axis:*``, ``level:*``, ``cluster:*``): the same formula over the criteria
  carrying the tag; an example whose criteria with that tag have no positive points contributes
  nothing to that tag.
- Example-tag score (``theme:*``, ``physician_agreed_category:*``): the example score, attributed
  to each of the example's tags.
- Every aggregate is the mean over its examples, then clipped to [0, 1] (the mean, never the
  examples), with the bootstrap standard deviation of that clipped mean over resamples with
  replacement. Each key's resamples are drawn from its own seeded generator, so adding or
  removing a tag never changes the others' numbers.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Sequence
from typing import TypedDict

import numpy as np

from lit_mrrml.healthbench.rows import Criterion, HealthBenchRow

OVERALL = "overall"


class Score(TypedDict):
    """One aggregate: the clipped mean, its bootstrap standard deviation, and how many examples."""

    score: float
    bootstrap_std: float
    n: int


def score_example(rubrics: Sequence[Criterion], met: Sequence[bool]) -> float | None:
    """The example's score (unclipped), or None when its criteria have no positive points."""
    if len(rubrics) != len(met):
        raise ValueError(f"{len(rubrics)} criteria but {len(met)} verdicts")
    possible = sum(c.points for c in rubrics if c.points > 0)
    if possible <= 0:
        return None
    achieved = sum(c.points for c, m in zip(rubrics, met, strict=True) if m)
    return float(achieved / possible)


def example_metrics(row: HealthBenchRow, met: Sequence[bool]) -> dict[str, float]:
    """The row's contribution to every key: ``overall``, its example tags and its rubric tags."""
    overall = score_example(row.rubrics, met)
    if overall is None:
        raise ValueError(f"row {row.prompt_id!r} has no criterion with positive points")
    metrics = {OVERALL: overall} | {tag: overall for tag in row.example_tags}
    by_tag: dict[str, list[int]] = defaultdict(list)
    for i, criterion in enumerate(row.rubrics):
        for tag in criterion.tags:
            by_tag[tag].append(i)
    for tag, indices in by_tag.items():
        score = score_example([row.rubrics[i] for i in indices], [met[i] for i in indices])
        if score is not None:  # a tag with no positive points on this row says nothing about it
            metrics[tag] = score
    return metrics


def clipped_mean(values: Sequence[float] | np.ndarray) -> float:
    return float(np.clip(np.mean(values), 0.0, 1.0))


def bootstrap_std(values: Sequence[float], samples: int = 1000, seed: int | Sequence[int] = 0) -> float:
    """Standard deviation of the clipped mean over ``samples`` resamples with replacement."""
    data = np.asarray(values, dtype=np.float64)  # (n,)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(data), size=(samples, len(data)))  # (samples, n)
    means = np.clip(data[picks].mean(axis=1), 0.0, 1.0)  # (samples,)
    return float(np.std(means))


def score_rows(
    rows: Sequence[HealthBenchRow], verdicts: Sequence[Sequence[bool]], samples: int = 1000, seed: int = 0
) -> dict[str, Score]:
    """Every aggregate of graded rows: ``overall``, each rubric tag and each example tag.

    ``verdicts[i][j]`` says whether criterion j of row i is met. Keys are sorted, ``overall`` first.
    """
    if len(rows) != len(verdicts):
        raise ValueError(f"{len(rows)} rows but {len(verdicts)} verdict lists")
    if not rows:
        raise ValueError("no graded rows to score")
    values: dict[str, list[float]] = defaultdict(list)
    for row, met in zip(rows, verdicts, strict=True):
        for key, value in example_metrics(row, met).items():
            values[key].append(value)
    keys = [OVERALL, *sorted(k for k in values if k != OVERALL)]
    return {
        key: Score(
            score=clipped_mean(values[key]),
            bootstrap_std=bootstrap_std(values[key], samples, _key_seed(seed, key)),
            n=len(values[key]),
        )
        for key in keys
    }


def _key_seed(seed: int, key: str) -> list[int]:
    return [seed, zlib.crc32(key.encode("utf-8"))]
