"""The training matrix against the matrix in use: other dimensions refused, other texts and weights named."""

from __future__ import annotations

import logging

import pytest

from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.matrix.compare import DimensionMismatchError, check_dimensions, check_trained_matrix, matrix_changes

TRAINED = ["accuracy", "completeness", "safety"]


@pytest.mark.parametrize(
    ("current", "how"),
    [
        (["safety", "completeness", "accuracy"], "the same names in another order"),
        (["accuracy", "completeness"], "3 dimensions against 2"),
        (["accuracy", "completeness", "safety", "empathy"], "3 dimensions against 4"),
        (["accuracy", "completeness", "harm"], "other names"),
    ],
)
def test_another_dimension_list_is_refused_naming_both(current, how):
    with pytest.raises(DimensionMismatchError) as info:
        check_dimensions(TRAINED, current, "model.ckpt")
    assert str(info.value) == (
        f"model.ckpt was trained with the dimensions {TRAINED}, but the matrix in use has {current} ({how}): "
        "its rewards would be reported under the wrong names. Use the matrix it was trained with (its snapshot "
        "travels with the checkpoint and the export), or train again on this one"
    )


def test_the_same_list_passes():
    check_dimensions(TRAINED, list(TRAINED), "model.ckpt")


def test_changes_are_named_by_key_path(matrix: RubricMatrix):
    data = matrix.to_dict()
    data["version"] = 2
    data["dimensions"][5]["levels"]["poor"] = "Reworded."
    data["dimensions"][0]["description"] = "Reworded too."
    data["scenarios"][0]["weights"]["safety"] = 0.5
    data["scenarios"].pop()
    data["disciplines"].append({"id": "oncology", "name": "Oncology"})
    data["criteria"] = data["criteria"][1:]
    assert matrix_changes(matrix.to_dict(), data) == [
        "version",
        "dimensions.accuracy.description",
        "dimensions.safety.levels.poor",
        f"scenarios: removed {matrix.scenarios[-1].id}",
        "scenarios.emergency_referrals.weights",
        "disciplines: added oncology",
        "criteria",
    ]
    assert matrix_changes(matrix.to_dict(), matrix.to_dict()) == []


def test_other_changes_are_accepted_with_a_warning(matrix: RubricMatrix, caplog):
    data = matrix.to_dict()
    data["scenarios"][1]["weights"] = {}
    with caplog.at_level(logging.WARNING, logger="lit_mrrml"):
        changes = check_trained_matrix(matrix.dimension_ids, matrix.to_dict(), matrix.dimension_ids, data, "rm/")
    assert changes == [f"scenarios.{matrix.scenarios[1].id}.weights"]
    assert caplog.messages == [
        f"rm/ was trained with another version of this matrix (changed: scenarios.{matrix.scenarios[1].id}.weights); "
        "its per-dimension rewards are used as they are, and the total reward follows the new scenario weights"
    ]


def test_a_text_change_says_nothing_about_the_total(matrix: RubricMatrix, caplog):
    data = matrix.to_dict()
    data["name"] = "renamed"
    with caplog.at_level(logging.WARNING, logger="lit_mrrml"):
        check_trained_matrix(matrix.dimension_ids, matrix.to_dict(), matrix.dimension_ids, data, "rm/")
    assert caplog.messages == [
        "rm/ was trained with another version of this matrix (changed: name); its per-dimension rewards are used "
        "as they are"
    ]
