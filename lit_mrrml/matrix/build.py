"""Validate plain matrix data and build a RubricMatrix, reporting every problem at once.

Each problem names its path in the file (``scenarios[2].weights.acuracy: unknown dimension
'acuracy'; did you mean 'accuracy'?``) so that a user can fix them all in one pass.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from lit_mrrml.errors import InputError
from lit_mrrml.matrix.model import WILDCARD, Criterion, Dimension, Discipline, Levels, RubricMatrix, Scenario
from lit_mrrml.matrix.suggest import did_you_mean

ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
FIELDS = {
    "": ("name", "version", "dimensions", "scenarios", "disciplines", "criteria"),
    "dimensions": ("id", "name", "description", "levels", "healthbench_axis"),
    "scenarios": ("id", "name", "description", "weights", "healthbench_theme"),
    "disciplines": ("id", "name"),
    "criteria": ("dimension", "scenario", "discipline", "criterion", "points"),
}
LEVELS = ("good", "medium", "poor")


class MatrixError(InputError):
    """A rubric matrix failed validation; ``problems`` lists every problem as 'path: reason'."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source, self.problems = source, problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in the rubric matrix:\n{lines}")


class _Checker:
    """Collects problems while reading fields."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, path: str, reason: str) -> None:
        self.problems.append(f"{path}: {reason}" if path else reason)

    def keys(self, obj: Mapping[str, Any], section: str, path: str) -> None:
        allowed = FIELDS[section]
        for key in obj:
            if key not in allowed:
                self.add(_join(path, str(key)), f"unknown field{did_you_mean(key, allowed)}")

    def text(self, obj: Mapping[str, Any], key: str, path: str, required: bool = True) -> str:
        value = obj.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value.strip():
            self.add(_join(path, key), "missing" if value is None else "must be a non-empty string")
            return ""
        return value.strip()

    def ident(self, obj: Mapping[str, Any], path: str) -> str:
        value = self.text(obj, "id", path)
        if value and not ID_PATTERN.match(value):
            self.add(_join(path, "id"), f"'{value}' must be lower_snake_case (a-z, 0-9, _)")
        return value

    def named(self, obj: Mapping[str, Any], path: str) -> dict[str, str]:
        """The id, name and description every dimension and scenario carries."""
        return {
            "id": self.ident(obj, path),
            "name": self.text(obj, "name", path),
            "description": self.text(obj, "description", path),
        }

    def tag(self, obj: Mapping[str, Any], key: str, path: str, prefix: str) -> str | None:
        """An optional HealthBench tag such as 'axis:accuracy'; None when absent or malformed."""
        value = obj.get(key)
        if value is not None and not (isinstance(value, str) and value.startswith(prefix)):
            article = "an" if prefix[0] in "aeiou" else "a"
            self.add(_join(path, key), f"must be null or {article} '{prefix}<name>' tag, got {value!r}")
            return None
        return value

    def mapping(self, value: Any, path: str) -> Mapping[str, Any] | None:
        if isinstance(value, Mapping):
            return value
        self.add(path, f"must be a mapping, got {type(value).__name__}")
        return None

    def items(self, data: Mapping[str, Any], section: str, required: bool = True) -> list[tuple[str, Mapping]]:
        value = data.get(section)
        if value is None:
            if required:
                self.add(section, "missing (a non-empty list)")
            return []
        if not isinstance(value, list) or (required and not value):
            self.add(section, "must be a non-empty list" if required else "must be a list")
            return []
        out = []
        for i, item in enumerate(value):
            path = f"{section}[{i}]"
            if (m := self.mapping(item, path)) is not None:
                self.keys(m, section, path)
                out.append((path, m))
        return out

    def unique(self, ids: list[tuple[str, str]], section: str) -> None:
        seen: dict[str, str] = {}
        for path, ident in ids:
            if ident and ident in seen:
                self.add(_join(path, "id"), f"duplicate {section[:-1]} id '{ident}' (first at {seen[ident]})")
            seen.setdefault(ident, path)

    def reference(self, value: Any, path: str, known: list[str], kind: str, wildcard: bool = False) -> str:
        if wildcard and value == WILDCARD:
            return WILDCARD
        if not isinstance(value, str) or value not in known:
            self.add(path, f"unknown {kind} '{value}'{did_you_mean(value, known)}")
            return ""
        return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def build_matrix(data: Any, source: str = "<dict>") -> RubricMatrix:
    """Validate ``data`` fully, then build the matrix; raises MatrixError with every problem."""
    check = _Checker()
    if not isinstance(data, Mapping):
        raise MatrixError(source, [f"the top level must be a mapping, got {type(data).__name__}"])
    check.keys(data, "", "")
    name = check.text(data, "name", "")
    version = data.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        check.add("version", f"must be a positive integer, got {version!r}")
    dimensions = [_dimension(check, path, m) for path, m in check.items(data, "dimensions")]
    dim_ids = [d.id for d in dimensions]
    scenarios = [_scenario(check, path, m, dim_ids) for path, m in check.items(data, "scenarios")]
    disciplines = [Discipline(check.ident(m, p), check.text(m, "name", p)) for p, m in check.items(data, "disciplines")]
    sections: dict[str, list[str]] = {
        "dimensions": dim_ids,
        "scenarios": [s.id for s in scenarios],
        "disciplines": [d.id for d in disciplines],
    }
    for section, ids in sections.items():
        check.unique([(f"{section}[{i}]", ident) for i, ident in enumerate(ids)], section)
    known = (dim_ids, sections["scenarios"], sections["disciplines"])
    criteria = [_criterion(check, p, m, known) for p, m in check.items(data, "criteria", required=False)]
    if check.problems:
        raise MatrixError(source, check.problems)
    return RubricMatrix(name, int(version), tuple(dimensions), tuple(scenarios), tuple(disciplines), tuple(criteria))


def _dimension(check: _Checker, path: str, m: Mapping[str, Any]) -> Dimension:
    texts = {"good": "", "medium": "", "poor": ""}
    if "levels" not in m:
        check.add(_join(path, "levels"), "missing (good, medium and poor texts)")
    elif (levels := check.mapping(m["levels"], _join(path, "levels"))) is not None:
        for key in levels:
            if key not in LEVELS:
                check.add(f"{path}.levels.{key}", f"unknown level{did_you_mean(key, LEVELS)}")
        texts = {level: check.text(levels, level, f"{path}.levels") for level in LEVELS}
    axis = check.tag(m, "healthbench_axis", path, "axis:")
    return Dimension(**check.named(m, path), levels=Levels(**texts), healthbench_axis=axis)


def _scenario(check: _Checker, path: str, m: Mapping[str, Any], dim_ids: list[str]) -> Scenario:
    weights: dict[str, float] = {}
    raw = m.get("weights") or {}
    if (mapping := check.mapping(raw, _join(path, "weights"))) is not None:
        for key, value in mapping.items():
            where = f"{path}.weights.{key}"
            if key not in dim_ids:
                check.add(where, f"unknown dimension '{key}'{did_you_mean(key, dim_ids)}")
            elif not isinstance(value, (int, float)) or isinstance(value, bool):
                check.add(where, f"must be a number, got {value!r}")
            elif not math.isfinite(value):
                check.add(where, f"must be a finite number, got {value}")
            elif value < 0:
                check.add(where, f"must be >= 0, got {value}")
            else:
                weights[key] = float(value)
        if mapping and weights and sum(weights.values()) <= 0:
            check.add(_join(path, "weights"), "sum to 0: give at least one positive weight, or none for uniform")
    theme = check.tag(m, "healthbench_theme", path, "theme:")
    return Scenario(**check.named(m, path), weights=MappingProxyType(weights), healthbench_theme=theme)


def _criterion(
    check: _Checker, path: str, m: Mapping[str, Any], known: tuple[list[str], list[str], list[str]]
) -> Criterion:
    kinds = ("dimension", "scenario", "discipline")
    refs = [
        check.reference(m.get(k), _join(path, k), ids, k, wildcard=True) for k, ids in zip(kinds, known, strict=True)
    ]
    points = m.get("points")
    if not isinstance(points, (int, float)) or isinstance(points, bool) or points == 0:
        check.add(_join(path, "points"), f"must be a non-zero number, got {points!r}")
        points = 0
    elif not math.isfinite(points):
        check.add(_join(path, "points"), f"must be a finite number, got {points}")
        points = 0
    return Criterion(refs[0], refs[1], refs[2], check.text(m, "criterion", path), float(points))
