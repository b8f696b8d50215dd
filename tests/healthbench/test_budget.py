"""The judge calls printed before grading, their prompt tokens, and max_judge_calls refusing a run."""

from __future__ import annotations

import json

import pytest

from lit_mrrml.backends import HFLocalBackend
from lit_mrrml.backends.base import ChatRequest
from lit_mrrml.healthbench.budget import BY_CHARACTERS, BY_TOKENIZER, JudgeBudgetError, character_tokens
from lit_mrrml.healthbench.command import healthbench_command
from lit_mrrml.healthbench.evaluate import HealthBenchEval
from lit_mrrml.healthbench.grader import render_conversation
from lit_mrrml.healthbench.grader_text import reference_text
from lit_mrrml.healthbench.options import GraderOptions, RowOptions
from lit_mrrml.models.backbone import load_tokenizer
from lit_mrrml.testing import ChatServer, RubricJudgeRules
from tests.healthbench.conftest import GRADED_ROWS, backend, make_eval, make_row, rubric, write_rows
from tests.healthbench.test_command import flags

SYSTEM = "You are a helpful assistant."


def small_rows(tmp_path):
    """One row, two criteria, a custom template and no system message: the characters by hand."""
    row = make_row("s1", [rubric("Advises rest", 5), rubric("Is rude", -2)], ideal="Rest.")
    row["prompt"] = [{"role": "user", "content": "Hi?"}]
    template = tmp_path / "grader.txt"
    template.write_text("# Conversation\n<<conversation>>\n\n# Rubric item\n<<rubric_item>>\n\n# ", encoding="utf-8")
    return write_rows(tmp_path / "rows.jsonl", [row]), GraderOptions(template=str(template), system_prompt=None)


def test_calls_and_tokens_of_a_small_row_file_by_hand(tmp_path, judge_server, capsys):
    rows, grader = small_rows(tmp_path)
    job = make_eval(tmp_path / "out", judge_server, rows, grader=grader)
    job.run()
    # the template's own text is 15 + 16 + 4 = 35 characters, the conversation "user: Hi?\n\nassistant:
    # Rest." 9 + 2 + 16 = 27, the items "[5] Advises rest" 16 and "[-2] Is rude" 12: 78 + 74 = 152
    # characters, 152 / 4 = 38 tokens
    assert job.plan is not None and job.plan.as_dict() == {
        "calls": 2,
        "cached": 0,
        "prompt_tokens": 38,
        "counted": BY_CHARACTERS,
    }
    err = capsys.readouterr().err
    assert (
        "judge: 2 call(s) to make, 38 prompt tokens (estimated as characters / 4); 0 verdict(s) from the cache" in err
    )
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["judge_calls"] == job.plan.as_dict() and judge_server.requests == 2
    assert (
        "- judge calls this run: 2, 38 prompt tokens (estimated as characters / 4); 0 verdicts from the cache"
        in (tmp_path / "out" / "summary.md").read_text()
    )


def reference_prompt_characters(row: dict) -> int:
    """The characters of one row's judge requests, built as the design describes the reference."""
    turns = [*row["prompt"], {"role": "assistant", "content": row["ideal_completions_data"]["ideal_completion"]}]
    conversation = "\n\n".join(f"{t['role']}: {t['content']}" for t in turns)
    template = reference_text().text.replace("<<conversation>>", conversation)
    return sum(
        len(SYSTEM) + len(template.replace("<<rubric_item>>", f"[{c['points']}] {c['criterion']}"))
        for c in row["rubrics"]
    )


def test_the_default_grader_counts_every_message_and_cached_verdicts_do_not_count(tmp_path, judge_server, rows_file):
    first = make_eval(tmp_path / "out", judge_server, rows_file)
    first.run()
    characters = sum(reference_prompt_characters(r) for r in GRADED_ROWS)
    assert first.plan is not None and (first.plan.calls, first.plan.cached) == (7, 0)
    assert first.plan.prompt_tokens == round(characters / 4)
    again = make_eval(tmp_path / "out", judge_server, rows_file, max_judge_calls=0)  # all cached: within budget
    assert again.run().complete and judge_server.requests == 7
    assert again.plan is not None and again.plan.as_dict() == {
        "calls": 0,
        "cached": 7,
        "prompt_tokens": 0,
        "counted": BY_CHARACTERS,
    }
    more = write_rows(tmp_path / "more.jsonl", [*GRADED_ROWS, make_row("r4", [rubric("Advises rest", 3)], ideal="x")])
    third = make_eval(tmp_path / "out", judge_server, more, max_judge_calls=1)
    assert third.run().complete and judge_server.requests == 8
    assert third.plan is not None and (third.plan.calls, third.plan.cached) == (1, 7)


