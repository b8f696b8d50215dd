"""HealthBenchEval against the rule-based judge on loopback: grading, retries, caching, the report."""

from __future__ import annotations

import json

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM

from lit_mrrml.backends import HFLocalBackend
from lit_mrrml.healthbench.answers import policy_id
from lit_mrrml.healthbench.evaluate import HealthBenchEval
from lit_mrrml.healthbench.options import AnswerOptions, GraderOptions, RewardCheckOptions, RowOptions
from lit_mrrml.models.backbone import BackboneSpec
from lit_mrrml.models.tiny import TINY_QWEN2
from lit_mrrml.testing import ChatServer, FaultPlan, RubricJudgeRules
from tests.conftest import TINY_TOKENIZER
from tests.healthbench.conftest import backend, make_eval, make_row, rubric, write_rows

PER_ROW = {"r1": 0.5, "r2": -1.0, "r3": 0.0}  # hand-computed in conftest from the rule verdicts


def graded(output) -> dict[str, dict]:
    lines = (output / "graded.jsonl").read_text().splitlines()
    return {r["prompt_id"]: r for r in map(json.loads, lines)}


def test_ideal_completions_are_graded_one_call_per_criterion_and_scored_by_hand(tmp_path, judge_server, rows_file):
    outcome = make_eval(tmp_path / "out", judge_server, rows_file).run()
    assert outcome.complete and judge_server.requests == 7
    scores = outcome.results["scores"]
    assert scores["overall"]["score"] == 0.0 and scores["overall"]["n"] == 3  # the mean, -1/6, clipped
    assert scores["overall"]["bootstrap_std"] > 0  # resamples such as (0.5, 0.5, 0) have positive means
    assert scores["axis:accuracy"]["score"] == pytest.approx(11 / 17) and scores["axis:accuracy"]["n"] == 1
    assert scores["axis:completeness"]["score"] == 0.5 and scores["axis:completeness"]["n"] == 2
    assert scores["axis:context_awareness"] == {"score": 0.0, "bootstrap_std": 0.0, "n": 1}
    assert scores["theme:emergency_referrals"]["score"] == 0.5 and scores["level:cluster"]["score"] == 1.0
    assert scores["theme:hedging"]["score"] == 0.0 and scores["theme:hedging"]["n"] == 2
    rows = graded(tmp_path / "out")
    assert {k: r["scores"]["overall"] for k, r in rows.items()} == PER_ROW
    assert [c["criteria_met"] for c in rows["r1"]["criteria"]] == [True, False, True, True]
    assert all(c["explanation"].startswith("rule:") for c in rows["r1"]["criteria"])


def test_the_judge_is_asked_as_the_reference_grader(tmp_path, judge_server, rows_file):
    make_eval(tmp_path / "out", judge_server, rows_file).run()
    bodies = [b for b in judge_server.bodies if "[7] Advises calling" in b["messages"][-1]["content"]]
    (body,) = bodies
    assert body["messages"][0] == {"role": "system", "content": "You are a helpful assistant."}
    content = body["messages"][1]["content"]
    assert "user: Question r1: my chest hurts after running, what now?\n\nassistant: Calling emergency" in content
    assert body["temperature"] == 0.5 and body["max_tokens"] == 2048 and "response_format" not in body


def test_a_rerun_takes_every_verdict_from_the_cache(tmp_path, judge_server, rows_file):
    first = make_eval(tmp_path / "out", judge_server, rows_file).run()
    again = make_eval(tmp_path / "out", judge_server, rows_file).run()
    assert judge_server.requests == 7
    assert again.results["scores"] == first.results["scores"]
    assert again.results["tokens_this_run"]["judge"] == {"prompt": 0, "completion": 0}
    other_judge = make_eval(tmp_path / "out", judge_server, rows_file, grader=GraderOptions(temperature=0.0))
    assert other_judge.grader.fingerprint != first.results["judge"]["grader"]["fingerprint"]


def test_transient_faults_are_retried_within_the_bound(tmp_path, rows_file):
    with ChatServer(RubricJudgeRules(), FaultPlan(per_request=["500", "429"])) as server:
        outcome = make_eval(tmp_path / "out", server, rows_file, attempts=3).run()
    assert outcome.complete and server.requests == 21  # 7 criteria, each 500, 429, then a verdict
    assert outcome.results["scores"]["axis:accuracy"]["score"] == pytest.approx(11 / 17)


