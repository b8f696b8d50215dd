"""SFT data: assistant-only labels, chats and ranked units, bad records, truncation, batches."""

from __future__ import annotations

import itertools
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from lit_mrrml.data.chat import IGNORE, ChatExample, encode_chat, end_of_turn_ids, read_chats
from lit_mrrml.data.encode import render_ids
from lit_mrrml.data.sft import SFTDataModule
from lit_mrrml.data.units import BadRecordError
from lit_mrrml.errors import InputError
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.models.backbone import BackboneSpec, load_tokenizer
from tests.conftest import MATRIX_PATH, make_unit, write_jsonl


def chat(*turns: tuple[str, str], **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": role, "content": content} for role, content in turns], **extra}


def labelled_spans(tokenizer: Any, input_ids: list[int], labels: list[int]) -> list[str]:
    """The decoded text of each run of labelled tokens (labels must equal the input ids there)."""
    assert all(label in (IGNORE, token) for token, label in zip(input_ids, labels, strict=True))
    runs = itertools.groupby(zip(input_ids, labels, strict=True), key=lambda pair: pair[1] != IGNORE)
    return [tokenizer.decode([token for token, _ in run]) for trained, run in runs if trained]


def encode(spec: BackboneSpec, messages: tuple[tuple[str, str], ...], max_length: int = 1024) -> Any:
    tokenizer = load_tokenizer(spec)
    return tokenizer, encode_chat(ChatExample("x", messages), tokenizer, max_length, end_of_turn_ids(tokenizer))


def test_labels_are_the_assistant_content_and_its_end_token(tiny_spec: BackboneSpec) -> None:
    tokenizer, encoded = encode(
        tiny_spec, (("system", "Be brief."), ("user", "My chest hurts."), ("assistant", "Call 911 now."))
    )
    assert labelled_spans(tokenizer, list(encoded.input_ids), list(encoded.labels)) == ["Call 911 now.<|im_end|>"]
    assert tokenizer.decode(list(encoded.input_ids)).endswith("<|im_start|>assistant\nCall 911 now.<|im_end|>\n")
    assert not encoded.truncated


def test_every_assistant_turn_of_a_multi_turn_chat_is_labelled_and_no_user_turn(tiny_spec: BackboneSpec) -> None:
    turns = (
        ("user", "My chest hurts."),
        ("assistant", "Call 911 now."),
        ("user", "They are on their way."),
        ("assistant", "Unlock the door and sit down."),
    )
    tokenizer, encoded = encode(tiny_spec, turns)
    spans = labelled_spans(tokenizer, list(encoded.input_ids), list(encoded.labels))
    assert spans == ["Call 911 now.<|im_end|>", "Unlock the door and sit down.<|im_end|>"]
    assert not any("way" in span or "user" in span for span in spans)


def test_a_template_that_does_not_render_prefixes_as_prefixes_is_refused(tiny_spec: BackboneSpec) -> None:
    tokenizer = load_tokenizer(tiny_spec)
    tokenizer.chat_template = "{{ messages | length }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    example = ChatExample("odd", (("user", "Hi."), ("assistant", "Hello.")))
    with pytest.raises(InputError, match=r"chat template of tokenizer '.*tiny' does not render .* \(example 'odd'"):
        encode_chat(example, tokenizer, 64, end_of_turn_ids(tokenizer))


def test_ranked_units_give_their_best_answer_once_per_prompt_and_answer(tmp_path: Path, matrix: RubricMatrix) -> None:
    same = make_unit(1, prompt="Same prompt?")
    units = [
        same,
        make_unit(2, prompt="Same prompt?", dimension="accuracy") | {"responses": same["responses"]},  # same best
        make_unit(3, prompt="Same prompt?", dimension="completeness"),  # same prompt, another best answer
        make_unit(4, prompt="Other prompt?"),
    ]
    examples, _ = read_chats([write_jsonl(tmp_path / "units.jsonl", units)], matrix)
    assert [e.id for e in examples] == ["u1", "u3", "u4"]
    assert examples[0].messages == (("user", "Same prompt?"), ("assistant", same["responses"][0]))
    assert examples[1].messages[-1] == ("assistant", units[2]["responses"][0])


BAD_RECORDS = {
    "bad_json": ('{"messages": [', "invalid JSON: Expecting value"),
    "not_an_object": ("3", "an SFT record must be a JSON object, got int"),
    "neither_kind": ({"prompt": "Hi?"}, "not an SFT record: expected 'messages' (a chat) or 'responses'"),
    "no_assistant_turn": (chat(("user", "Hi?")), "no assistant turn to train on"),
    "bad_role": (chat(("doctor", "Hi?"), ("assistant", "Hello.")), "messages[0] must be an object with a role in"),
    "empty_content": (chat(("user", "Hi?"), ("assistant", " ")), "messages[1].content is empty or not a string"),
    "duplicate_id": (chat(("user", "Again?"), ("assistant", "Yes."), id="c1"), "duplicate example id 'c1'"),
    "bad_unit": (make_unit(9) | {"scenario": "hedgin"}, "unknown scenario 'hedgin'; did you mean 'hedging'?"),
}


def sft_file(tmp_path: Path, middle: Any) -> Path:
    first = chat(("user", "Hi?"), ("assistant", "Hello."), id="c1")
    return write_jsonl(tmp_path / "sft.jsonl", [first, middle, chat(("user", "Bye?"), ("assistant", "Bye."))])


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_a_bad_record_fails_with_file_and_line(tmp_path: Path, matrix: RubricMatrix, case: str) -> None:
    record, reason = BAD_RECORDS[case]
    path = sft_file(tmp_path, record)
    with pytest.raises(BadRecordError, match=re.escape(f"{path}:2: {reason}")):
        read_chats([path], matrix)


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_a_bad_record_is_skipped_and_listed(tmp_path: Path, matrix: RubricMatrix, case: str) -> None:
    record, reason = BAD_RECORDS[case]
    path = sft_file(tmp_path, record)
    examples, skipped = read_chats([path], matrix, on_bad_record="skip")
    assert [e.id for e in examples] == ["c1", "sft:3"]
    assert len(skipped) == 1 and skipped[0].startswith(f"{path}:2: {reason}")


def test_a_ranked_unit_without_a_matrix_and_a_missing_file_are_refused(tmp_path: Path) -> None:
    path = sft_file(tmp_path, make_unit(1))
    with pytest.raises(InputError, match=re.escape(f"{path}:2: a ranked unit is checked against the rubric matrix")):
        read_chats([path], None, on_bad_record="skip")  # a setting to fix, not a record to skip
    with pytest.raises(FileNotFoundError, match="SFT file not found"):
        read_chats([tmp_path / "none.jsonl"], None)


def datamodule(spec: BackboneSpec, train: list[Any], **kwargs: Any) -> SFTDataModule:
    path = write_jsonl(Path(kwargs.pop("tmp")) / "train.jsonl", train)
    return SFTDataModule(train_files=[str(path)], backbone=spec, **kwargs)


def test_batches_are_right_padded_with_labels_masked_on_padding(tmp_path: Path, tiny_spec: BackboneSpec) -> None:
    train = [
        chat(("user", "Hi?"), ("assistant", "Hello.")),
        chat(("user", "A longer question here?"), ("assistant", "A longer answer, too.")),
    ]
    dm = datamodule(tiny_spec, train, tmp=tmp_path, batch_size=2, shuffle=False)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].shape == batch["attention_mask"].shape == batch["labels"].shape
    assert batch["input_ids"].shape[0] == 2 and batch["input_ids"].shape[1] % 8 == 0
    tokenizer = load_tokenizer(tiny_spec)
    for row, n in enumerate(batch["attention_mask"].sum(1).tolist()):
        assert batch["attention_mask"][row, :n].all() and not batch["attention_mask"][row, n:].any()  # right padding
        assert (batch["input_ids"][row, n:] == tokenizer.pad_token_id).all()
        assert (batch["labels"][row, n:] == IGNORE).all()
    spans = [labelled_spans(tokenizer, batch["input_ids"][r].tolist(), batch["labels"][r].tolist()) for r in (0, 1)]
    assert spans == [["Hello.<|im_end|>"], ["A longer answer, too.<|im_end|>"]]
    assert dm.matrix is None and dm.dimension_names is None and dm.num_dimensions is None


