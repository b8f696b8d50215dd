"""The rubric matrix (the medical standard system): Dimensions x Scenarios x Disciplines.

Immutable, typed records built only from validated data (``RubricMatrix.from_yaml`` or
``from_dict``); lookups by id; per-scenario dimension weights; a stable content hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

WILDCARD = "*"


@dataclass(frozen=True)
class Levels:
    """What good, medium and poor answers look like on one dimension."""

    good: str
    medium: str
    poor: str


@dataclass(frozen=True)
class Dimension:
    """A quality dimension, one reward head output."""

    id: str
    name: str
    description: str
    levels: Levels
    healthbench_axis: str | None = None


@dataclass(frozen=True)
class Scenario:
    """A clinical scenario with its weights over the dimensions (empty: uniform)."""

    id: str
    name: str
    description: str
    weights: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    healthbench_theme: str | None = None


@dataclass(frozen=True)
class Discipline:
    """A medical discipline."""

    id: str
    name: str


@dataclass(frozen=True)
class Criterion:
    """A HealthBench-style criterion for a cell; ``*`` matches every id of that axis."""

    dimension: str
    scenario: str
    discipline: str
    criterion: str
    points: float

    def matches(self, dimension: str, scenario: str, discipline: str) -> bool:
        return matches_cell((self.dimension, self.scenario, self.discipline), (dimension, scenario, discipline))


def matches_cell(pattern: tuple[str, str, str], cell: tuple[str, str, str]) -> bool:
    """Whether a (dimension, scenario, discipline) pattern, ``*`` matching any id, matches a cell."""
    return all(mine in (WILDCARD, theirs) for mine, theirs in zip(pattern, cell, strict=True))


@dataclass(frozen=True)
class RubricMatrix:
    """A validated rubric matrix. Build it with ``from_yaml`` or ``from_dict``, never by hand."""

    name: str
    version: int
    dimensions: tuple[Dimension, ...]
    scenarios: tuple[Scenario, ...]
    disciplines: tuple[Discipline, ...]
    criteria: tuple[Criterion, ...] = ()

    @classmethod
    def from_yaml(cls, path: str | Path) -> RubricMatrix:
        """Read and validate a matrix file; raises MatrixError listing every problem found."""
        from lit_mrrml.matrix.load import load_matrix_yaml

        return load_matrix_yaml(Path(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> RubricMatrix:
        """Validate plain data (as parsed from YAML or JSON) and build the matrix."""
        from lit_mrrml.matrix.build import build_matrix

        return build_matrix(data, source)

    def to_dict(self) -> dict[str, Any]:
        """Plain data that ``from_dict`` reads back to an equal matrix."""
        return {
            "name": self.name,
            "version": self.version,
            "dimensions": [asdict(d) for d in self.dimensions],
            "scenarios": [{**vars(s), "weights": dict(s.weights)} for s in self.scenarios],
            "disciplines": [asdict(d) for d in self.disciplines],
            "criteria": [asdict(c) for c in self.criteria],
        }

    def content_hash(self) -> str:
        """sha256 of the canonical JSON of the matrix: stable across runs, key order and formatting."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def dimension_ids(self) -> tuple[str, ...]:
        return tuple(d.id for d in self.dimensions)

    @property
    def scenario_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.scenarios)

    @property
    def discipline_ids(self) -> tuple[str, ...]:
        return tuple(d.id for d in self.disciplines)

    def dimension(self, id: str) -> Dimension:
        return self.dimensions[self.dimension_index(id)]

    def scenario(self, id: str) -> Scenario:
        return self.scenarios[self.scenario_index(id)]

    def discipline(self, id: str) -> Discipline:
        return self.disciplines[_index(self.discipline_ids, id, "discipline")]

    def dimension_index(self, id: str) -> int:
        return _index(self.dimension_ids, id, "dimension")

    def scenario_index(self, id: str) -> int:
        return _index(self.scenario_ids, id, "scenario")

    def weights(self, scenario: str) -> tuple[float, ...]:
        """The scenario's weights over the dimensions, in dimension order, summing to 1.

        Dimensions the scenario does not name get 0; a scenario with no weights is uniform.
        """
        given = self.scenario(scenario).weights
        if not given:
            return tuple(1.0 / len(self.dimensions) for _ in self.dimensions)
        raw = [float(given.get(d, 0.0)) for d in self.dimension_ids]
        total = sum(raw)
        return tuple(w / total for w in raw)

    def weight_matrix(self) -> list[list[float]]:
        """(S, L) weights of every scenario over every dimension, in id order."""
        return [list(self.weights(s)) for s in self.scenario_ids]

    def criteria_for(self, dimension: str, scenario: str, discipline: str) -> tuple[Criterion, ...]:
        """The criteria that apply to one cell, wildcards included."""
        return tuple(c for c in self.criteria if c.matches(dimension, scenario, discipline))


def _index(ids: tuple[str, ...], id: str, kind: str) -> int:
    try:
        return ids.index(id)
    except ValueError:
        from lit_mrrml.matrix.suggest import did_you_mean

        raise KeyError(f"unknown {kind} '{id}'{did_you_mean(id, ids)}") from None
