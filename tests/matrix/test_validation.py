"""Matrix validation: every problem named by its path in the file, all reported at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lit_mrrml.matrix import MatrixError, RubricMatrix
from lit_mrrml.textio import NotUTF8Error


def valid_data() -> dict[str, Any]:
    """A small valid matrix: two dimensions, two scenarios, two disciplines, one criterion."""
    return {
        "name": "small",
        "version": 1,
        "dimensions": [
            {
                "id": "accuracy",
                "name": "Accuracy",
                "description": "Correct facts.",
                "levels": {"good": "All correct.", "medium": "Mostly correct.", "poor": "Wrong."},
                "healthbench_axis": "axis:accuracy",
            },
            {
                "id": "safety",
                "name": "Safety",
                "description": "Avoids harm.",
                "levels": {"good": "Escalates.", "medium": "Vague.", "poor": "Harmful."},
                "healthbench_axis": None,
            },
        ],
        "scenarios": [
            {
                "id": "emergency_referrals",
                "name": "Emergency referrals",
                "description": "Urgent care may be needed.",
                "healthbench_theme": "theme:emergency_referrals",
                "weights": {"accuracy": 0.4, "safety": 0.6},
            },
            {"id": "hedging", "name": "Hedging", "description": "Uncertain evidence."},
        ],
        "disciplines": [{"id": "pediatrics", "name": "Pediatrics"}, {"id": "pharmacy", "name": "Pharmacy"}],
        "criteria": [
            {
                "dimension": "safety",
                "scenario": "*",
                "discipline": "pharmacy",
                "criterion": "Recommends an overdose.",
                "points": -5,
            }
        ],
    }


def problems_of(data: Any) -> list[str]:
    with pytest.raises(MatrixError) as info:
        RubricMatrix.from_dict(data)
    return info.value.problems


def test_valid_data_builds() -> None:
    m = RubricMatrix.from_dict(valid_data())
    assert m.dimension_ids == ("accuracy", "safety")
    assert m.criteria[0].points == -5.0


def test_matrix_error_is_a_value_error_naming_the_source() -> None:
    data = valid_data()
    data["disciplines"][0]["id"] = "Pediatrics"
    with pytest.raises(ValueError, match="my_source: 1 problem") as info:
        RubricMatrix.from_dict(data, source="my_source")
    assert isinstance(info.value, MatrixError)
    assert info.value.source == "my_source"


def test_top_level_must_be_a_mapping() -> None:
    assert problems_of(["not", "a", "mapping"]) == ["the top level must be a mapping, got list"]


def test_duplicate_dimension_id() -> None:
    data = valid_data()
    data["dimensions"][1]["id"] = "accuracy"
    data["scenarios"][0]["weights"] = {"accuracy": 1.0}
    data["criteria"] = []
    assert problems_of(data) == ["dimensions[1].id: duplicate dimension id 'accuracy' (first at dimensions[0])"]


def test_duplicate_scenario_and_discipline_ids() -> None:
    data = valid_data()
    data["scenarios"][1]["id"] = "emergency_referrals"
    data["disciplines"][1]["id"] = "pediatrics"
    data["criteria"] = []
    problems = problems_of(data)
    assert "scenarios[1].id: duplicate scenario id 'emergency_referrals' (first at scenarios[0])" in problems
    assert "disciplines[1].id: duplicate discipline id 'pediatrics' (first at disciplines[0])" in problems
    assert len(problems) == 2


def test_unknown_weight_dimension_with_did_you_mean() -> None:
    data = valid_data()
    data["scenarios"][0]["weights"] = {"acuracy": 0.5, "safety": 0.5}
    assert problems_of(data) == ["scenarios[0].weights.acuracy: unknown dimension 'acuracy'; did you mean 'accuracy'?"]


def test_unknown_criterion_references_with_did_you_mean() -> None:
    data = valid_data()
    data["criteria"][0] |= {"dimension": "safty", "scenario": "hedgin", "discipline": "pharmacie"}
    assert problems_of(data) == [
        "criteria[0].dimension: unknown dimension 'safty'; did you mean 'safety'?",
        "criteria[0].scenario: unknown scenario 'hedgin'; did you mean 'hedging'?",
        "criteria[0].discipline: unknown discipline 'pharmacie'; did you mean 'pharmacy'?",
    ]


def test_unknown_reference_far_from_any_id_has_no_suggestion() -> None:
    data = valid_data()
    data["scenarios"][0]["weights"] = {"zzzz": 1.0, "safety": 1.0}
    assert problems_of(data) == ["scenarios[0].weights.zzzz: unknown dimension 'zzzz'"]


def test_negative_weight() -> None:
    data = valid_data()
    data["scenarios"][0]["weights"] = {"accuracy": 1.0, "safety": -0.5}
    assert problems_of(data) == ["scenarios[0].weights.safety: must be >= 0, got -0.5"]


def test_non_numeric_weight() -> None:
    data = valid_data()
    data["scenarios"][0]["weights"] = {"accuracy": "high", "safety": 1.0}
    assert problems_of(data) == ["scenarios[0].weights.accuracy: must be a number, got 'high'"]


def test_weights_summing_to_zero() -> None:
    data = valid_data()
    data["scenarios"][0]["weights"] = {"accuracy": 0, "safety": 0.0}
    problems = problems_of(data)
    assert len(problems) == 1
    assert problems[0].startswith("scenarios[0].weights: sum to 0")


def test_empty_description() -> None:
    data = valid_data()
    data["dimensions"][0]["description"] = "   "
    assert problems_of(data) == ["dimensions[0].description: must be a non-empty string"]


def test_empty_level_text() -> None:
    data = valid_data()
    data["dimensions"][1]["levels"]["medium"] = ""
    assert problems_of(data) == ["dimensions[1].levels.medium: must be a non-empty string"]


def test_missing_name() -> None:
    data = valid_data()
    del data["scenarios"][1]["name"]
    assert problems_of(data) == ["scenarios[1].name: missing"]


def test_missing_levels() -> None:
    data = valid_data()
    del data["dimensions"][0]["levels"]
    problems = problems_of(data)
    assert len(problems) == 1
    assert problems[0].startswith("dimensions[0].levels: missing")


def test_missing_one_level() -> None:
    data = valid_data()
    del data["dimensions"][0]["levels"]["poor"]
    assert problems_of(data) == ["dimensions[0].levels.poor: missing"]


def test_unknown_level() -> None:
    data = valid_data()
    data["dimensions"][0]["levels"]["excellent"] = "Perfect."
    assert problems_of(data) == ["dimensions[0].levels.excellent: unknown level"]


def test_unknown_field_with_did_you_mean() -> None:
    data = valid_data()
    data["dimensions"][0]["descripton"] = "typo"
    assert problems_of(data) == ["dimensions[0].descripton: unknown field; did you mean 'description'?"]


def test_unknown_top_level_field() -> None:
    data = valid_data()
    data["disciplins"] = []
    assert problems_of(data) == ["disciplins: unknown field; did you mean 'disciplines'?"]


@pytest.mark.parametrize("bad_id", ["Accuracy", "bad-id", "1st", "with space"])
def test_bad_id_format(bad_id: str) -> None:
    data = valid_data()
    data["disciplines"][0]["id"] = bad_id
    assert problems_of(data) == [f"disciplines[0].id: '{bad_id}' must be lower_snake_case (a-z, 0-9, _)"]


def test_missing_section() -> None:
    data = valid_data()
    del data["disciplines"]
    data["criteria"] = []
    assert problems_of(data) == ["disciplines: missing (a non-empty list)"]


def test_empty_section() -> None:
    data = valid_data()
    data["scenarios"] = []
    assert problems_of(data) == ["scenarios: must be a non-empty list"]


def test_bad_healthbench_tags() -> None:
    data = valid_data()
    data["dimensions"][0]["healthbench_axis"] = "accuracy"
    data["scenarios"][0]["healthbench_theme"] = "emergency"
    problems = problems_of(data)
    assert len(problems) == 2
    assert problems[0].startswith("dimensions[0].healthbench_axis: must be null or an 'axis:<name>' tag")
    assert problems[1].startswith("scenarios[0].healthbench_theme: must be null or a 'theme:<name>' tag")


@pytest.mark.parametrize("points", [0, "five", True, None])
def test_criterion_points_must_be_a_non_zero_number(points: Any) -> None:
    data = valid_data()
    data["criteria"][0]["points"] = points
    assert problems_of(data) == [f"criteria[0].points: must be a non-zero number, got {points!r}"]


@pytest.mark.parametrize("version", [0, -1, "1", 1.5, True])
def test_version_must_be_a_positive_integer(version: Any) -> None:
    data = valid_data()
    data["version"] = version
    assert problems_of(data) == [f"version: must be a positive integer, got {version!r}"]


def test_several_problems_are_reported_all_at_once() -> None:
    data = valid_data()
    data["dimensions"][1]["id"] = "Safety"  # bad id format
    data["dimensions"][0]["description"] = ""  # empty text
    data["scenarios"][0]["weights"] = {"acuracy": 0.5, "accuracy": -1}  # unknown + negative
    data["scenarios"][1]["extra"] = 1  # unknown field
    data["disciplines"][1]["id"] = "pediatrics"  # duplicate
    del data["dimensions"][1]["levels"]["good"]  # missing level
    with pytest.raises(MatrixError) as info:
        RubricMatrix.from_dict(data)
    problems = info.value.problems
    expected_paths = [
        "dimensions[0].description:",
        "dimensions[1].levels.good:",
        "dimensions[1].id:",
        "scenarios[0].weights.acuracy: unknown dimension 'acuracy'; did you mean 'accuracy'?",
        "scenarios[0].weights.accuracy: must be >= 0",
        "scenarios[1].extra: unknown field",
        "disciplines[1].id: duplicate discipline id 'pediatrics'",
    ]
    for prefix in expected_paths:
        assert any(p.startswith(prefix) for p in problems), (prefix, problems)
    assert f"{len(problems)} problem(s)" in str(info.value)
    for problem in problems:
        assert f"  - {problem}" in str(info.value)


# ---- files --------------------------------------------------------------------------------------


def test_yaml_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(valid_data()), encoding="utf-8")
    assert RubricMatrix.from_yaml(path) == RubricMatrix.from_dict(valid_data())


def test_yaml_syntax_error_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nversion: 1\ndimensions:\n\t- id: accuracy\n", encoding="utf-8")
    with pytest.raises(MatrixError) as info:
        RubricMatrix.from_yaml(path)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("line 4, column 1: YAML syntax error")
    assert str(path) in str(info.value)


def test_validation_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    data = valid_data()
    data["scenarios"][0]["weights"] = {"acuracy": 1.0}
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(MatrixError) as info:
        RubricMatrix.from_yaml(path)
    assert info.value.source == str(path)
    assert "scenarios[0].weights.acuracy: unknown dimension 'acuracy'; did you mean 'accuracy'?" in str(info.value)


def test_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        RubricMatrix.from_yaml(tmp_path / "nope.yaml")


def test_empty_yaml_file_is_a_matrix_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(MatrixError, match="top level must be a mapping"):
        RubricMatrix.from_yaml(path)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused_with_their_path(value: float) -> None:
    data = valid_data()
    data["scenarios"][0]["weights"] = {"accuracy": value, "safety": 1.0}
    assert problems_of(data) == [f"scenarios[0].weights.accuracy: must be a finite number, got {value}"]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_criterion_points_are_refused_with_their_path(value: float) -> None:
    data = valid_data()
    data["criteria"][0]["points"] = value
    assert problems_of(data) == [f"criteria[0].points: must be a finite number, got {value}"]


def test_yaml_nan_and_inf_in_a_file_are_reported_together(tmp_path: Path) -> None:
    text = (
        yaml.safe_dump(valid_data()).replace("accuracy: 0.4", "accuracy: .nan").replace("points: -5", "points: -.inf")
    )
    path = tmp_path / "nan.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MatrixError) as info:
        RubricMatrix.from_yaml(path)
    assert info.value.problems == [
        "scenarios[0].weights.accuracy: must be a finite number, got nan",
        "criteria[0].points: must be a finite number, got -inf",
    ]


def test_a_matrix_file_that_is_not_utf8_names_the_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(yaml.safe_dump(valid_data()).replace("Pediatrics", "Pédiatrie").encode("latin-1"))
    offset = path.read_bytes().index(b"\xe9")
    with pytest.raises(NotUTF8Error) as info:
        RubricMatrix.from_yaml(path)
    assert str(info.value) == (
        f"{path}: not UTF-8 text: byte 0xe9 at byte offset {offset} cannot be decoded (save the file as UTF-8)"
    )
