"""The ``dimension`` column of a preference dataset: each row's labelled dimension, as an index.

A row names its dimension by id (a string among the model's dimension names) or by index (an
integer in [0, L)); anything else is refused with the dataset, the row and the choices named.
Pure Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lit_mrrml.errors import InputError
from lit_mrrml.matrix.suggest import did_you_mean

COLUMN = "dimension"


def dimension_index(value: Any, names: Sequence[str], where: str) -> int:
    """The index of ``value`` (a dimension id or index) among ``names``; ``where`` names the row."""
    if isinstance(value, str):
        if value in names:
            return list(names).index(value)
        raise InputError(
            f"{where}: {COLUMN} {value!r} is not one of the model's dimensions{did_you_mean(value, names)} "
            f"(expected one of {list(names)} or an index in [0, {len(names)}))"
        )
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < len(names):
            return value
        raise InputError(f"{where}: {COLUMN} index {value} is out of range: the model has {len(names)} dimensions")
    raise InputError(
        f"{where}: {COLUMN} must be a dimension id or an integer index, got {type(value).__name__} {value!r}"
    )


def check_dimension_names(names: Sequence[str], num_labels: int, where: str) -> list[str]:
    """The model's L dimension names: as many as its score head has outputs, distinct, non-empty."""
    names = list(names)
    if len(names) != num_labels:
        raise InputError(f"{where}: {len(names)} dimension names {names} for a score head of {num_labels} outputs")
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise InputError(f"{where}: dimension names must be distinct non-empty strings, got {names}")
    return names
