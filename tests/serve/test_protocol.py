"""Request parsing without a server: templated prompt texts, end markers, labels and the row values."""

from __future__ import annotations

import pytest

from lit_mrrml.serve.chat_text import prompt_messages, strip_end_markers, turn_ends
from lit_mrrml.serve.openrlhf import label_fields, parse_openrlhf
from lit_mrrml.serve.protocol import BadRequest, Row, json_type, parse_score_request
from lit_mrrml.serve.verl_api import parse_verl
from tests.serve.fakes import CARD

LLAMA3 = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nChest pain?\nNow.<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)


def test_chatml_and_llama3_prompts_read_back_into_their_messages():
    chatml = (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nChest pain?\nNow.<|im_end|>\n"
        "<|im_start|>assistant\nI see.<|im_end|>\n<|im_start|>user\nAnd?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert prompt_messages(chatml) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Chest pain?\nNow."},
        {"role": "assistant", "content": "I see."},
        {"role": "user", "content": "And?"},
    ]
    assert prompt_messages(LLAMA3) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Chest pain?\nNow."},
    ]
    assert turn_ends(chatml) == ("<|im_end|>",) and turn_ends(LLAMA3) == ("<|eot_id|>",)
    assert prompt_messages("Plain question?") == [{"role": "user", "content": "Plain question?"}]
    assert turn_ends("Plain question?") == ()


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("<|im_start|>user\nHi", "after 0 turn(s), at '<|im_start|>user\\nHi'"),
        ("<|im_start|>user\nHi<|im_end|>\n", "after 1 turn(s), at ''"),  # no generation prompt
        ("<|im_start|>user\nHi<|im_end|>\nstray<|im_start|>assistant\n", "after 1 turn(s), at 'stray<|im_start|>"),
        (LLAMA3.replace("<|eot_id|><|start_header_id|>assistant", "<|start_header_id|>assistant"), "after 1 turn(s)"),
    ],
)
def test_a_templated_prompt_that_does_not_parse_is_refused_saying_where(text, where):
    with pytest.raises(ValueError, match="does not read as its turns followed by the generation prompt") as info:
        prompt_messages(text)
    assert where in str(info.value)


def test_strip_end_markers_cuts_only_closing_markers_and_the_space_around_them():
    markers = ("<|im_end|>", "<|endoftext|>")
    assert strip_end_markers("Call 911.<|im_end|>", markers) == "Call 911."
    assert strip_end_markers("Call 911.<|im_end|>\n<|endoftext|>", markers) == "Call 911."
    assert strip_end_markers("Call 911. <|im_end|>", markers) == "Call 911. "
    assert strip_end_markers("Call 911.\n", markers) == "Call 911.\n"  # no marker: untouched
    assert strip_end_markers("<|im_end|> inside", markers) == "<|im_end|> inside"
    assert strip_end_markers("x<|im_end|>", ()) == "x<|im_end|>"


def test_labels_give_a_scenario_and_maybe_messages():
    assert label_fields(None, "labels[0]", CARD) == (None, None)
    assert label_fields("", "labels[0]", CARD) == (None, None)
    assert label_fields("chronic_care", "labels[0]", CARD) == ("chronic_care", None)
    messages = [{"role": "user", "content": "Q"}]
    assert label_fields({"messages": messages}, "labels[0]", CARD) == (None, messages)
    text = '{"scenario": "emergency_referrals", "messages": [{"role": "user", "content": "Q"}], "answer": 4}'
    assert label_fields(text, "labels[0]", CARD) == ("emergency_referrals", messages)
    with pytest.raises(BadRequest, match=r"^labels\[0\]\.messages\[0\]\.role: missing"):
        label_fields({"messages": [{"content": "Q"}]}, "labels[0]", CARD)
    with pytest.raises(BadRequest, match=r"^labels\[0\]: expected an object, got a number"):
        label_fields(3, "labels[0]", CARD)


def test_every_shape_reads_into_the_same_rows():
    messages = [{"role": "user", "content": "Q?"}]
    expected = [Row(messages, "A.", "chronic_care"), Row(messages, "B", None)]
    own = {"items": [{"messages": messages, "response": "A.", "scenario": "chronic_care"},
                     {"messages": messages, "response": "B"}]}  # fmt: skip
    assert parse_score_request(own, CARD, 10) == expected
    openrlhf = {"query": ["Q?A.", "Q?B"], "prompts": ["Q?", "Q?"], "labels": ["chronic_care", None], "extra": 1}
    assert parse_openrlhf(openrlhf, CARD, 10) == expected
    assert parse_openrlhf({"query": ["Q?A.", "Q?B"], "prompts": ["Q?", "Q?"]}, CARD, 10)[0].scenario is None
    verl = [
        {"solution_str": "A.", "extra_info": {"messages": messages, "scenario": "chronic_care"}},
        {"solution_str": "B", "extra_info": {"messages": messages}, "data_source": "x", "ground_truth": [1]},
    ]
    assert parse_verl({"batch": verl}, CARD, 10) == (expected, True)
    assert parse_verl(verl[1], CARD, 10) == (expected[1:], False)


def test_json_type_names_values_as_json_does():
    names = [json_type(v) for v in (None, True, 1, 1.5, "s", [], {})]
    assert names == ["null", "a boolean", "a number", "a number", "a string", "an array", "an object"]
