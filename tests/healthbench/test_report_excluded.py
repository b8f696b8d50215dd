"""summary.md lists rows left out of the scores by error: one line per distinct error, with counts."""

from __future__ import annotations

import json

from lit_mrrml.healthbench.report import _excluded_lines
from lit_mrrml.testing import ChatServer, FaultPlan
from tests.healthbench.conftest import backend, make_eval, make_row, rubric, write_rows
from tests.healthbench.test_evaluate import Stubborn

GAVE_UP = "gave up after 5 attempt(s) at http://judge/v1/chat/completions: HTTP 503: injected 503"
BAD = "gave up after 5 attempt(s) at http://judge/v1/chat/completions: bad reply: no JSON object"


def ungraded(prompt_id: str, *errors: str | None) -> dict:
    return {"prompt_id": prompt_id, "criteria": [{"criterion": f"[5] c{i}", "error": e} for i, e in enumerate(errors)]}


def test_identical_errors_are_one_line_with_their_counts_and_first_rows():
    results = {
        "ungraded_rows": [
            ungraded("a", GAVE_UP, GAVE_UP, BAD),
            ungraded("b", BAD),
            ungraded("c", GAVE_UP),
            ungraded("d", GAVE_UP),
            ungraded("e", GAVE_UP, "HTTP 500:\n  the judge\tcrashed"),
            ungraded("f", GAVE_UP),
        ],
        "unanswered_rows": [
            {"prompt_id": "u1", "error": "policy down"},
            {"prompt_id": "u2", "error": "too long"},
            {"prompt_id": "u3", "error": "too long"},
        ],
    }
    assert _excluded_lines(results) == [
        "## Ungraded rows (excluded; rerun to grade them)",
        "",
        f"- 6 criteria in 5 rows: {GAVE_UP} (rows `a`, `c`, `d`, ... and 2 more)",
        f"- 2 criteria in 2 rows: {BAD} (rows `a`, `b`)",
        "- 1 criterion in 1 row: HTTP 500: the judge crashed (row `e`)",  # one line, whatever the server sent
        "",
        "## Unanswered rows (excluded; rerun to answer them)",
        "",
        "- 2 rows: too long (rows `u2`, `u3`)",
        "- 1 row: policy down (row `u1`)",
        "",
    ]
    assert _excluded_lines({"ungraded_rows": [], "unanswered_rows": []}) == []


def test_five_thousand_identical_failures_are_one_line():
    rows = [ungraded(f"p{i}", *[GAVE_UP] * 10) for i in range(500)]
    lines = _excluded_lines({"ungraded_rows": rows, "unanswered_rows": []})
    assert lines[2:] == [f"- 5000 criteria in 500 rows: {GAVE_UP} (rows `p0`, `p1`, `p2`, ... and 497 more)", ""]


TROPONIN = "Explains cardiac troponin testing"  # the criterion Stubborn never gives a verdict on


def stubborn_rows() -> list[dict]:
    ideal = "Rest, then see a doctor today."
    rows = [make_row(f"t{i}", [rubric(TROPONIN, 5), rubric("Advises rest", 3)], ideal=ideal) for i in range(8)]
    rows[0]["rubrics"].append(rubric("Orders a troponin test", 4))  # two ungraded criteria in one row
    return rows


def test_a_real_run_lists_the_judges_identical_failures_once(tmp_path):
    rows = write_rows(tmp_path / "rows.jsonl", stubborn_rows())
    with ChatServer(Stubborn()) as server:
        outcome = make_eval(tmp_path / "out", server, rows, attempts=2).run()
    assert outcome.ungraded == 8
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    listed = [(r["prompt_id"], c["criterion"]) for r in results["ungraded_rows"] for c in r["criteria"]]
    assert len(listed) == 9 and listed[:2] == [("t0", f"[5] {TROPONIN}"), ("t0", "[4] Orders a troponin test")]
    (error,) = {c["error"] for r in results["ungraded_rows"] for c in r["criteria"]}
    assert error.startswith(f"gave up after 2 attempt(s) at {server.url}/chat/completions: bad reply: ")
    summary = (tmp_path / "out" / "summary.md").read_text()
    section = summary.split("## Ungraded rows (excluded; rerun to grade them)\n\n")[1].splitlines()
    assert section == [f"- 9 criteria in 8 rows: {error} (rows `t0`, `t1`, `t2`, ... and 5 more)"]


def test_a_real_run_lists_rows_the_policy_failed_the_same_way_once(tmp_path):
    rows = write_rows(tmp_path / "rows.jsonl", stubborn_rows())
    with ChatServer(Stubborn(), FaultPlan(per_request=["400"], models=["rule-policy"])) as server:
        policy = backend(server, "rule-policy")
        outcome = make_eval(tmp_path / "out", server, rows, mode="policy", policy=policy).run()
    assert outcome.unanswered == 8
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["prompt_id"] for r in results["unanswered_rows"]] == [f"t{i}" for i in range(8)]
    (error,) = {r["error"] for r in results["unanswered_rows"]}
    assert error == (
        f"gave up after 1 attempt(s) at {server.url}/chat/completions: HTTP 400 (not retried): injected 400: "
        "this model's maximum context length is exceeded"
    )
    summary = (tmp_path / "out" / "summary.md").read_text()
    heading = "## Unanswered rows (excluded; rerun to answer them)"
    assert summary.endswith(f"{heading}\n\n- 8 rows: {error} (rows `t0`, `t1`, `t2`, ... and 5 more)\n")
