"""The shipped demo data (data/demo): size, coverage of the matrix, validity and split hygiene."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from lit_mrrml.data.units import RankedUnit, read_units
from lit_mrrml.matrix import RubricMatrix
from tests.conftest import DEMO

SPLITS = ("train", "val", "test")
Splits = dict[str, list[RankedUnit]]


def raw_lines(split: str) -> list[str]:
    return [line for line in (DEMO / f"{split}.jsonl").read_text("utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def splits(matrix: RubricMatrix) -> Splits:
    """Every split read strictly (the first bad record raises), with ids unique across splits."""
    seen: set[str] = set()
    return {split: read_units([DEMO / f"{split}.jsonl"], matrix, "fail", seen)[0] for split in SPLITS}


@pytest.fixture(scope="module")
def units(splits: Splits) -> list[RankedUnit]:
    return [u for split in SPLITS for u in splits[split]]


@pytest.mark.parametrize("split", SPLITS)
def test_split_file_exists_and_is_not_empty(split: str) -> None:
    assert (DEMO / f"{split}.jsonl").is_file()
    assert raw_lines(split)


def test_every_record_is_valid_against_the_shipped_matrix(units: list[RankedUnit]) -> None:
    assert len(units) == sum(len(raw_lines(split)) for split in SPLITS)  # nothing skipped, nothing raised


def test_unit_ids_are_unique_across_splits() -> None:
    ids = [json.loads(line)["id"] for split in SPLITS for line in raw_lines(split)]
    assert len(ids) == len(set(ids))


def test_at_least_300_units_over_100_prompts(units: list[RankedUnit]) -> None:
    assert len(units) >= 300
    assert len({u.prompt_key for u in units}) >= 100


def test_every_dimension_is_covered(units: list[RankedUnit], matrix: RubricMatrix) -> None:
    assert {u.dimension for u in units} == set(matrix.dimension_ids)


def test_every_scenario_is_covered(units: list[RankedUnit], matrix: RubricMatrix) -> None:
    assert {u.scenario for u in units} == set(matrix.scenario_ids)


def test_every_split_has_units(splits: Splits) -> None:
    for split, split_units in splits.items():
        assert split_units, split


def test_mostly_k3_with_some_k2(units: list[RankedUnit]) -> None:
    ks = Counter(len(u.responses) for u in units)
    assert set(ks) == {2, 3}
    assert ks[3] > ks[2] > 0


def test_no_prompt_in_two_splits(splits: Splits) -> None:
    owners: dict[str, set[str]] = {}
    for split, split_units in splits.items():
        for unit in split_units:
            owners.setdefault(unit.prompt_key, set()).add(split)
    assert [key for key, where in owners.items() if len(where) > 1] == []


def test_answer_lengths_within_a_unit_are_comparable(units: list[RankedUnit]) -> None:
    """Ranking must not be learnable from length alone: word counts within a factor 1.25."""
    uneven = []
    for unit in units:
        words = [len(r.split()) for r in unit.responses]
        if max(words) > 1.25 * min(words):
            uneven.append((unit.id, words))
    assert uneven == []


def test_readme_says_the_data_is_synthetic_and_not_medical_advice() -> None:
    readme = DEMO / "README.md"
    assert readme.is_file(), "data/demo/README.md is missing"
    text = " ".join(readme.read_text(encoding="utf-8").lower().split())
    assert "synthetic" in text
    assert "illustrative" in text
    assert "not medical advice" in text
