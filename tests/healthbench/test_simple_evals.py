"""results.json's simple-evals block: the reference's metric names, means, counts and bootstrap stds."""

from __future__ import annotations

import statistics
import zlib
from collections import defaultdict

import numpy as np
import pytest

from lit_mrrml.healthbench.rows import Criterion, HealthBenchRow
from lit_mrrml.healthbench.scoring import score_rows
from lit_mrrml.healthbench.simple_evals import simple_evals_block
from tests.healthbench.conftest import EXPECTED_OVERALL, make_eval

SAMPLES, SEED = 1000, 7


def row(prompt_id: str, criteria: list[tuple[float, str]], *example_tags: str) -> HealthBenchRow:
    rubrics = tuple(Criterion(f"c{i}", points, (tag,)) for i, (points, tag) in enumerate(criteria))
    return HealthBenchRow(prompt_id, (("user", "q"),), rubrics, tuple(example_tags))


ROWS = [
    row("a", [(6, "axis:accuracy"), (4, "axis:completeness")], "theme:hedging"),
    row("b", [(10, "axis:accuracy"), (-5, "axis:completeness")], "theme:hedging"),
    row("c", [(5, "axis:completeness")]),
]
MET = [[True, False], [False, True], [True]]
# a: overall 6/10 = 0.6, accuracy 6/6 = 1, completeness 0/4 = 0
# b: overall -5/10 = -0.5, accuracy 0/10 = 0, completeness has no positive points: no value
# c: overall 5/5 = 1, completeness 5/5 = 1
VALUES = {
    "overall_score": [0.6, -0.5, 1.0],
    "axis:accuracy": [1.0, 0.0],
    "axis:completeness": [0.0, 1.0],
    "theme:hedging": [0.6, -0.5],
}


def block() -> dict:
    return simple_evals_block(score_rows(ROWS, MET, SAMPLES, SEED))


def test_the_score_means_and_counts_by_hand():
    got = block()
    assert got["score"] == pytest.approx(1.1 / 3)  # (0.6 - 0.5 + 1) / 3, inside [0, 1]
    metrics = got["metrics"]
    assert metrics["overall_score"] == pytest.approx(1.1 / 3) and metrics["overall_score:n_samples"] == 3
    assert metrics["axis:accuracy"] == 0.5 and metrics["axis:accuracy:n_samples"] == 2
    assert metrics["axis:completeness"] == 0.5 and metrics["axis:completeness:n_samples"] == 2  # a and c
    assert metrics["theme:hedging"] == pytest.approx(0.05) and metrics["theme:hedging:n_samples"] == 2
    assert metrics["score:n_samples"] == 3 and "score" not in metrics  # as the reference pops it out
    names = ["overall_score", "axis:accuracy", "axis:completeness", "theme:hedging"]
    expected = {f"{n}{s}" for n in names for s in ("", ":n_samples", ":bootstrap_std")}
    assert set(metrics) == expected | {"score:n_samples", "score:bootstrap_std"}
    assert list(metrics) == sorted(metrics)


def independent_std(values: list[float], key: str) -> float:
    """The population std of the clipped means of SAMPLES resamples, in plain Python over the draws
    of the key's documented generator (seed, crc32 of the key)."""
    draws = np.random.default_rng([SEED, zlib.crc32(key.encode())]).integers(0, len(values), (SAMPLES, len(values)))
    means = [min(max(sum(values[i] for i in picks) / len(values), 0.0), 1.0) for picks in draws.tolist()]
    return statistics.pstdev(means)


def test_the_bootstrap_stds_with_a_fixed_seed():
    metrics = block()["metrics"]
    for name, values in VALUES.items():
        key = "overall" if name == "overall_score" else name
        assert metrics[f"{name}:bootstrap_std"] == pytest.approx(independent_std(values, key), abs=1e-12), name
    assert metrics["score:bootstrap_std"] == metrics["overall_score:bootstrap_std"]
    # by hand, two values: resample means x, (x + y) / 2, y with chances 1/4, 1/2, 1/4, then clipped
    assert metrics["axis:accuracy:bootstrap_std"] == pytest.approx(np.sqrt(0.125), abs=0.02)  # 0, .5, 1
    # theme:hedging: 0.6, 0.05, clip(-0.5) = 0: mean 0.175, variance 0.09125 - 0.175**2 = 0.060625
    assert metrics["theme:hedging:bootstrap_std"] == pytest.approx(np.sqrt(0.060625), abs=0.02)
    assert block() == block()  # seeded


def reference_aggregate(rows: list[HealthBenchRow], met: list[list[bool]]) -> dict[str, float]:
    """The reference's aggregation read plainly: each example's metrics plus its score, then per name
    the clipped mean and the count; ``score`` taken out as the headline (stds aside: unseeded there)."""
    values: dict[str, list[float]] = defaultdict(list)
    for r, m in zip(rows, met, strict=True):
        overall = sum(c.points for c, x in zip(r.rubrics, m, strict=True) if x) / sum(
            c.points for c in r.rubrics if c.points > 0
        )
        metrics = {"overall_score": overall} | dict.fromkeys(r.example_tags, overall)
        for tag in {t for c in r.rubrics for t in c.tags}:
            items = [(c, x) for c, x in zip(r.rubrics, m, strict=True) if tag in c.tags]
            possible = sum(c.points for c, _ in items if c.points > 0)
            if possible > 0:
                metrics[tag] = sum(c.points for c, x in items if x) / possible
        for name, value in metrics.items():
            values[name].append(value)
        values["score"].append(overall)
    final = {}
    for name, v in values.items():
        final[name] = float(np.clip(np.mean(v), 0, 1))
        final[f"{name}:n_samples"] = len(v)
    return final


def test_means_and_counts_agree_with_a_plain_reading_of_the_reference():
    got = block()
    expected = reference_aggregate(ROWS, MET)
    assert got["score"] == pytest.approx(expected.pop("score"))
    without_std = {k: v for k, v in got["metrics"].items() if not k.endswith(":bootstrap_std")}
    assert without_std == pytest.approx(expected)


def test_no_graded_row_gives_no_score():
    assert simple_evals_block({}) == {"score": None, "metrics": {}}


def test_results_json_carries_the_block(tmp_path, judge_server, rows_file):
    results = make_eval(tmp_path / "out", judge_server, rows_file).run().results
    block, scores = results["simple_evals"], results["scores"]
    assert block["score"] == EXPECTED_OVERALL == 0.0
    assert block["metrics"]["axis:accuracy"] == pytest.approx(11 / 17)
    assert block["metrics"]["overall_score:n_samples"] == 3 and block["metrics"]["theme:hedging:n_samples"] == 2
    for key, score in scores.items():
        name = "overall_score" if key == "overall" else key
        assert block["metrics"][f"{name}:bootstrap_std"] == score["bootstrap_std"]
