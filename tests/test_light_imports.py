"""Start fast, import light: the commands that do not train never import Lightning, and the ones that
need no model never import torch. Each check runs in a fresh subprocess and reads its ``sys.modules``
(tests/import_probe.py), not a timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lit_mrrml.cli import COMMANDS, entry_point, main
from tests.conftest import MATRIX_PATH, ROOT, run_fresh

PROBE = ROOT / "tests" / "import_probe.py"
LIGHT = {"torch", "lightning", "transformers", "peft", "bitsandbytes"}


def imported_by(*args: str) -> list[str]:
    """The heavy packages a command imports, run through tests/import_probe.py in a fresh process."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(PROBE), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rc"] == 0, done.stderr[-2000:]
    return list(result["imported"])


def modules_after(statement: str) -> set[str]:
    """The heavy packages in ``sys.modules`` after ``statement`` runs in a fresh interpreter."""
    return run_fresh(statement, LIGHT).imported


@pytest.mark.parametrize(
    "statement",
    [
        "import lit_mrrml",
        "import lit_mrrml.cli",
        "import lit_mrrml.backends",
        "from lit_mrrml.backends import OpenAIChatBackend, CachedBackend, RetryPolicy",
        "import lit_mrrml.matrix",
        "from lit_mrrml.healthbench import load_rows, score_rows, bootstrap_std",  # the scoring library
        "import lit_mrrml.testing.chat_server",  # the test server
        "import lit_mrrml.healthbench.command, lit_mrrml.generate.command",
    ],
)
def test_the_light_layers_import_neither_torch_nor_lightning(statement):
    assert modules_after(statement) == set()


def test_a_package_name_imports_its_module_on_first_use_only():
    assert modules_after("import lit_mrrml; lit_mrrml.RubricMatrix") == set()
    assert {"torch", "lightning"} <= modules_after("from lit_mrrml import RewardModel")
    with pytest.raises(ImportError, match="cannot import name 'NoSuchThing'"):
        exec("from lit_mrrml import NoSuchThing")


def test_help_lists_every_command_with_a_line(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in (
        "fit",
        "validate",
        "test",
        "predict",
        "generate",
        "healthbench",
        "matrix",
        "convert",
        "export",
        "serve",
    ):
        line = next((row for row in out.splitlines() if row.strip().startswith(f"{name} ")), None)
        assert line is not None and len(line.split(maxsplit=1)[1]) > 20, f"{name}: {line!r}"
    assert main([]) == 2  # no command: the same list, as an error
    assert "commands:" in capsys.readouterr().err


def test_every_listed_command_has_an_entry_point():
    for name, (where, _) in COMMANDS.items():
        if where:  # the Lightning commands go through LightningCLI
            assert callable(entry_point(name)), name


def test_an_unknown_command_is_one_line_with_a_suggestion(capsys):
    assert main(["fitt"]) == 2
    assert (
        capsys.readouterr().err.strip() == "error: unknown command 'fitt'; did you mean 'fit'?; run --help for the list"
    )


def test_matrix_imports_neither_torch_nor_lightning():
    assert imported_by("matrix", str(MATRIX_PATH)) == []


def test_healthbench_with_a_remote_judge_imports_neither(tmp_path):
    args = [
        "--config",
        str(ROOT / "configs" / "eval" / "healthbench_loopback.yaml"),
        "--judge.init_args.base_url={url}",
    ]
    args += [f"--output_dir={tmp_path}", "--rows.limit=2", "--progress=false"]
    assert imported_by("--server", "healthbench", "healthbench", *args) == []
    assert json.loads((tmp_path / "results.json").read_text())["rows"]["graded"] == 2


def test_generate_with_remote_backends_imports_neither(tmp_path):
    args = ["--config", str(ROOT / "configs" / "generate" / "loopback.yaml"), f"--output_dir={tmp_path}"]
    args += ["--generator.init_args.base_url={url}", "--judge.init_args.base_url={url}"]
    assert imported_by("--server", "generate", "generate", *args) == []
    assert any(tmp_path.rglob("*.jsonl"))
