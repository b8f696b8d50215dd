"""Tokenizing ranked units: chat-templated prompt + response, anchors, left truncation of prompts."""

from __future__ import annotations

import pytest
from transformers import PreTrainedTokenizerBase

from lit_mrrml.data.encode import EncodedUnit, encode_unit, render_ids
from lit_mrrml.data.units import RankedUnit
from lit_mrrml.models.backbone import BackboneSpec, load_tokenizer

RESPONSES = ("Call emergency services now.", "See a doctor today, it may be serious.", "Rest at home.")


@pytest.fixture
def tokenizer(tiny_spec: BackboneSpec) -> PreTrainedTokenizerBase:
    return load_tokenizer(tiny_spec)


def unit(
    prompt: str = "My father has chest pain spreading to his arm. What should I do?",
    responses: tuple[str, ...] = RESPONSES,
) -> RankedUnit:
    return RankedUnit(
        id="u1",
        prompt=(("system", "You are a careful assistant."), ("user", prompt)),
        dimension="safety",
        scenario="emergency_referrals",
        discipline="cardiology",
        responses=tuple(responses),
    )


def prompt_ids(tokenizer: PreTrainedTokenizerBase, u: RankedUnit) -> list[int]:
    return render_ids(tokenizer, u.messages, generation_prompt=True)


def full_ids(tokenizer: PreTrainedTokenizerBase, u: RankedUnit, response: str) -> list[int]:
    return render_ids(tokenizer, [*u.messages, {"role": "assistant", "content": response}], generation_prompt=False)


def test_each_sequence_is_the_templated_prompt_and_response(tokenizer: PreTrainedTokenizerBase) -> None:
    u = unit()
    encoded = encode_unit(u, tokenizer, max_length=512, dimension=5, scenario=0)
    assert isinstance(encoded, EncodedUnit)
    assert len(encoded.input_ids) == 3
    for seq, response in zip(encoded.input_ids, u.responses, strict=True):
        assert list(seq) == full_ids(tokenizer, u, response)
    assert not encoded.truncated


def test_sequence_decodes_to_the_chat_template_text(tokenizer: PreTrainedTokenizerBase) -> None:
    u = unit()
    encoded = encode_unit(u, tokenizer, max_length=512, dimension=0, scenario=0)
    text = tokenizer.decode(encoded.input_ids[0])
    assert "You are a careful assistant." in text
    assert text.index("chest pain") < text.index("<|im_start|>assistant") < text.index(RESPONSES[0])


def test_anchor_is_the_last_prompt_token(tokenizer: PreTrainedTokenizerBase) -> None:
    u = unit()
    prompt = prompt_ids(tokenizer, u)
    encoded = encode_unit(u, tokenizer, max_length=512, dimension=0, scenario=0)
    assert encoded.anchors == (len(prompt) - 1,) * 3
    for seq, anchor in zip(encoded.input_ids, encoded.anchors, strict=True):
        assert list(seq[: anchor + 1]) == prompt  # the token before the response begins
        assert len(seq) > anchor + 1  # the response follows


def test_dimension_scenario_and_id_are_carried(tokenizer: PreTrainedTokenizerBase) -> None:
    encoded = encode_unit(unit(), tokenizer, max_length=512, dimension=4, scenario=6)
    assert (encoded.id, encoded.dimension, encoded.scenario) == ("u1", 4, 6)


def test_long_prompt_is_cut_from_the_left_keeping_responses_whole(tokenizer: PreTrainedTokenizerBase) -> None:
    u = unit(prompt="background " * 80 + "so is this an emergency?")
    prompt = prompt_ids(tokenizer, u)
    tails = [full_ids(tokenizer, u, r)[len(prompt) :] for r in u.responses]
    max_length = max(len(t) for t in tails) + 10
    assert len(prompt) > 10  # the prompt really has to be cut
    encoded = encode_unit(u, tokenizer, max_length=max_length, dimension=0, scenario=0)
    assert encoded.truncated
    for seq, anchor, tail in zip(encoded.input_ids, encoded.anchors, tails, strict=True):
        assert len(seq) <= max_length
        assert list(seq[anchor + 1 :]) == tail  # the response is whole
        assert list(seq[: anchor + 1]) == prompt[-(anchor + 1) :]  # the prompt's end is kept
    assert encoded.anchors == (9,) * 3  # max_length - longest response = 10 prompt tokens


def test_prompt_cut_is_the_same_for_all_responses(tokenizer: PreTrainedTokenizerBase) -> None:
    u = unit(prompt="history " * 60 + "what now?", responses=("Short.", "A much longer answer " * 5, "Medium answer."))
    encoded = encode_unit(u, tokenizer, max_length=80, dimension=0, scenario=0)
    assert encoded.truncated
    heads = {tuple(seq[: anchor + 1]) for seq, anchor in zip(encoded.input_ids, encoded.anchors, strict=True)}
    assert len(heads) == 1
    assert max(len(seq) for seq in encoded.input_ids) == 80


def test_unit_that_fits_exactly_is_not_truncated(tokenizer: PreTrainedTokenizerBase) -> None:
    u = unit()
    longest = max(len(full_ids(tokenizer, u, r)) for r in u.responses)
    encoded = encode_unit(u, tokenizer, max_length=longest, dimension=0, scenario=0)
    assert not encoded.truncated
    assert list(encoded.input_ids[0]) == full_ids(tokenizer, u, u.responses[0])
    cut = encode_unit(u, tokenizer, max_length=longest - 1, dimension=0, scenario=0)
    assert cut.truncated


def test_response_longer_than_max_length_keeps_one_prompt_token(tokenizer: PreTrainedTokenizerBase) -> None:
    u = unit(responses=("word " * 100, "Short answer."))
    prompt = prompt_ids(tokenizer, u)
    long_tail = full_ids(tokenizer, u, u.responses[0])[len(prompt) :]
    encoded = encode_unit(u, tokenizer, max_length=16, dimension=0, scenario=0)
    assert encoded.truncated
    assert encoded.anchors == (0, 0)
    assert list(encoded.input_ids[0]) == [prompt[-1], *long_tail[:15]]
    assert encoded.input_ids[1][0] == prompt[-1]
    assert all(len(seq) <= 16 for seq in encoded.input_ids)


def test_tokenizer_without_chat_template_raises(tokenizer: PreTrainedTokenizerBase) -> None:
    tokenizer.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        encode_unit(unit(), tokenizer, max_length=512, dimension=0, scenario=0)
