"""The coverage report and the ``python -m lit_mrrml matrix FILE`` command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from lit_mrrml.cli import main
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.matrix.coverage import print_coverage
from tests.conftest import MATRIX_PATH, ROOT

CELL = re.compile(r"(\d\.\d\d) \((\d+)\)")


def coverage_text(matrix: RubricMatrix) -> str:
    console = Console(record=True, width=200)
    print_coverage(matrix, console)
    return console.export_text()


def row_of(text: str, first_cell: str) -> str:
    rows = [line for line in text.splitlines() if re.match(rf"^│ {re.escape(first_cell)}\s+│", line)]
    assert len(rows) == 1, (first_cell, rows)
    return rows[0]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "lit_mrrml", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_coverage_summary_counts_cells_and_criteria(matrix: RubricMatrix) -> None:
    text = coverage_text(matrix)
    assert "valid rubric matrix 'medical-dsd' v1" in text
    n_cells = 6 * 7 * len(matrix.disciplines)
    assert f"6 dimensions x 7 scenarios x {len(matrix.disciplines)} disciplines = {n_cells} cells" in text
    assert f"{len(matrix.criteria)} criteria" in text
    assert matrix.content_hash()[:16] in text


def test_coverage_names_every_dimension_scenario_and_discipline(matrix: RubricMatrix) -> None:
    text = coverage_text(matrix)
    for ident in (*matrix.dimension_ids, *matrix.scenario_ids, *matrix.discipline_ids):
        assert ident in text, ident


def test_coverage_header_lists_dimensions_in_order(matrix: RubricMatrix) -> None:
    text = coverage_text(matrix)
    header = row_of(text.replace("┃", "│"), "scenario")
    positions = [header.index(f" {d} ") for d in matrix.dimension_ids]
    assert positions == sorted(positions)


def test_coverage_rows_show_each_scenarios_weights(matrix: RubricMatrix) -> None:
    text = coverage_text(matrix)
    for scenario_id in matrix.scenario_ids:
        shown = [float(w) for w, _ in CELL.findall(row_of(text, scenario_id))]
        assert shown == pytest.approx(matrix.weights(scenario_id), abs=0.005), scenario_id


def test_coverage_counts_criteria_per_scenario_and_dimension(matrix: RubricMatrix) -> None:
    cells = CELL.findall(row_of(coverage_text(matrix), "emergency_referrals"))
    counts = dict(zip(matrix.dimension_ids, (int(n) for _, n in cells), strict=True))
    # safety: the wildcard-discipline rule, the pediatrics rule and the pharmacy rule of scenario '*'
    assert counts["safety"] == 3
    assert counts["accuracy"] == 0


def test_coverage_counts_criteria_per_discipline(matrix: RubricMatrix) -> None:
    text = coverage_text(matrix)
    wildcard = sum(1 for c in matrix.criteria if c.discipline == "*")
    assert row_of(text, "pediatrics").rstrip(" │").endswith(f" {wildcard + 1}")
    assert row_of(text, "psychiatry").rstrip(" │").endswith(f" {wildcard}")


def test_coverage_of_a_uniform_scenario(matrix: RubricMatrix) -> None:
    data = matrix.to_dict()
    data["scenarios"][0]["weights"] = {}
    text = coverage_text(RubricMatrix.from_dict(data))
    shown = [w for w, _ in CELL.findall(row_of(text, "emergency_referrals"))]
    assert shown == ["0.17"] * 6


def test_cli_matrix_prints_the_table_for_the_shipped_file() -> None:
    result = run_cli("matrix", str(MATRIX_PATH))
    assert result.returncode == 0, result.stderr
    assert "valid rubric matrix 'medical-dsd'" in result.stdout
    for ident in ("emergency_referrals", "complex_responses", "safety", "instruction_following", "pediatrics"):
        assert ident in result.stdout
    assert "0.35 (3)" in result.stdout  # emergency_referrals x safety


def test_cli_matrix_reports_problems_on_stderr_and_exits_2(tmp_path: Path, matrix: RubricMatrix) -> None:
    data = matrix.to_dict()
    data["scenarios"][2]["weights"]["acuracy"] = 0.1
    data["dimensions"][0]["description"] = ""
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = run_cli("matrix", str(path))
    assert result.returncode == 2  # bad input: the same status as every other command's
    assert "scenarios[2].weights.acuracy: unknown dimension 'acuracy'; did you mean 'accuracy'?" in result.stderr
    assert "dimensions[0].description: must be a non-empty string" in result.stderr
    assert "2 problem(s)" in result.stderr
    assert "valid rubric matrix" not in result.stdout


def test_cli_matrix_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["matrix", str(tmp_path / "absent.yaml")]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "absent.yaml" in err
