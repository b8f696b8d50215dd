"""Completion masks and stop tokens (lit_mrrml/policy/masks.py): check 2 of design/policy.md."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer, GenerationConfig

from lit_mrrml.policy.masks import completion_mask, stop_token_ids
from tests.conftest import TINY_TOKENIZER


def mask_of(rows: list[list[int]], eos_ids: list[int]) -> tuple[list[list[int]], list[bool]]:
    mask, truncated = completion_mask(torch.tensor(rows), eos_ids)
    assert mask.dtype == torch.bool and truncated.dtype == torch.bool
    return mask.long().tolist(), truncated.tolist()


def test_mask_keeps_the_first_eos_and_drops_what_follows() -> None:
    # EOS = 2 at index 2: keep [7, 8, 2], drop the later tokens, including a second EOS.
    assert mask_of([[7, 8, 2, 5, 2, 6]], [2]) == ([[1, 1, 1, 0, 0, 0]], [False])


def test_pad_equal_to_eos_does_not_mask_the_eos() -> None:
    # eos = pad = 9: the first 9 is the EOS and stays; the padding 9s after it go.
    assert mask_of([[5, 9, 9, 9]], [9]) == ([[1, 1, 0, 0]], [False])


def test_several_eos_ids_the_first_of_either_wins() -> None:
    # stop set {2, 4}: row 0 stops at 4 (index 1), row 1 at 2 (index 2), row 2 at 4 (index 0).
    rows = [[3, 4, 2, 5], [3, 5, 2, 4], [4, 2, 2, 2]]
    expected = [[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]]
    assert mask_of(rows, [2, 4]) == (expected, [False, False, False])


def test_a_row_without_eos_is_truncated() -> None:
    # Row 1 never stops: all its tokens are kept and it is flagged; row 0 stops at the last token.
    assert mask_of([[3, 5, 6, 2], [3, 5, 6, 7]], [2]) == ([[1, 1, 1, 1], [1, 1, 1, 1]], [False, True])


def test_eos_as_the_first_token() -> None:
    assert mask_of([[2, 0, 0, 0, 0]], [2]) == ([[1, 0, 0, 0, 0]], [False])


def test_empty_stop_set_is_refused() -> None:
    with pytest.raises(ValueError, match="eos_ids is empty"):
        completion_mask(torch.tensor([[1, 2]]), [])


def test_stop_token_ids_of_the_tiny_tokenizer() -> None:
    # The shipped tiny tokenizer: eos = <|im_end|> = 2, so the union is just {2}.
    tokenizer = AutoTokenizer.from_pretrained(TINY_TOKENIZER)
    assert tokenizer.eos_token == "<|im_end|>"
    assert stop_token_ids(tokenizer) == [2]


def test_stop_token_ids_add_the_generation_config_ids() -> None:
    # Generation config eos 0 (<|endoftext|>) or [0, 2]: the union {0, 2}, sorted, no duplicate.
    tokenizer = AutoTokenizer.from_pretrained(TINY_TOKENIZER)
    assert stop_token_ids(tokenizer, GenerationConfig(eos_token_id=0)) == [0, 2]
    assert stop_token_ids(tokenizer, GenerationConfig(eos_token_id=[2, 0])) == [0, 2]
    assert stop_token_ids(tokenizer, GenerationConfig()) == [2]


def test_stop_token_ids_add_im_end_beside_another_eos() -> None:
    # An EOS other than <|im_end|> (here <|endoftext|> = 0): <|im_end|> = 2 joins it.
    tokenizer = AutoTokenizer.from_pretrained(TINY_TOKENIZER)
    tokenizer.eos_token = "<|endoftext|>"
    assert stop_token_ids(tokenizer) == [0, 2]


def test_no_stop_token_at_all_is_refused() -> None:
    class Bare:  # a tokenizer with no EOS whose vocabulary lacks <|im_end|>
        name_or_path = "bare-tokenizer"
        eos_token_id = None
        unk_token_id = 1

        def convert_tokens_to_ids(self, token: str) -> int:
            return 1

    with pytest.raises(ValueError, match="bare-tokenizer"):
        stop_token_ids(Bare())  # type: ignore[arg-type]
