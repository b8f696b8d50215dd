"""Completion masks and stop tokens of rollouts (design/policy.md, step 1).

A completion keeps its tokens up to and including the first token in the stop set; everything
after is masked. The mask is built from positions (how many stop tokens came strictly before
each token), never from the pad id: pad may equal EOS, and the EOS itself must stay in the loss
so that the policy learns to stop. A row with no stop token is *truncated* (all tokens kept).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor
from transformers import GenerationConfig, PreTrainedTokenizerBase

IM_END = "<|im_end|>"


def completion_mask(completion_ids: Tensor, eos_ids: Sequence[int]) -> tuple[Tensor, Tensor]:
    """(N, T) ids -> (mask (N, T) bool, True up to and with the first EOS; truncated (N,) bool, no EOS)."""
    if completion_ids.dim() != 2:
        raise ValueError(f"completion_mask: completion_ids must be (N, T), got {tuple(completion_ids.shape)}")
    if len(eos_ids) == 0:
        raise ValueError("completion_mask: eos_ids is empty; pass stop_token_ids(tokenizer)")
    stops = torch.as_tensor(list(eos_ids), dtype=completion_ids.dtype, device=completion_ids.device)
    is_eos = torch.isin(completion_ids, stops).long()  # (N, T)
    eos_before = is_eos.cumsum(-1) - is_eos  # (N, T): stop tokens strictly before each token
    return eos_before == 0, is_eos.sum(-1) == 0


def _as_ids(value: int | Iterable[int] | None) -> set[int]:
    """An EOS setting (None, one id or a list of ids) as a set of ids."""
    if value is None:
        return set()
    if isinstance(value, Iterable):
        return {int(v) for v in value}
    return {int(value)}


def stop_token_ids(tokenizer: PreTrainedTokenizerBase, generation_config: GenerationConfig | None = None) -> list[int]:
    """Sorted union of the tokenizer's EOS id, the generation config's EOS ids and ChatML's ``<|im_end|>``."""
    ids = _as_ids(tokenizer.eos_token_id)
    if generation_config is not None:
        ids |= _as_ids(generation_config.eos_token_id)
    im_end: Any = tokenizer.convert_tokens_to_ids(IM_END)
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        ids.add(im_end)
    if not ids:
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        raise ValueError(
            f"tokenizer {name!r} has no EOS token, no {IM_END} and no generation-config EOS: "
            "set tokenizer.eos_token or pass a generation config with eos_token_id"
        )
    return sorted(ids)
