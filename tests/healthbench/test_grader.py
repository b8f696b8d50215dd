"""The grader's requests and the parsing of verdicts."""

from __future__ import annotations

import pytest

from lit_mrrml.backends.base import ReplyFormatError
from lit_mrrml.healthbench.grader import (
    Grader,
    Verdict,
    conversation_hash,
    parse_verdict,
    render_conversation,
)
from lit_mrrml.healthbench.grader_text import OWN_TEMPLATE
from lit_mrrml.healthbench.options import GraderOptions
from lit_mrrml.healthbench.rows import Criterion
from lit_mrrml.textio import NotUTF8Error


def test_the_conversation_reads_as_role_content_turns_with_the_answer_last():
    messages = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi?"}]
    assert render_conversation(messages, "Hello.") == "system: Be kind.\n\nuser: Hi?\n\nassistant: Hello."
    assert conversation_hash(messages, "Hello.") != conversation_hash(messages, "Hello!")


def test_a_request_holds_the_conversation_the_item_and_the_reference_settings():
    request = Grader().request("user: Hi?\n\nassistant: Hello.", Criterion("Greets the user", -3))
    (system, user) = request.message_dicts
    assert system == {"role": "system", "content": "You are a helpful assistant."}
    assert (
        "# Conversation\nuser: Hi?\n\nassistant: Hello.\n\n# Rubric item\n[-3] Greets the user\n\n#" in user["content"]
    )
    assert '"criteria_met"' in user["content"] and "negative points" in user["content"]
    assert (request.max_tokens, request.temperature, request.json_mode) == (2048, 0.5, False)
    assert request.parse is parse_verdict
    assert str(Criterion("Half-met", 2.5)) == "[2.5] Half-met"


def test_settings_change_the_fingerprint_and_a_custom_template_needs_both_placeholders(tmp_path):
    assert Grader().fingerprint == Grader(GraderOptions()).fingerprint
    assert Grader(GraderOptions(temperature=0.0)).fingerprint != Grader().fingerprint
    custom = tmp_path / "t.txt"
    custom.write_text("Convo: <<conversation>> Item: <<rubric_item>> JSON please.")
    grader = Grader(GraderOptions(template=str(custom), system_prompt=None))
    (only,) = grader.request("user: a", Criterion("b", 1)).message_dicts
    assert only["content"] == "Convo: user: a Item: [1] b JSON please."
    assert grader.fingerprint != Grader().fingerprint
    assert grader.describe()["text"]["sha256"] != Grader().describe()["text"]["sha256"]
    assert grader.describe()["text"]["used"] == "file" and grader.text.caveat == "grader text from t.txt"
    (tmp_path / "bad.txt").write_text("no placeholders")
    with pytest.raises(ValueError, match="lacks the placeholder"):
        Grader(GraderOptions(template=str(tmp_path / "bad.txt")))
    assert OWN_TEMPLATE.count("<<conversation>>") == OWN_TEMPLATE.count("<<rubric_item>>") == 1


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ('```json\n{"explanation": "yes", "criteria_met": true}\n```', Verdict(True, "yes")),
        ('Sure: {"criteria_met": false, "explanation": "no"} hope this helps', Verdict(False, "no")),
        ('{"criteria_met": false}', Verdict(False, None)),
    ],
)
def test_verdicts_parse_from_fenced_or_wrapped_json(text, verdict):
    assert parse_verdict(text) == verdict


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("I think it is met.", "no JSON object"),
        ('{"explanation": "x"}', "no 'criteria_met' field"),
        ('{"criteria_met": "true"}', "must be bool"),
        ('{"criteria_met": 1}', "must be bool"),
        ('{"criteria_met": true, "explanation": 3}', "'explanation' must be a string"),
    ],
)
def test_a_reply_without_a_boolean_verdict_is_refused(text, reason):
    with pytest.raises(ReplyFormatError, match=reason):
        parse_verdict(text)


def test_a_grader_template_that_is_not_utf8_names_the_offset(tmp_path):
    path = tmp_path / "grader.txt"
    path.write_bytes("Conversation: <<conversation>>\nItem: <<rubric_item>>\nRéponds en JSON.".encode("latin-1"))
    with pytest.raises(NotUTF8Error) as info:
        Grader(GraderOptions(template=str(path)))
    offset = path.read_bytes().index(b"\xe9")
    assert str(info.value) == (
        f"{path}: not UTF-8 text: byte 0xe9 at byte offset {offset} cannot be decoded (save the file as UTF-8)"
    )
