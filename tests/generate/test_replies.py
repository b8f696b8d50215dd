"""Reply parsers: prompts (one message or a conversation), answers, rankings."""

from __future__ import annotations

import pytest

from lit_mrrml.backends import ReplyFormatError
from lit_mrrml.generate.replies import parse_answer, parse_prompt, ranking_parser


def test_a_single_message_is_cleaned():
    assert parse_prompt('"My son has had a fever for three days."', False) == [
        {"role": "user", "content": "My son has had a fever for three days."}
    ]
    assert (
        parse_prompt("USER: My son has had a fever for days.", False)[0]["content"]
        == "My son has had a fever for days."
    )


def test_a_conversation_must_alternate_and_end_with_the_user():
    text = "USER: I have a rash on my arm.\nASSISTANT: Is it itchy?\n**User**: Yes, and it is spreading fast now."
    assert [m["role"] for m in parse_prompt(text, True)] == ["user", "assistant", "user"]
    with pytest.raises(ReplyFormatError, match="end with a USER turn"):
        parse_prompt("USER: a b c d\nASSISTANT: x\nUSER: y z w v\nASSISTANT: no", True)
    with pytest.raises(ReplyFormatError, match="at least 3 turns"):
        parse_prompt("I have a rash on my arm, what now?", True)
    with pytest.raises(ReplyFormatError, match="turns must alternate"):
        parse_prompt("USER: a b c d\nUSER: e f g h\nUSER: i j k l", True)


def test_a_single_message_that_answers_itself_is_refused():
    with pytest.raises(ReplyFormatError, match="assistant turn"):
        parse_prompt("USER: what is a fever?\nASSISTANT: a high temperature", False)
    with pytest.raises(ReplyFormatError, match="too short"):
        parse_prompt("Help", False)


def test_answers_lose_fences_labels_and_quotes():
    assert parse_answer("```\nAnswer: Call an ambulance now.\n```") == "Call an ambulance now."
    with pytest.raises(ReplyFormatError, match="too short"):
        parse_answer("   ")


def test_rankings_accept_label_variants_and_refuse_incomplete_ones():
    parse = ranking_parser(["A", "B", "C"])
    assert parse('{"ranking": ["Answer C", "(a)", "B"], "explanation": "x"}') == ["C", "A", "B"]
    with pytest.raises(ReplyFormatError, match="each of"):
        parse('{"ranking": ["A", "A", "B"]}')
    with pytest.raises(ReplyFormatError, match="'ranking'"):
        parse('{"order": ["A", "B", "C"]}')
