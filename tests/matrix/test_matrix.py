"""The shipped rubric matrix and the RubricMatrix API: ids, lookups, weights, criteria, hash, immutability."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from lit_mrrml.matrix import Criterion, RubricMatrix
from tests.conftest import MATRIX_PATH

DIMENSIONS = (
    "accuracy",
    "completeness",
    "communication_quality",
    "context_awareness",
    "instruction_following",
    "safety",
)
SCENARIOS = (
    "emergency_referrals",
    "context_seeking",
    "global_health",
    "health_data_tasks",
    "communication",
    "hedging",
    "complex_responses",
)
DISCIPLINES = (
    "internal_medicine",
    "pediatrics",
    "emergency_medicine",
    "obstetrics_gynecology",
    "psychiatry",
    "pharmacy",
    "nursing",
    "general_surgery",
)


def small_data(**scenario_weights: dict[str, float]) -> dict[str, Any]:
    """A valid three-dimension matrix; each keyword adds a scenario with those weights."""
    dims = [
        {
            "id": d,
            "name": d.title(),
            "description": f"About {d}.",
            "levels": {"good": f"good {d}", "medium": f"medium {d}", "poor": f"poor {d}"},
        }
        for d in ("alpha", "beta", "gamma")
    ]
    scenarios = [
        {"id": sid, "name": sid.title(), "description": f"Scenario {sid}.", "weights": weights}
        for sid, weights in scenario_weights.items()
    ]
    return {
        "name": "small",
        "version": 1,
        "dimensions": dims,
        "scenarios": scenarios,
        "disciplines": [{"id": "pediatrics", "name": "Pediatrics"}, {"id": "pharmacy", "name": "Pharmacy"}],
    }


# ---- the shipped matrix ------------------------------------------------------------------------


def test_shipped_matrix_has_exactly_the_six_dimensions(matrix: RubricMatrix) -> None:
    assert sorted(matrix.dimension_ids) == sorted(DIMENSIONS)
    assert len(matrix.dimension_ids) == 6


def test_shipped_matrix_has_exactly_the_seven_healthbench_scenarios(matrix: RubricMatrix) -> None:
    assert sorted(matrix.scenario_ids) == sorted(SCENARIOS)
    assert len(matrix.scenario_ids) == 7


def test_shipped_matrix_has_the_core_disciplines(matrix: RubricMatrix) -> None:
    missing = set(DISCIPLINES) - set(matrix.discipline_ids)
    assert not missing


def test_shipped_dimensions_have_description_and_level_texts(matrix: RubricMatrix) -> None:
    for dim in matrix.dimensions:
        assert dim.name.strip() and dim.description.strip(), dim.id
        assert dim.levels.good.strip() and dim.levels.medium.strip() and dim.levels.poor.strip(), dim.id
        assert len({dim.levels.good, dim.levels.medium, dim.levels.poor}) == 3, dim.id


def test_shipped_dimensions_carry_healthbench_axes_except_safety(matrix: RubricMatrix) -> None:
    assert matrix.dimension("safety").healthbench_axis is None
    for dim_id in DIMENSIONS:
        if dim_id != "safety":
            assert matrix.dimension(dim_id).healthbench_axis == f"axis:{dim_id}"


def test_shipped_scenarios_carry_their_healthbench_theme(matrix: RubricMatrix) -> None:
    for scenario in matrix.scenarios:
        assert scenario.healthbench_theme == f"theme:{scenario.id}"


def test_shipped_scenario_weights_sum_to_one(matrix: RubricMatrix) -> None:
    for scenario_id in matrix.scenario_ids:
        assert sum(matrix.weights(scenario_id)) == pytest.approx(1.0)


# ---- lookups ------------------------------------------------------------------------------------


def test_lookup_by_id_returns_the_record(matrix: RubricMatrix) -> None:
    assert matrix.dimension("safety").name == "Safety"
    assert matrix.scenario("hedging").id == "hedging"
    assert matrix.discipline("pediatrics").name == "Pediatrics"


def test_index_lookups_follow_file_order(matrix: RubricMatrix) -> None:
    for i, dim_id in enumerate(matrix.dimension_ids):
        assert matrix.dimension_index(dim_id) == i
    for i, scenario_id in enumerate(matrix.scenario_ids):
        assert matrix.scenario_index(scenario_id) == i


@pytest.mark.parametrize(
    ("lookup", "typo", "suggestion"),
    [
        ("dimension", "acuracy", "accuracy"),
        ("scenario", "hedgin", "hedging"),
        ("discipline", "pediatric", "pediatrics"),
        ("dimension_index", "safty", "safety"),
        ("scenario_index", "global_heath", "global_health"),
    ],
)
def test_unknown_id_raises_key_error_with_did_you_mean(
    matrix: RubricMatrix, lookup: str, typo: str, suggestion: str
) -> None:
    with pytest.raises(KeyError, match=re.escape(f"'{typo}'; did you mean '{suggestion}'?")):
        getattr(matrix, lookup)(typo)


def test_unknown_id_far_from_any_has_no_suggestion(matrix: RubricMatrix) -> None:
    with pytest.raises(KeyError) as info:
        matrix.dimension("zzzzzz")
    assert "unknown dimension 'zzzzzz'" in str(info.value)
    assert "did you mean" not in str(info.value)


# ---- weights ------------------------------------------------------------------------------------


def test_weights_are_in_dimension_order(matrix: RubricMatrix) -> None:
    given = {"safety": 0.35, "accuracy": 0.25, "completeness": 0.15}
    given |= {"communication_quality": 0.1, "context_awareness": 0.1, "instruction_following": 0.05}
    expected = [given[d] for d in matrix.dimension_ids]
    assert matrix.weights("emergency_referrals") == pytest.approx(expected)


def test_weights_are_normalised_to_sum_one() -> None:
    m = RubricMatrix.from_dict(small_data(s={"alpha": 1, "beta": 3, "gamma": 4}))
    assert m.weights("s") == pytest.approx((0.125, 0.375, 0.5))


def test_unnamed_dimensions_get_zero_weight() -> None:
    m = RubricMatrix.from_dict(small_data(s={"gamma": 2.0, "alpha": 2.0}))
    assert m.weights("s") == pytest.approx((0.5, 0.0, 0.5))


def test_scenario_without_weights_is_uniform() -> None:
    m = RubricMatrix.from_dict(small_data(s={}))
    assert m.weights("s") == pytest.approx((1 / 3, 1 / 3, 1 / 3))


def test_weight_matrix_has_one_row_per_scenario() -> None:
    m = RubricMatrix.from_dict(small_data(s={"beta": 1}, t={}))
    rows = m.weight_matrix()
    assert len(rows) == 2
    assert rows[0] == pytest.approx([0.0, 1.0, 0.0])
    assert rows[1] == pytest.approx([1 / 3, 1 / 3, 1 / 3])


def test_weights_of_unknown_scenario_raise_key_error(matrix: RubricMatrix) -> None:
    with pytest.raises(KeyError, match="did you mean 'hedging'"):
        matrix.weights("hedgeing")


# ---- criteria -----------------------------------------------------------------------------------


def test_criteria_for_includes_wildcards_and_exact_matches(matrix: RubricMatrix) -> None:
    points = sorted(c.points for c in matrix.criteria_for("safety", "emergency_referrals", "pediatrics"))
    assert points == [9.0, 10.0]


def test_criteria_for_leaves_out_other_disciplines(matrix: RubricMatrix) -> None:
    points = [c.points for c in matrix.criteria_for("safety", "emergency_referrals", "cardiology")]
    assert points == [9.0]


def test_criteria_for_scenario_wildcard(matrix: RubricMatrix) -> None:
    points = [c.points for c in matrix.criteria_for("safety", "hedging", "pharmacy")]
    assert points == [-8.0]


def test_criteria_for_an_uncovered_cell_is_empty(matrix: RubricMatrix) -> None:
    assert matrix.criteria_for("accuracy", "emergency_referrals", "nursing") == ()


def test_criterion_matches_wildcards_per_axis() -> None:
    c = Criterion("safety", "*", "pharmacy", "Avoids overdose.", 5.0)
    assert c.matches("safety", "hedging", "pharmacy")
    assert not c.matches("accuracy", "hedging", "pharmacy")
    assert not c.matches("safety", "hedging", "pediatrics")


# ---- content hash and round trip ----------------------------------------------------------------


def test_round_trip_through_to_dict_gives_an_equal_matrix(matrix: RubricMatrix) -> None:
    again = RubricMatrix.from_dict(matrix.to_dict())
    assert again == matrix
    assert again.content_hash() == matrix.content_hash()


def test_content_hash_is_a_sha256_hex_digest(matrix: RubricMatrix) -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", matrix.content_hash())


def test_content_hash_ignores_key_order(matrix: RubricMatrix) -> None:
    def reverse(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: reverse(obj[k]) for k in reversed(list(obj))}
        if isinstance(obj, list):
            return [reverse(x) for x in obj]
        return obj

    assert RubricMatrix.from_dict(reverse(matrix.to_dict())).content_hash() == matrix.content_hash()


def test_content_hash_ignores_yaml_formatting(matrix: RubricMatrix, tmp_path: Path) -> None:
    data = yaml.safe_load(MATRIX_PATH.read_text(encoding="utf-8"))
    restyled = tmp_path / "restyled.yaml"
    restyled.write_text("# another comment\n" + yaml.safe_dump(data, default_flow_style=True, width=60), "utf-8")
    assert RubricMatrix.from_yaml(restyled).content_hash() == matrix.content_hash()


def test_content_hash_changes_with_a_level_text(matrix: RubricMatrix) -> None:
    data = matrix.to_dict()
    data["dimensions"][0]["levels"]["poor"] += " Also rude."
    assert RubricMatrix.from_dict(data).content_hash() != matrix.content_hash()


def test_content_hash_changes_with_a_weight(matrix: RubricMatrix) -> None:
    data = matrix.to_dict()
    data["scenarios"][0]["weights"]["safety"] = 0.5
    assert RubricMatrix.from_dict(data).content_hash() != matrix.content_hash()


def test_editing_to_dict_output_leaves_the_matrix_unchanged(matrix: RubricMatrix) -> None:
    before = matrix.content_hash()
    data = matrix.to_dict()
    data["scenarios"][0]["weights"]["safety"] = 99.0
    data["dimensions"][0]["levels"]["good"] = "changed"
    assert matrix.content_hash() == before
    assert matrix.scenarios[0].weights["safety"] == 0.35


# ---- immutability -------------------------------------------------------------------------------


def test_matrix_is_frozen(matrix: RubricMatrix) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        matrix.name = "other"  # type: ignore[misc]


def test_records_are_frozen(matrix: RubricMatrix) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        matrix.dimensions[0].id = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        matrix.dimensions[0].levels.good = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        matrix.scenarios[0].name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        matrix.disciplines[0].name = "other"  # type: ignore[misc]


def test_scenario_weights_cannot_be_mutated(matrix: RubricMatrix) -> None:
    with pytest.raises(TypeError):
        matrix.scenarios[0].weights["safety"] = 1.0  # type: ignore[index]


def test_collections_are_tuples(matrix: RubricMatrix) -> None:
    for records in (matrix.dimensions, matrix.scenarios, matrix.disciplines, matrix.criteria):
        assert isinstance(records, tuple)
