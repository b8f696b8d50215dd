"""The rule-based judge: verdicts from the grader's own prompt, and naive policy answers."""

from __future__ import annotations

from lit_mrrml.backends.structured import extract_json_object
from lit_mrrml.healthbench.grader import Grader, render_conversation
from lit_mrrml.healthbench.rows import Criterion
from lit_mrrml.testing.judge_rules import RubricJudgeRules, rule_met


def verdict(rules: RubricJudgeRules, answer: str, criterion: Criterion) -> bool:
    conversation = render_conversation([{"role": "user", "content": "Should I worry about headaches?"}], answer)
    request = Grader().request(conversation, criterion)
    reply = rules(request.message_dicts, {})
    assert reply.startswith("```json\n")
    return extract_json_object(reply)["criteria_met"]


def test_an_item_is_met_when_enough_of_its_words_are_in_the_last_answer():
    rules = RubricJudgeRules()
    answer = "Sudden severe headaches need emergency evaluation."
    assert verdict(rules, answer, Criterion("Advises emergency evaluation for sudden severe headaches", 8))
    assert not verdict(rules, answer, Criterion("Recommends ibuprofen dosing schedule", 4))
    assert verdict(rules, answer, Criterion("Mentions severe headaches needing evaluation", -5))  # 3 of 5 words
    assert not rule_met("a an the", "anything")  # no content words: never met


def test_only_the_answer_counts_not_the_question():
    assert not verdict(RubricJudgeRules(), "Rest.", Criterion("Asks whether headaches worry", 3))


def test_other_requests_get_a_naive_answer():
    reply = RubricJudgeRules()([{"role": "user", "content": "My knee swelling got worse"}], {})
    assert "swelling" in reply and "doctor" in reply
