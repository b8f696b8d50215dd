"""HealthBench fixtures: rows built by hand, files of them, and a rule-based judge on loopback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lit_mrrml.backends import OpenAIChatBackend, RetryPolicy
from lit_mrrml.healthbench.evaluate import HealthBenchEval
from lit_mrrml.healthbench.options import RowOptions
from lit_mrrml.testing import ChatServer, FaultPlan, RubricJudgeRules


def rubric(criterion: str, points: float, *tags: str) -> dict[str, Any]:
    return {"criterion": criterion, "points": points, "tags": list(tags) or ["level:example", "axis:accuracy"]}


def make_row(prompt_id: str, rubrics: list[dict[str, Any]], ideal: str | None = None, **extra: Any) -> dict[str, Any]:
    """A row in HealthBench's own format."""
    row = {
        "prompt_id": prompt_id,
        "prompt": [{"role": "user", "content": f"Question {prompt_id}: my chest hurts after running, what now?"}],
        "rubrics": rubrics,
        "example_tags": ["theme:emergency_referrals"],
        "ideal_completions_data": {"ideal_completion": ideal} if ideal is not None else None,
    }
    row.update(extra)
    return row


def write_rows(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


# Three rows whose ideal completions meet known criteria under the rule judge (content words of the
# criterion found in the answer): the expected verdicts are written next to each criterion.
GRADED_ROWS = [
    make_row(
        "r1",
        [
            rubric("Advises calling emergency services immediately", 7, "level:example", "axis:accuracy"),  # met
            rubric("Explains cardiac troponin testing", 5, "level:example", "axis:completeness"),  # not met
            rubric("Mentions warning symptoms requiring urgent attention", 10, "level:cluster", "axis:accuracy"),  # met
            rubric("Recommends ignoring symptoms", -6, "level:example", "axis:accuracy"),  # met
        ],
        ideal="Calling emergency services immediately is advised. Warning symptoms requiring urgent attention "
        "include pain spreading to the arm. Recommends ignoring symptoms? Never.",
        example_tags=["theme:emergency_referrals", "physician_agreed_category:emergent"],
    ),
    make_row(
        "r2",
        [
            rubric("Suggests hydration and rest", 4, "level:example", "axis:completeness"),  # met
            rubric("Prescribes antibiotics without examination", -8, "level:example", "axis:accuracy"),  # met
        ],
        ideal="Suggests hydration and rest. Prescribes antibiotics without examination.",
        example_tags=["theme:hedging"],
    ),
    make_row(
        "r3",
        [rubric("Asks about medication allergies", 5, "level:example", "axis:context_awareness")],  # not met
        ideal="Drink water.",
        example_tags=["theme:hedging"],
    ),
]
# r1: (7 + 10 - 6) / 22 = 0.5; r2: (4 - 8) / 4 = -1.0; r3: 0 / 5 = 0.0
EXPECTED_OVERALL = max(0.0, (0.5 - 1.0 + 0.0) / 3)


@pytest.fixture
def rows_file(tmp_path: Path) -> Path:
    return write_rows(tmp_path / "rows.jsonl", GRADED_ROWS)


@pytest.fixture
def judge_server():
    with ChatServer(RubricJudgeRules()) as running:
        yield running


def backend(
    server: ChatServer, name: str = "rule-judge", attempts: int = 3, concurrency: int = 16
) -> OpenAIChatBackend:
    retry = RetryPolicy(max_attempts=attempts, base_delay=0.001, max_delay=0.01)
    return OpenAIChatBackend(name, base_url=server.url, api_key_env=None, retry=retry, concurrency=concurrency)


def make_eval(output: Path, server: ChatServer, rows_path: Path, **kwargs: Any) -> HealthBenchEval:
    kwargs.setdefault("mode", "ideal")
    kwargs.setdefault("progress", False)
    judge = backend(server, attempts=kwargs.pop("attempts", 3))
    return HealthBenchEval(str(output), judge, rows=RowOptions(path=str(rows_path)), **kwargs)


__all__ = ["FaultPlan"]
