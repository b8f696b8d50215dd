"""Cell selection: axes, quotas with wildcards, sampling, and errors that name the key."""

from __future__ import annotations

import pytest

from lit_mrrml.generate import CellSelection, Quota, plan_slots, select_cells


def test_everything_by_default(matrix):
    cells = select_cells(matrix, CellSelection())
    assert len(cells) == 6 * 7 * 10 and all(n == 1 for _, n in cells)
    assert cells[0][0].key == "accuracy/emergency_referrals/internal_medicine"


def test_chosen_axes_and_quotas_last_match_wins(matrix):
    selection = CellSelection(
        dimensions=["safety", "accuracy"],
        scenarios=["emergency_referrals"],
        disciplines=["pediatrics", "cardiology"],
        prompts_per_cell=2,
        quotas=[Quota(prompts=5, dimension="safety"), Quota(prompts=0, discipline="cardiology", dimension="accuracy")],
    )
    cells = {cell.key: n for cell, n in select_cells(matrix, selection)}
    assert cells == {
        "safety/emergency_referrals/pediatrics": 5,
        "safety/emergency_referrals/cardiology": 5,
        "accuracy/emergency_referrals/pediatrics": 2,
    }
    slots = plan_slots(matrix, selection)
    assert len(slots) == 12 and slots[0].key == "safety/emergency_referrals/pediatrics/0"
    assert len({s.key for s in slots}) == 12


def test_sampling_is_seeded_and_bounded(matrix):
    a = select_cells(matrix, CellSelection(sample=10), seed=3)
    assert a == select_cells(matrix, CellSelection(sample=10), seed=3) and len(a) == 10
    assert a != select_cells(matrix, CellSelection(sample=10), seed=4)
    assert len(select_cells(matrix, CellSelection(dimensions=["safety"], sample=1000))) == 70


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (CellSelection(dimensions=["saftey"]), r"cells.dimensions\[0\]: unknown id 'saftey'; did you mean 'safety'"),
        (CellSelection(quotas=[Quota(prompts=1, scenario="hedge")]), r"cells.quotas\[0\].scenario: unknown id 'hedge'"),
        (CellSelection(quotas=[Quota(prompts=-1)]), r"cells.quotas\[0\].prompts must not be negative"),
        (CellSelection(sample=0), "cells.sample must be at least 1"),
    ],
)
def test_bad_selections_name_the_key(matrix, selection, message):
    with pytest.raises(ValueError, match=message):
        select_cells(matrix, selection)
