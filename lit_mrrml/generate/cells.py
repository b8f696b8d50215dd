"""Which matrix cells get prompts: selection, per-cell quotas, sampling, and the prompt slots."""

from __future__ import annotations

import random
from dataclasses import astuple, dataclass

from lit_mrrml.generate.options import CellSelection
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.matrix.model import WILDCARD, matches_cell
from lit_mrrml.matrix.suggest import did_you_mean


@dataclass(frozen=True, order=True)
class Cell:
    """One (dimension, scenario, discipline) cell of the matrix."""

    dimension: str
    scenario: str
    discipline: str

    @property
    def key(self) -> str:
        return f"{self.dimension}/{self.scenario}/{self.discipline}"


@dataclass(frozen=True, order=True)
class Slot:
    """The ``index``-th prompt of a cell."""

    cell: Cell
    index: int

    @property
    def key(self) -> str:
        return f"{self.cell.key}/{self.index}"


def check_ids(given: list[str], known: tuple[str, ...], key: str, noun: str = "id") -> None:
    """Raise naming ``key[i]`` (and the closest known id) for the first id of ``given`` not in ``known``."""
    for i, value in enumerate(given):
        if value not in known:
            raise ValueError(f"{key}[{i}]: unknown {noun} {value!r}{did_you_mean(value, known)}")


def _chosen(given: list[str] | None, known: tuple[str, ...], name: str) -> list[str]:
    if given is None:
        return list(known)
    check_ids(given, known, f"cells.{name}")
    return list(dict.fromkeys(given))


def _check_quotas(selection: CellSelection, matrix: RubricMatrix) -> None:
    axes = (("dimension", matrix.dimension_ids), ("scenario", matrix.scenario_ids))
    for i, quota in enumerate(selection.quotas):
        if quota.prompts < 0:
            raise ValueError(f"cells.quotas[{i}].prompts must not be negative, got {quota.prompts}")
        for name, known in (*axes, ("discipline", matrix.discipline_ids)):
            value = getattr(quota, name)
            if value != WILDCARD and value not in known:
                raise ValueError(f"cells.quotas[{i}].{name}: unknown id {value!r}{did_you_mean(value, known)}")


def quota_of(cell: Cell, selection: CellSelection) -> int:
    """Prompts for one cell: the last matching quota, else ``prompts_per_cell``."""
    count = selection.prompts_per_cell
    for quota in selection.quotas:
        if matches_cell((quota.dimension, quota.scenario, quota.discipline), astuple(cell)):
            count = quota.prompts
    return count


def select_cells(matrix: RubricMatrix, selection: CellSelection, seed: int = 0) -> list[tuple[Cell, int]]:
    """(cell, number of prompts) for every selected cell with a positive quota, in matrix order."""
    if selection.prompts_per_cell < 0:
        raise ValueError(f"cells.prompts_per_cell must not be negative, got {selection.prompts_per_cell}")
    _check_quotas(selection, matrix)
    cells = [
        Cell(d, s, c)
        for d in _chosen(selection.dimensions, matrix.dimension_ids, "dimensions")
        for s in _chosen(selection.scenarios, matrix.scenario_ids, "scenarios")
        for c in _chosen(selection.disciplines, matrix.discipline_ids, "disciplines")
    ]
    if selection.sample is not None:
        if selection.sample < 1:
            raise ValueError(f"cells.sample must be at least 1, got {selection.sample}")
        keep = set(random.Random(seed).sample(range(len(cells)), min(selection.sample, len(cells))))
        cells = [cell for i, cell in enumerate(cells) if i in keep]
    planned = [(cell, quota_of(cell, selection)) for cell in cells]
    return [(cell, n) for cell, n in planned if n > 0]


def plan_slots(matrix: RubricMatrix, selection: CellSelection, seed: int = 0) -> list[Slot]:
    """Every prompt slot of the selection, cell by cell."""
    return [Slot(cell, i) for cell, n in select_cells(matrix, selection, seed) for i in range(n)]