def test_long_conversations_lose_their_end_and_those_without_assistant_tokens_are_dropped(
    tmp_path: Path, tiny_spec: BackboneSpec, caplog: pytest.LogCaptureFixture
) -> None:
    tokenizer = load_tokenizer(tiny_spec)
    short = chat(("user", "Hi?"), ("assistant", "Hello there, how are you feeling today?"))
    prompt_tokens = len(render_ids(tokenizer, short["messages"][:1], generation_prompt=True))
    long_user = chat(("user", "word " * 200), ("assistant", "Too late."))
    dm = datamodule(tiny_spec, [short, long_user], tmp=tmp_path, max_length=prompt_tokens + 3)
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    (kept,) = dm.datasets["train"]
    assert len(kept.input_ids) == prompt_tokens + 3 and kept.truncated
    assert sum(label != IGNORE for label in kept.labels) == 3  # the start of the answer is kept
    assert f"train: 2 of 2 conversations lost their end to max_length={prompt_tokens + 3}" in caplog.text
    assert "train: dropped 1 conversation(s) left without an assistant token" in caplog.text


def test_ranked_unit_files_through_the_module(tmp_path: Path, tiny_spec: BackboneSpec) -> None:
    units = write_jsonl(tmp_path / "units.jsonl", [make_unit(1), make_unit(2, dimension="accuracy")])
    dm = SFTDataModule(str(MATRIX_PATH), [str(units)], backbone=tiny_spec, batch_size=1)
    dm.setup("fit")
    assert dm.matrix is not None and dm.dimension_names == list(dm.matrix.dimension_ids) and dm.num_dimensions == 6
    assert [e.id for e in dm.datasets["train"]] == ["u1", "u2"]
    assert dm.val_dataloader() == []  # no val_files: no validation
    assert isinstance(next(iter(dm.train_dataloader()))["labels"], torch.Tensor)
