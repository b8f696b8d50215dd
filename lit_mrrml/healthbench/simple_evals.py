"""The scores in the shape of OpenAI simple-evals' HealthBench output, to compare with its numbers.

simple-evals (``healthbench_eval.py``, ``_aggregate_get_clipped_mean`` and
``_compute_clipped_stats``) gives every example a metric ``overall_score`` (its example score), one
per example tag (the same value) and one per rubric tag (the score over the criteria with that
tag, left out when they have no positive points), plus the example's ``score`` (again the
example score). For each metric name it writes three entries: ``<name>``, the mean over the
examples that have it, clipped to [0, 1]; ``<name>:n_samples``, their count; and
``<name>:bootstrap_std``, the population standard deviation (numpy's default, ddof 0) of that
clipped mean over 1,000 resamples of the values, each of their own size, drawn with replacement
(each resample's mean is clipped before the deviation is taken). ``score`` itself is then taken out
of the metrics as the headline number, while ``score:n_samples`` and ``score:bootstrap_std`` stay.
The JSON it writes is those metrics with ``score`` beside them.

This block is built from ``scoring.score_rows``, which computes the same statistics: ``overall``
is ``overall_score`` (and ``score``). The reference draws its resamples from numpy's unseeded
global generator, so its deviations vary from run to run; ours come from a seeded generator per
key (``bootstrap_seed``), and ``score:bootstrap_std`` is the one of ``overall_score``, the two
being the same statistic over the same values.
"""

from __future__ import annotations

from typing import Any

from lit_mrrml.healthbench.scoring import OVERALL, Score

OVERALL_METRIC = "overall_score"  # the reference's name of the overall example score
SCORE = "score"


def simple_evals_block(scores: dict[str, Score]) -> dict[str, Any]:
    """``{"score": clipped mean, "metrics": {"<name>": ..., "<name>:n_samples": ..., "<name>:bootstrap_std": ...}}``.

    ``score`` is None and ``metrics`` empty when no row was graded. Metric names are sorted.
    """
    if OVERALL not in scores:
        return {SCORE: None, "metrics": {}}
    metrics: dict[str, float | int] = {}
    for key, value in scores.items():
        name = OVERALL_METRIC if key == OVERALL else key
        metrics |= _entries(name, value)
    overall = scores[OVERALL]
    metrics |= {k: v for k, v in _entries(SCORE, overall).items() if k != SCORE}
    return {SCORE: overall["score"], "metrics": dict(sorted(metrics.items()))}


def _entries(name: str, score: Score) -> dict[str, float | int]:
    return {
        name: score["score"],
        f"{name}:n_samples": score["n"],
        f"{name}:bootstrap_std": score["bootstrap_std"],
    }