def test_character_tokens_round_the_characters_over_four():
    requests = [ChatRequest((("system", "abc"), ("user", "defgh"))), ChatRequest((("user", "ij"),))]
    assert character_tokens(requests) == round(10 / 4) == 2
    assert character_tokens([]) == 0


def local_judge_plan(tmp_path, spec, rows_file, cap: int) -> HealthBenchEval:
    judge = HFLocalBackend(spec, max_input_tokens=cap)
    job = HealthBenchEval(str(tmp_path), judge, mode="ideal", rows=RowOptions(path=str(rows_file)), max_judge_calls=0)
    with pytest.raises(JudgeBudgetError):  # refused after the plan: nothing is generated
        job.run()
    assert judge._model is None  # the tokenizer alone was loaded
    return job


def test_a_local_judge_counts_with_its_tokenizer_and_chat_template(tmp_path, tiny_spec, rows_file):
    job = local_judge_plan(tmp_path / "a", tiny_spec, rows_file, cap=4096)
    tokenizer = load_tokenizer(tiny_spec)
    lengths = []
    for row, data in zip(job.rows, GRADED_ROWS, strict=True):
        conversation = render_conversation(row.messages, data["ideal_completions_data"]["ideal_completion"])
        for criterion in row.rubrics:
            messages = job.grader.request(conversation, criterion).message_dicts
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            lengths.append(len(tokenizer.encode(text, add_special_tokens=False)))
    assert job.plan is not None and job.plan.counted == BY_TOKENIZER
    assert (job.plan.calls, job.plan.prompt_tokens) == (7, sum(lengths)) and min(lengths) > 100
    capped = local_judge_plan(tmp_path / "b", tiny_spec, rows_file, cap=50)
    assert capped.plan is not None and capped.plan.prompt_tokens == 7 * 50  # as the backend truncates them


def test_max_judge_calls_refuses_before_any_call_with_exit_2(tmp_path, capsys):
    rows = write_rows(tmp_path / "rows.jsonl", GRADED_ROWS)
    with ChatServer(RubricJudgeRules()) as server:
        code = healthbench_command(flags(server, tmp_path / "out", f"--rows.path={rows}", "--max_judge_calls=6"))
        assert code == 2 and server.requests == 0
    err = capsys.readouterr().err
    refusals = [line for line in err.splitlines() if line.startswith("error:")]
    assert refusals == [
        "error: max_judge_calls: this run would make 7 judge call(s), over the budget of 6; no call was made "
        "(raise max_judge_calls, or select fewer rows with rows.limit or rows.themes)"
    ]
    assert "judge: 7 call(s) to make" in err and not (tmp_path / "out" / "results.json").exists()


def test_with_a_policy_the_budget_is_checked_before_the_policy_is_asked(tmp_path, judge_server, rows_file):
    policy = backend(judge_server, "rule-policy")
    job = make_eval(tmp_path / "out", judge_server, rows_file, mode="policy", policy=policy, max_judge_calls=6)
    with pytest.raises(JudgeBudgetError) as refused:
        job.run()
    assert judge_server.requests == 0  # neither the policy nor the judge
    assert str(refused.value).startswith(
        "max_judge_calls: this run would make 7 judge call(s) at most, counting every criterion of the 3 row(s) "
        "the policy has yet to answer, over the budget of 6; no call was made"
    )
    assert make_eval(tmp_path / "out", judge_server, rows_file, mode="policy", policy=policy).run().complete


def test_a_negative_budget_is_refused(tmp_path, judge_server, rows_file):
    with pytest.raises(ValueError, match=r"max_judge_calls must be at least 0 \(or null for no limit\), got -1"):
        make_eval(tmp_path, judge_server, rows_file, max_judge_calls=-1)
