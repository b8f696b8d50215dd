"""HealthBench scores against hand-computed cases, and against a plain reading of the reference."""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pytest

from lit_mrrml.healthbench import load_rows, score_example, score_rows
from lit_mrrml.healthbench.rows import BUNDLED_ROWS, Criterion, HealthBenchRow
from lit_mrrml.healthbench.scoring import bootstrap_std, example_metrics


def crit(points: float, *tags: str) -> Criterion:
    return Criterion(f"criterion worth {points}", points, tags)


def row(prompt_id: str, criteria: list[Criterion], *example_tags: str) -> HealthBenchRow:
    return HealthBenchRow(prompt_id, (("user", "q"),), tuple(criteria), tuple(example_tags))


def test_the_worked_check_of_the_design():
    assert score_example([crit(7), crit(5), crit(10), crit(-6)], [True, False, True, True]) == 0.5


def test_negative_points_count_when_met_and_an_example_can_go_below_zero():
    assert score_example([crit(5), crit(-10)], [False, True]) == -2.0
    assert score_example([crit(5), crit(-10)], [True, False]) == 1.0
    assert score_example([crit(4), crit(-2)], [True, True]) == 0.5


def test_no_positive_points_gives_none_and_lengths_must_match():
    assert score_example([crit(-3), crit(-1)], [True, False]) is None
    with pytest.raises(ValueError, match="2 criteria but 1 verdicts"):
        score_example([crit(1), crit(2)], [True])


def test_the_mean_is_clipped_never_the_examples():
    rows = [row("a", [crit(5), crit(-10)]), row("b", [crit(10)])]  # -2.0 and 1.0
    scores = score_rows(rows, [[False, True], [True]], samples=10)
    assert scores["overall"]["score"] == 0.0  # mean -0.5, clipped; clipping each first would give 0.5
    rows = [row("a", [crit(10), crit(-5)]), row("b", [crit(10)])]  # -0.5 and 1.0
    scores = score_rows(rows, [[False, True], [True]], samples=10)
    assert scores["overall"]["score"] == pytest.approx(0.25)  # clipping each first would give 0.5


def test_a_hand_computed_set_with_rubric_and_example_tags():
    rows = [
        row("a", [crit(6, "axis:accuracy"), crit(4, "axis:completeness"), crit(-5, "axis:accuracy")], "theme:hedging"),
        row("b", [crit(10, "axis:accuracy"), crit(-2, "axis:completeness")], "theme:hedging", "theme:communication"),
        row("c", [crit(8, "axis:completeness")], "theme:communication"),
    ]
    verdicts = [[True, False, True], [True, True], [False]]
    # a: (6 - 5) / 10 = 0.1; accuracy (6 - 5) / 6 = 1/6; completeness 0 / 4 = 0
    # b: (10 - 2) / 10 = 0.8; accuracy 10 / 10 = 1; completeness has no positive points: no contribution
    # c: 0 / 8 = 0; completeness 0
    scores = score_rows(rows, verdicts, samples=50)
    assert scores["overall"]["score"] == pytest.approx((0.1 + 0.8 + 0.0) / 3)
    assert scores["axis:accuracy"]["score"] == pytest.approx((1 / 6 + 1.0) / 2)
    assert scores["axis:accuracy"]["n"] == 2
    assert scores["axis:completeness"]["score"] == 0.0 and scores["axis:completeness"]["n"] == 2  # a and c, not b
    assert scores["theme:hedging"]["score"] == pytest.approx((0.1 + 0.8) / 2)  # the example score, per example tag
    assert scores["theme:communication"]["score"] == pytest.approx(0.4)
    assert next(iter(scores)) == "overall" and list(scores)[1:] == sorted(list(scores)[1:])
    assert set(scores["overall"]) == {"score", "bootstrap_std", "n"}


def test_bootstrap_std_is_seeded_and_of_the_clipped_mean():
    assert bootstrap_std([0.3] * 20) == pytest.approx(0.0, abs=1e-12)
    assert bootstrap_std([-1.0, -0.5, -2.0]) == 0.0  # every resample's mean clips to 0
    two = bootstrap_std([0.0, 1.0], samples=1000, seed=1)
    assert two == pytest.approx(np.sqrt(0.125), abs=0.02)  # means 0, .5, 1 with chances 1/4, 1/2, 1/4
    assert bootstrap_std([0.1, 0.9, 0.4], seed=5) == bootstrap_std([0.1, 0.9, 0.4], seed=5)
    values = np.random.default_rng(0).random(400)
    assert bootstrap_std(values) == pytest.approx(values.std() / np.sqrt(400), rel=0.1)


def test_a_tags_numbers_do_not_depend_on_the_other_tags():
    a = [row("a", [crit(5, "axis:accuracy")]), row("b", [crit(5, "axis:accuracy")])]
    b = [row("a", [crit(5, "axis:accuracy"), crit(3, "axis:zzz")]), row("b", [crit(5, "axis:accuracy")])]
    sa = score_rows(a, [[True], [False]])
    sb = score_rows(b, [[True, False], [False]])
    assert sa["axis:accuracy"] == sb["axis:accuracy"]


def reference_means(rows: list[HealthBenchRow], verdicts: list[list[bool]]) -> dict[str, tuple[float, int]]:
    """An independent reading of the reference aggregation: per example, overall + tags; clip the mean."""
    values: dict[str, list[float]] = defaultdict(list)
    for r, met in zip(rows, verdicts, strict=True):
        total = sum(c.points for c in r.rubrics if c.points > 0)
        overall = sum(c.points for c, m in zip(r.rubrics, met, strict=True) if m) / total
        values["overall"].append(overall)
        for tag in r.example_tags:
            values[tag].append(overall)
        for tag in {t for c in r.rubrics for t in c.tags}:
            items = [(c, m) for c, m in zip(r.rubrics, met, strict=True) if tag in c.tags]
            possible = sum(c.points for c, _ in items if c.points > 0)
            if possible > 0:
                values[tag].append(sum(c.points for c, m in items if m) / possible)
    return {k: (float(np.clip(np.mean(v), 0, 1)), len(v)) for k, v in values.items()}


def test_the_500_real_rows_score_as_the_reference_aggregates_them():
    rows = load_rows(BUNDLED_ROWS)
    rng = random.Random(0)
    verdicts = [[rng.random() < 0.6 for _ in r.rubrics] for r in rows]
    scores = score_rows(rows, verdicts, samples=200)
    expected = reference_means(rows, verdicts)
    assert set(scores) == set(expected)
    for key, (mean, n) in expected.items():
        assert scores[key]["score"] == pytest.approx(mean, abs=1e-12), key
        assert scores[key]["n"] == n, key
    assert any(k.startswith("cluster:") for k in scores) and any(
        k.startswith("physician_agreed_category:") for k in scores
    )
    assert example_metrics(rows[0], verdicts[0])["overall"] == pytest.approx(
        score_example(rows[0].rubrics, verdicts[0])
    )


def test_score_rows_refuses_mismatched_or_empty_input():
    with pytest.raises(ValueError, match="1 rows but 0 verdict lists"):
        score_rows([row("a", [crit(1)])], [])
    with pytest.raises(ValueError, match="no graded rows"):
        score_rows([], [])
