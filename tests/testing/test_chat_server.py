"""The loopback test server itself: its fault plans and the rule-based generation replies."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from lit_mrrml.testing import FaultPlan, GenerationRules


def test_per_request_faults_apply_to_the_first_attempts_of_each_body():
    plan = FaultPlan(per_request=["429", "500"])
    assert [plan.choose("a") for _ in range(3)] == ["429", "500", "ok"]
    assert [plan.choose("b") for _ in range(3)] == ["429", "500", "ok"]


def test_scripted_then_random_faults_and_the_model_filter():
    plan = FaultPlan(script=["timeout", "malformed"], rates={"503": 0.5}, seed=1)
    assert [plan.choose(str(i)) for i in range(2)] == ["timeout", "malformed"]
    drawn = Counter(plan.choose(str(i)) for i in range(2, 2002))
    assert set(drawn) == {"ok", "503"} and 900 < drawn["503"] < 1100
    judge_only = FaultPlan(rates={"bad_content": 1.0}, models=["judge"])
    assert judge_only.choose("x", "writer") == "ok" and judge_only.choose("x", "judge") == "bad_content"
    with pytest.raises(ValueError, match="unknown fault"):
        FaultPlan(script=["418"])


def test_the_rules_rank_answers_by_their_marks():
    rules = GenerationRules()
    request = (
        "## Task: rank\n## Answers\n### Answer A\nQuality mark: weak. x\n\n### Answer B\nQuality mark: excellent. y\n\n"
        "### Answer C\nQuality mark: adequate. z\n\nRank the answers A, B, C from best to worst"
    )
    reply = json.loads(rules([{"role": "user", "content": request}], {"seed": 1}))
    assert reply["ranking"] == ["B", "C", "A"]
    answer = rules([{"role": "user", "content": "## Task: answer\nLevel to reach: MEDIUM: x\nabout 12 words"}], {})
    assert answer.startswith("Quality mark: adequate.") and len(answer.split()) == 12
