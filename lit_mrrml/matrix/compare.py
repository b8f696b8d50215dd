"""The matrix a reward model was trained with against the matrix in use.

A reward model's outputs are the dimensions of its training matrix, in that order: output 0 of a
model trained on [accuracy, safety, ...] is accuracy, whatever another matrix calls its first
dimension. So a checkpoint or an export used with a matrix whose dimension list differs (names,
order or count) would report one dimension's reward under another's name; that is refused. A
matrix that differs only in texts, weights, scenarios, disciplines or criteria scores the same
outputs, so it is accepted, with a warning naming what changed (weights change the total reward).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from lit_mrrml.errors import InputError

log = logging.getLogger(__name__)
SECTIONS = ("dimensions", "scenarios", "disciplines")


class DimensionMismatchError(InputError):
    """A reward model used with a matrix whose dimension list is not the one it was trained on."""


def check_dimensions(trained: Sequence[str], current: Sequence[str], source: str) -> None:
    """Raise DimensionMismatchError naming both lists when they differ in names, order or count."""
    if list(trained) == list(current):
        return
    if sorted(trained) == sorted(current):
        how = "the same names in another order"
    elif len(trained) != len(current):
        how = f"{len(trained)} dimensions against {len(current)}"
    else:
        how = "other names"
    raise DimensionMismatchError(
        f"{source} was trained with the dimensions {list(trained)}, but the matrix in use has {list(current)} "
        f"({how}): its rewards would be reported under the wrong names. Use the matrix it was trained with "
        "(its snapshot travels with the checkpoint and the export), or train again on this one"
    )


def matrix_changes(trained: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Key paths where two matrix dicts (``RubricMatrix.to_dict()``) differ, records matched by id:
    ``scenarios.hedging.weights``, ``dimensions.safety.levels.good``, ``disciplines: added oncology``."""
    changes = [key for key in ("name", "version") if trained.get(key) != current.get(key)]
    for section in SECTIONS:
        old, new = _by_id(trained.get(section)), _by_id(current.get(section))
        changes += [f"{section}: removed {i}" for i in old if i not in new]
        changes += [f"{section}: added {i}" for i in new if i not in old]
        for ident in (i for i in old if i in new):
            changes += _field_changes(f"{section}.{ident}", old[ident], new[ident])
    if list(trained.get("criteria") or []) != list(current.get("criteria") or []):
        changes.append("criteria")
    return changes


def _by_id(records: Any) -> dict[str, Mapping[str, Any]]:
    return {str(r.get("id")): r for r in records or [] if isinstance(r, Mapping)}


def _field_changes(path: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    changes = []
    for key in sorted({*old, *new}):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping) and key == "levels":
            changes += [f"{path}.levels.{level}" for level in sorted({*a, *b}) if a.get(level) != b.get(level)]
        elif a != b and not (key == "weights" and not a and not b):
            changes.append(f"{path}.{key}")
    return changes


def check_trained_matrix(
    trained_dimensions: Sequence[str],
    trained_matrix: Mapping[str, Any] | None,
    current_dimensions: Sequence[str],
    current_matrix: Mapping[str, Any] | None,
    source: str,
) -> list[str]:
    """Refuse another dimension list; warn about (and return) every other change of the matrix."""
    check_dimensions(trained_dimensions, current_dimensions, source)
    if trained_matrix is None or current_matrix is None:
        return []
    changes = matrix_changes(trained_matrix, current_matrix)
    if changes:
        weights = any(c.endswith(".weights") or c.startswith("scenarios:") for c in changes)
        log.warning(
            "%s was trained with another version of this matrix (changed: %s); its per-dimension rewards are "
            "used as they are%s",
            source,
            ", ".join(changes),
            ", and the total reward follows the new scenario weights" if weights else "",
        )
    return changes
