"""Standard JSON out: every JSON file and line the project writes goes through ``dumps``.

Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which is not JSON: other readers
(jq, JavaScript, pandas with a strict parser) refuse the file, or read a number that means
nothing. Here a non-finite number is an error that names its key path; it never reaches a file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import Any


class NonFiniteJSONError(ValueError):
    """A value to be written as JSON holds NaN or an infinity."""


def dumps(obj: Any, what: str = "JSON output", **kwargs: Any) -> str:
    """``json.dumps`` with ``allow_nan=False``; a non-finite number raises NonFiniteJSONError with its path."""
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError as err:
        found = next(non_finite_paths(obj), None)
        if found is None:
            raise
        path, value = found
        raise NonFiniteJSONError(f"{what}: {value} at {path or '<top>'} is not a finite number; not written") from err


def non_finite_paths(obj: Any, path: str = "") -> Iterator[tuple[str, float]]:
    """(key path, value) of every NaN or infinity in nested dicts and lists, in order."""
    if isinstance(obj, float) and not math.isfinite(obj):
        yield path, obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from non_finite_paths(value, f"{path}.{key}" if path else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from non_finite_paths(value, f"{path}[{i}]")
