"""SFT examples: conversations whose assistant turns are trained on, and their token labels.

Two record kinds, recognised line by line:

- a ranked unit (``responses`` or ``chosen``): its prompt, then its best answer ``responses[0]``
  as the assistant turn; units that share a prompt and a best answer (one prompt ranked on
  several dimensions) give one example;
- a chat ``{"id"?, "messages": [...]}`` (the conversational format of TRL and HF datasets), roles
  system, user and assistant, with at least one assistant turn; every assistant turn is trained on.

Labels are the input ids on each assistant turn's content and its end-of-turn token, -100
elsewhere (Hugging Face's convention: the model shifts them). The spans come from rendering the
conversation's prefixes with the chat template, so any template that renders turn by turn works.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from lit_mrrml.data.encode import render_ids
from lit_mrrml.data.units import ROLES, BadRecordError, OnBadRecord, normalized_prompt, parse_unit, read_records
from lit_mrrml.errors import InputError
from lit_mrrml.matrix import RubricMatrix

IGNORE = -100  # the label of a token that is not trained on
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")  # besides the EOS token


@dataclass(frozen=True)
class ChatExample:
    """A conversation with at least one assistant turn."""

    id: str
    messages: tuple[tuple[str, str], ...]  # (role, content)

    @property
    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


@dataclass(frozen=True)
class EncodedChat:
    """Token ids of a conversation and their labels (-100 outside the assistant turns)."""

    id: str
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    truncated: bool  # the end was cut to max_length


def read_chats(
    paths: list[str] | list[Path], matrix: RubricMatrix | None, on_bad_record: OnBadRecord = "fail"
) -> tuple[list[ChatExample], list[str]]:
    """Read SFT examples from JSONL files of chats and ranked units (checked against ``matrix``).

    Returns (examples, skipped ``file:line: reason``); with on_bad_record "fail" the first bad
    record raises BadRecordError. Ids must be unique; a chat without one gets ``<file stem>:<line>``.
    """
    reader = _ChatReader(matrix)
    return read_records([Path(p) for p in paths], reader.parse, on_bad_record, "SFT")


class _ChatReader:
    def __init__(self, matrix: RubricMatrix | None) -> None:
        self.matrix = matrix
        self.ids: set[str] = set()
        self.answers: set[str] = set()  # (prompt, best answer) of the units read, normalised

    def parse(self, path: Path, number: int, record: Any) -> ChatExample | None:
        if not isinstance(record, Mapping):
            raise BadRecordError(f"an SFT record must be a JSON object, got {type(record).__name__}")
        if "responses" in record or "chosen" in record:
            return self._unit(path, number, record)
        if "messages" not in record:
            raise BadRecordError("not an SFT record: expected 'messages' (a chat) or 'responses' (a ranked unit)")
        given = record.get("id")
        if given is not None and (not isinstance(given, str) or not given.strip()):
            raise BadRecordError("'id' must be a non-empty string")
        return self._new(ChatExample(given or f"{path.stem}:{number}", parse_chat(record["messages"])))

    def _unit(self, path: Path, number: int, record: Mapping[str, Any]) -> ChatExample | None:
        if self.matrix is None:
            raise InputError(f"{path}:{number}: a ranked unit is checked against the rubric matrix: set data.matrix")
        unit = parse_unit(record, self.matrix)
        key = repr(normalized_prompt((*unit.prompt, ("assistant", unit.responses[0]))))
        example = self._new(ChatExample(unit.id, (*unit.prompt, ("assistant", unit.responses[0]))))
        if key in self.answers:
            return None
        self.answers.add(key)
        return example

    def _new(self, example: ChatExample) -> ChatExample:
        if example.id in self.ids:
            raise BadRecordError(f"duplicate example id '{example.id}'")
        self.ids.add(example.id)
        return example


def parse_chat(messages: Any) -> tuple[tuple[str, str], ...]:
    """(role, content) of a chat's messages; raises BadRecordError with the reason."""
    if not isinstance(messages, list) or not messages:
        raise BadRecordError("'messages' must be a non-empty list of messages")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in ROLES:
            raise BadRecordError(f"messages[{i}] must be an object with a role in {ROLES}")
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            raise BadRecordError(f"messages[{i}].content is empty or not a string")
        out.append((str(message["role"]), content))
    if not any(role == "assistant" for role, _ in out):
        raise BadRecordError("no assistant turn to train on")
    return tuple(out)


def end_of_turn_ids(tokenizer: PreTrainedTokenizerBase) -> frozenset[int]:
    """The ids that close an assistant turn: EOS and the usual end-of-turn tokens in the vocabulary."""
    vocab = tokenizer.get_vocab()
    ids = {vocab[token] for token in END_OF_TURN if token in vocab}
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return frozenset(ids)


def encode_chat(
    example: ChatExample, tokenizer: PreTrainedTokenizerBase, max_length: int, end_ids: frozenset[int]
) -> EncodedChat:
    """Tokenize a conversation (no generation prompt) and label its assistant turns; keep the first
    ``max_length`` tokens."""
    messages = example.message_dicts
    full = render_ids(tokenizer, messages, generation_prompt=False)
    labels = [IGNORE] * len(full)
    for i, (role, _) in enumerate(example.messages):
        if role == "assistant":
            start = _prefix_length(tokenizer, full, messages[:i], True, example.id)
            end = _prefix_length(tokenizer, full, messages[: i + 1], False, example.id)
            closing = [j for j in range(start, end) if full[j] in end_ids]
            end = closing[-1] + 1 if closing else end  # the turn's end token, not the newline after it
            labels[start:end] = full[start:end]
    return EncodedChat(example.id, tuple(full[:max_length]), tuple(labels[:max_length]), len(full) > max_length)


def _prefix_length(
    tokenizer: PreTrainedTokenizerBase, full: list[int], messages: list[dict[str, str]], open_turn: bool, where: str
) -> int:
    """Tokens of the rendering of ``messages`` (with an open assistant turn), which must start ``full``."""
    prefix = render_ids(tokenizer, messages, generation_prompt=open_turn)
    if full[: len(prefix)] != prefix:
        raise InputError(
            f"the chat template of tokenizer {tokenizer.name_or_path!r} does not render the start of a conversation "
            f"as the start of the whole (example '{where}', {len(messages)} message(s)): the assistant tokens to "
            "train on cannot be found; use a tokenizer whose template renders each turn the same way wherever it is"
        )
    return len(prefix)
