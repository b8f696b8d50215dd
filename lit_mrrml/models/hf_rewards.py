"""Exact rewards from an exported sequence classifier (lit_mrrml.models.hf_export), with transformers.

r = s(x, y) - s(x) + b on every dimension: s(x, y) is the classifier's score of [prompt; answer]
(the prompt messages and the answer as the assistant's turn, through the chat template), s(x) its
score of the prompt's own tokens, b the biases in ``config.json`` (``lit_mrrml.bias``). The token
ids are exactly those RewardModel.score feeds its backbone (lit_mrrml.data.encode.encode_unit, a
unit of one response):

- the prompt is rendered with ``add_generation_prompt=True``, prompt + answer without it, both
  tokenized with no special tokens added (the template writes them);
- the prompt's tokens are the ones both renderings share (at least one): the anchor is the last;
- past ``max_length`` tokens the prompt is cut from the left; an answer longer than
  ``max_length - 1`` tokens keeps one prompt token and the answer's first tokens.

Rows are right-padded with the config's pad id, which the export chose so that the classifier's
"last non-pad token" pooling lands on the last real token. Imports torch and transformers, not Lightning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import Tensor
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase

from lit_mrrml.data.encode import encode_unit
from lit_mrrml.data.units import RankedUnit
from lit_mrrml.errors import InputError

Messages = Sequence[Mapping[str, str]]


def row_sequences(
    tokenizer: PreTrainedTokenizerBase, messages: Messages, response: str, max_length: int
) -> tuple[list[int], int]:
    """([prompt; answer] ids, n): the prompt alone is the first n ids (its last one is the anchor)."""
    prompt = tuple((m["role"], m["content"]) for m in messages)
    encoded = encode_unit(RankedUnit("row", prompt, "", "", "", (response,)), tokenizer, max_length, 0, 0)
    return list(encoded.input_ids[0]), encoded.anchors[0] + 1


def padded(sequences: list[list[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """(B, T) right-padded input ids and their (B, T) attention mask."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


def check_rows(prompts: Sequence[Messages], responses: Sequence[str]) -> None:
    """One response per prompt; every prompt a non-empty list of role/content messages ending with the
    user's turn."""
    if len(prompts) != len(responses):
        raise InputError(f"exact_rewards: {len(prompts)} prompts and {len(responses)} responses: give one of each")
    for i, (messages, response) in enumerate(zip(prompts, responses, strict=True)):
        fields_ok = all(isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages)
        if not messages or not fields_ok or messages[-1]["role"] != "user":
            raise InputError(f"exact_rewards: row {i}: the prompt must be chat messages ending with the user's turn")
        if not isinstance(response, str):
            raise InputError(f"exact_rewards: row {i}: the response must be text, got {type(response).__name__}")


def load_classifier(directory: str | Path) -> tuple[Any, PreTrainedTokenizerBase]:
    """The exported classifier (eval mode) and its tokenizer, through ``AutoTokenizer`` or the class
    the export recorded (``lit_mrrml.tokenizer_class``) where AutoTokenizer would tokenize otherwise;
    a folder without ``lit_mrrml`` in its config is refused."""
    model: Any = AutoModelForSequenceClassification.from_pretrained(directory).eval()
    info = getattr(model.config, "lit_mrrml", None)
    if not isinstance(info, dict):
        raise InputError(f"{Path(directory) / 'config.json'}: no 'lit_mrrml' entry: not a lit_mrrml reward export")
    name = info.get("tokenizer_class")
    loader: Any = getattr(transformers, str(name), None) if name else AutoTokenizer
    if name and not (isinstance(loader, type) and issubclass(loader, PreTrainedTokenizerBase)):
        raise InputError(f"{Path(directory) / 'config.json'}: lit_mrrml.tokenizer_class {name!r} is not a tokenizer")
    return model, loader.from_pretrained(directory)


def rewards_with(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Messages],
    responses: Sequence[str],
    batch_size: int = 16,
    max_length: int = 1024,
) -> Tensor:
    """(N, L) float32 CPU rewards of N (prompt, response) rows from a loaded classifier."""
    check_rows(prompts, responses)
    if batch_size < 1:
        raise InputError(f"exact_rewards: batch_size must be at least 1, got {batch_size}")
    bias = torch.tensor(model.config.lit_mrrml["bias"], dtype=torch.float32)  # (L,)
    device = next(model.parameters()).device
    chunks = [torch.zeros(0, bias.shape[0])]
    for start in range(0, len(prompts), batch_size):
        sequences: list[list[int]] = []
        rows = zip(prompts[start : start + batch_size], responses[start : start + batch_size], strict=True)
        for messages, response in rows:
            full, n = row_sequences(tokenizer, messages, response, max_length)
            sequences += [full, full[:n]]  # [prompt; answer], then the prompt alone
        ids, mask = padded(sequences, int(model.config.pad_token_id))
        with torch.inference_mode():
            scores = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float().cpu()  # (2B, L)
        chunks.append(scores[0::2] - scores[1::2] + bias)
    return torch.cat(chunks).clone()


def exact_rewards(
    model_dir: str | Path,
    prompts: Sequence[Messages],
    responses: Sequence[str],
    batch_size: int = 16,
    max_length: int = 1024,
) -> Tensor:
    """(N, L) the rewards RewardModel.score gives these rows (``max_length`` as there), from the
    exported folder ``model_dir``; columns in ``config.id2label`` order."""
    model, tokenizer = load_classifier(model_dir)
    return rewards_with(model, tokenizer, prompts, responses, batch_size, max_length)
