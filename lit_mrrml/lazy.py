"""Lazy package exports (PEP 562): a package names what it offers without importing it.

``from lit_mrrml import RewardModel`` imports Lightning and torch when it runs, and ``import
lit_mrrml.matrix`` (or ``python -m lit_mrrml matrix``) never does: the package's ``__init__`` maps
each public name to the module that defines it, and the module is imported on first access.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose public ``exports`` map a name to the
    module (relative to the package, as ``.models.backbone``, or absolute) that defines it."""

    def __getattr__(name: str) -> Any:
        where = exports.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where, package), name)
        globals_of(package)[name] = value  # the next access is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals_of(package)) | set(exports))

    return __getattr__, __dir__


def globals_of(package: str) -> dict[str, Any]:
    import sys

    return vars(sys.modules[package])