class Stubborn(RubricJudgeRules):
    """Never gives a usable verdict on the troponin criterion."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = True

    def __call__(self, messages, body):
        if self.broken and "troponin" in messages[-1]["content"]:
            return "Hard to say, honestly."
        return super().__call__(messages, body)


def test_a_criterion_left_ungraded_excludes_its_row_and_the_next_run_grades_it(tmp_path, rows_file):
    rules = Stubborn()
    with ChatServer(rules) as server:
        outcome = make_eval(tmp_path / "out", server, rows_file, attempts=2).run()
        assert server.requests == 8  # 6 verdicts at once, the stubborn one asked twice
        assert not outcome.complete and outcome.ungraded == 1
        results = outcome.results
        assert results["rows"]["graded"] == 2 and results["rows"]["ungraded"] == 1
        (left,) = results["ungraded_rows"]
        assert left["prompt_id"] == "r1" and left["criteria"][0]["criterion"].startswith("[5] Explains cardiac")
        assert "gave up after 2 attempt" in left["criteria"][0]["error"]
        assert results["scores"]["overall"]["n"] == 2 and "theme:emergency_referrals" not in results["scores"]
        assert "Ungraded rows" in (tmp_path / "out" / "summary.md").read_text()
        rules.broken = False
        again = make_eval(tmp_path / "out", server, rows_file, attempts=2).run()
        assert server.requests == 9 and again.complete
        assert again.results["scores"]["theme:emergency_referrals"]["score"] == 0.5


def test_a_policy_endpoint_answers_once_per_policy_and_prompt(tmp_path, judge_server, rows_file):
    def job(**answers) -> HealthBenchEval:
        policy = backend(judge_server, "rule-policy")
        return make_eval(tmp_path / "out", judge_server, rows_file, mode="policy", policy=policy, **answers)

    first = job().run()
    policy_calls = [b for b in judge_server.bodies if b["model"] == "rule-policy"]
    assert len(policy_calls) == 3 and first.complete
    assert first.results["policy"]["id"] == f"openai:rule-policy@{judge_server.url}"
    cache = [json.loads(line) for line in (tmp_path / "out" / "cache" / "answers.jsonl").read_text().splitlines()]
    assert sorted(r["prompt_id"] for r in cache) == ["r1", "r2", "r3"]
    assert all(r["policy"] == first.results["policy"]["cache_id"] for r in cache)
    requests = judge_server.requests
    job().run()
    assert judge_server.requests == requests  # answers and verdicts both cached
    job(answers=AnswerOptions(max_tokens=99)).run()  # another policy id: asked again, same texts, verdicts cached
    assert judge_server.requests == requests + 3


def test_a_system_prompt_is_sent_to_the_policy_and_shown_to_the_judge(tmp_path, judge_server, rows_file):
    policy = backend(judge_server, "rule-policy")
    options = AnswerOptions(system_prompt="You are a careful clinician.")
    make_eval(tmp_path / "out", judge_server, rows_file, mode="policy", policy=policy, answers=options).run()
    asked = [b for b in judge_server.bodies if b["model"] == "rule-policy"]
    assert all(b["messages"][0] == {"role": "system", "content": "You are a careful clinician."} for b in asked)
    grading = [b for b in judge_server.bodies if b["model"] == "rule-judge"]
    assert all(
        "system: You are a careful clinician.\n\nuser: Question" in b["messages"][-1]["content"] for b in grading
    )


def test_rows_the_policy_cannot_answer_are_reported_and_excluded(tmp_path, rows_file):
    with ChatServer(RubricJudgeRules(), FaultPlan(per_request=["400"], models=["rule-policy"])) as server:
        policy = backend(server, "rule-policy")
        outcome = make_eval(tmp_path / "out", server, rows_file, mode="policy", policy=policy).run()
    assert outcome.unanswered == 3 and not outcome.complete and outcome.results["scores"] == {}
    assert {r["prompt_id"] for r in outcome.results["unanswered_rows"]} == {"r1", "r2", "r3"}
    assert "Unanswered rows" in (tmp_path / "out" / "summary.md").read_text()
    assert (tmp_path / "out" / "chart.png").stat().st_size > 0


def test_the_report_carries_the_judge_with_every_score(tmp_path, judge_server, rows_file):
    outcome = make_eval(tmp_path / "out", judge_server, rows_file).run()
    out = tmp_path / "out"
    results = json.loads((out / "results.json").read_text())
    assert results == json.loads(json.dumps(outcome.results))
    assert results["judge"]["id"] == f"openai:rule-judge@{judge_server.url}"
    assert results["judge"]["model_id"] == "openai:rule-judge"
    assert results["started"] <= results["finished"] and results["format"] == "lit_mrrml.healthbench/1"
    assert results["rows"]["sha256"] and results["rows"]["selected"] == 3
    summary = (out / "summary.md").read_text()
    score_lines = [line for line in summary.splitlines() if line.startswith("| ") and line[2:4] != "sc"]
    assert len(score_lines) == len(results["scores"])
    assert all(results["judge"]["id"] in line for line in score_lines)
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mode_ideal_skips_rows_without_an_ideal_completion(tmp_path, judge_server):
    path = write_rows(
        tmp_path / "r.jsonl",
        [make_row("a", [rubric("Says water", 2)], ideal="Water."), make_row("b", [rubric("x", 1)])],
    )
    outcome = make_eval(tmp_path / "out", judge_server, path).run()
    assert outcome.results["rows_without_ideal_completion"] == ["b"] and outcome.results["rows"]["graded"] == 1
    assert outcome.complete


def test_a_local_model_answers_and_its_weights_are_part_of_its_id(tmp_path, judge_server, rows_file, tiny_spec):
    policy = HFLocalBackend(tiny_spec, batch_size=2)
    options = AnswerOptions(max_tokens=8)
    job = make_eval(tmp_path / "out", judge_server, rows_file, mode="policy", policy=policy, answers=options)
    outcome = job.run()
    assert outcome.complete and outcome.results["rows"]["graded"] == 3
    assert outcome.results["policy"]["cache_id"].startswith("hf:random-qwen2@")
    assert outcome.results["rows"]["truncated_answers"] == sum(
        r["finish_reason"] == "length" for r in graded(tmp_path / "out").values()
    )


def test_bad_settings_fail_early(tmp_path, judge_server, rows_file):
    with pytest.raises(ValueError, match="needs a `policy` backend"):
        make_eval(tmp_path, judge_server, rows_file, mode="policy")
    with pytest.raises(ValueError, match="bootstrap_samples"):
        make_eval(tmp_path, judge_server, rows_file, bootstrap_samples=0)
    with pytest.raises(FileNotFoundError):
        HealthBenchEval(str(tmp_path), backend(judge_server), mode="ideal", rows=RowOptions(path=str(tmp_path / "x")))


def saved_causal_lm(folder, seed: int) -> None:
    fields = dict(TINY_QWEN2)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(fields.pop("model_type"), **fields))
    model.save_pretrained(folder)


def test_a_model_folder_or_a_peft_adapter_answers_and_retraining_changes_its_id(tmp_path, judge_server, rows_file):
    saved_causal_lm(tmp_path / "base", seed=0)
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "base")  # the adapter records where its base is
    get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(tmp_path / "adapter")
    ids = []
    for name in ("base", "adapter"):
        policy = HFLocalBackend(BackboneSpec(path=str(tmp_path / name), tokenizer=str(TINY_TOKENIZER)))
        job = make_eval(tmp_path / name / "out", judge_server, rows_file, mode="policy", policy=policy)
        job.answer_options = AnswerOptions(max_tokens=6)
        outcome = job.run()
        assert outcome.complete and outcome.results["rows"]["graded"] == 3
        ids.append(outcome.results["policy"]["cache_id"])
    assert ids[0] != ids[1]
    saved_causal_lm(tmp_path / "base", seed=1)  # retrained in place
    assert policy_id(HFLocalBackend(BackboneSpec(path=str(tmp_path / "base"))), AnswerOptions(max_tokens=6)) != ids[0]


def test_the_report_counts_this_runs_requests_and_retries(tmp_path, rows_file):
    with ChatServer(RubricJudgeRules(), FaultPlan(per_request=["503"])) as server:
        outcome = make_eval(tmp_path / "out", server, rows_file).run()
    assert outcome.results["requests_this_run"] == {"judge": {"replies": 7, "attempts": 14, "retries": 7}}
    with pytest.raises(FileNotFoundError, match=r"reward_check\.model"):
        make_eval(tmp_path, server, rows_file, reward_check=RewardCheckOptions(model=str(tmp_path / "none")))
