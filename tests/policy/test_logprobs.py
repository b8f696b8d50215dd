"""Completion log-probabilities (lit_mrrml/policy/logprobs.py): check 1 of design/policy.md.

Completion token t is scored by the logits at the position before it. The reference is naive: one
unpadded row at a time, a full-sequence log_softmax, token j gathered at position j - 1.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch.testing import assert_close
from transformers import AutoConfig, AutoModelForCausalLM

from lit_mrrml.models.tiny import TINY_QWEN2
from lit_mrrml.policy.logprobs import (
    completion_entropy,
    completion_logprobs,
    position_ids_from_mask,
    sequence_logprobs,
)

PROMPTS = [[5, 17, 42, 99, 3], [7, 8], [300, 301, 302]]  # real prompt tokens, unpadded
COMPLETIONS = [[11, 12, 13, 14], [21, 22, 2, 0], [31, 2, 0, 0]]  # rows 1 and 2 end at EOS = 2
KEPT = [4, 3, 2]  # completion tokens up to and with EOS


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    lm = AutoModelForCausalLM.from_config(AutoConfig.for_model(**TINY_QWEN2))
    return lm.eval()


def left_pad(prompts: list[list[int]], extra: int = 0, pad_id: int = 0) -> tuple[Tensor, Tensor]:
    """(N, P) ids and mask, P = longest prompt + extra: each prompt after P - its length pad tokens."""
    width = max(len(p) for p in prompts) + extra
    ids = [[pad_id] * (width - len(p)) + p for p in prompts]
    mask = [[0] * (width - len(p)) + [1] * len(p) for p in prompts]
    return torch.tensor(ids), torch.tensor(mask)


def completion_batch(completions: list[list[int]], kept: list[int]) -> tuple[Tensor, Tensor]:
    ids = torch.tensor(completions)
    return ids, (torch.arange(ids.shape[1])[None, :] < torch.tensor(kept)[:, None]).long()


@torch.no_grad()
def naive(model: nn.Module, prompt: list[int], completion: list[int], temperature: float = 1.0) -> Tensor:
    """(len(completion),) log p of each completion token from one unpadded full-sequence forward."""
    ids = torch.tensor([prompt + completion])
    logp = torch.log_softmax(model(input_ids=ids).logits[0].float() / temperature, dim=-1)  # (S, V)
    start = len(prompt)
    return torch.stack([logp[j - 1, ids[0, j]] for j in range(start, ids.shape[1])])


@torch.no_grad()
def naive_entropy(model: nn.Module, prompt: list[int], completion: list[int], temperature: float) -> Tensor:
    ids = torch.tensor([prompt + completion])
    p = torch.softmax(model(input_ids=ids).logits[0].float() / temperature, dim=-1)  # (S, V)
    return -(p * p.log()).sum(-1)[len(prompt) - 1 : -1]


def test_position_ids_ignore_left_padding() -> None:
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0]])
    expected = torch.tensor([[0, 0, 0, 1, 2], [0, 1, 2, 3, 4], [0, 0, 1, 2, 2]])
    assert torch.equal(position_ids_from_mask(mask), expected)


def test_completion_logprobs_scores_each_token_at_the_position_before() -> None:
    # P = 2, T = 2, V = 3: completion token 0 is scored by position 1, token 1 by position 2.
    logits = torch.tensor([[[9.0, 9.0, 9.0], [0.0, 0.0, 0.0], [0.0, 2.0, 0.0], [7.0, 7.0, 7.0]]])
    ids = torch.tensor([[2, 1]])
    # position 1 uniform: log(1/3) = -1.0986123; position 2 at token 1: 2 - log(e^2 + 2) = -0.2395447
    assert_close(completion_logprobs(logits, ids), torch.tensor([[-1.0986123, -0.2395447]]))


def test_sequence_logprobs_equals_the_naive_reference(model: nn.Module) -> None:
    prompt_ids, prompt_mask = left_pad(PROMPTS)
    completion_ids, completion_mask = completion_batch(COMPLETIONS, KEPT)
    with torch.no_grad():
        logp, entropy = sequence_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_mask)
    assert logp.shape == (3, 4) and entropy is None
    for row, (prompt, completion, kept) in enumerate(zip(PROMPTS, COMPLETIONS, KEPT, strict=True)):
        assert_close(logp[row, :kept], naive(model, prompt, completion[:kept]), atol=1e-5, rtol=0)


def assert_same_under_left_padding(model: nn.Module) -> None:
    """Batches with 0, 3 and 7 extra pad tokens (junk ids under the mask, not only the pad id)."""
    completion_ids, completion_mask = completion_batch(COMPLETIONS, KEPT)
    expected = [naive(model, p, c[:k]) for p, c, k in zip(PROMPTS, COMPLETIONS, KEPT, strict=True)]
    generator = torch.Generator().manual_seed(0)
    for extra in (0, 3, 7):  # row 0, the longest prompt, gets exactly `extra` pad tokens
        prompt_ids, prompt_mask = left_pad(PROMPTS, extra)
        junk = torch.randint(0, 1024, prompt_ids.shape, generator=generator)
        prompt_ids = torch.where(prompt_mask.bool(), prompt_ids, junk)
        with torch.no_grad():
            logp, _ = sequence_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_mask)
        for row, kept in enumerate(KEPT):
            assert_close(logp[row, :kept], expected[row], atol=1e-5, rtol=0)


def test_sequence_logprobs_is_the_same_under_any_left_padding(model: nn.Module) -> None:
    assert_same_under_left_padding(model)


def test_left_padding_with_absolute_positions() -> None:
    # Qwen2's RoPE only sees relative positions, so a constant shift of every position would pass
    # unnoticed there; GPT-2's learned absolute positions show that position_ids come from the mask.
    torch.manual_seed(0)
    config = AutoConfig.for_model(
        "gpt2", n_layer=1, n_embd=32, n_head=2, vocab_size=1024, n_positions=64, bos_token_id=0, eos_token_id=2
    )
    assert_same_under_left_padding(AutoModelForCausalLM.from_config(config).eval())


def test_sequence_logprobs_with_temperature_equals_the_naive_reference(model: nn.Module) -> None:
    prompt_ids, prompt_mask = left_pad(PROMPTS, 2)
    completion_ids, completion_mask = completion_batch(COMPLETIONS, KEPT)
    with torch.no_grad():
        logp, _ = sequence_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_mask, temperature=0.7)
    for row, (prompt, completion, kept) in enumerate(zip(PROMPTS, COMPLETIONS, KEPT, strict=True)):
        expected = naive(model, prompt, completion[:kept], temperature=0.7)
        assert_close(logp[row, :kept], expected, atol=1e-5, rtol=0)


def test_entropy_equals_the_naive_reference(model: nn.Module) -> None:
    prompt_ids, prompt_mask = left_pad(PROMPTS, 1)
    completion_ids, completion_mask = completion_batch(COMPLETIONS, KEPT)
    logp, entropy = sequence_logprobs(
        model, prompt_ids, prompt_mask, completion_ids, completion_mask, temperature=0.7, with_entropy=True
    )
    assert entropy is not None and not entropy.requires_grad
    assert logp.requires_grad
    for row, (prompt, completion, kept) in enumerate(zip(PROMPTS, COMPLETIONS, KEPT, strict=True)):
        expected = naive_entropy(model, prompt, completion[:kept], temperature=0.7)
        assert_close(entropy[row, :kept], expected, atol=1e-5, rtol=0)


def test_completion_entropy_by_hand() -> None:
    # Uniform over V = 4: log 4 = 1.3862944 at any temperature; a one-hot-like row has ~0 entropy.
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0], [5.0, 5.0, 5.0, 5.0]]])
    assert_close(completion_entropy(logits, 2, temperature=0.5), torch.tensor([[1.3862944, 0.0]]), atol=1e-6, rtol=0)


def test_logits_without_a_prompt_position_are_refused() -> None:
    with pytest.raises(ValueError, match=r"P >= 1"):
        completion_logprobs(torch.zeros(1, 3, 5), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="temperature"):
        completion_logprobs(torch.zeros(1, 4, 5), torch.zeros(1, 3, dtype=torch.long), temperature=0.0)


def test_mismatched_masks_are_refused(model: nn.Module) -> None:
    prompt_ids, prompt_mask = left_pad(PROMPTS)
    completion_ids, completion_mask = completion_batch(COMPLETIONS, KEPT)
    with pytest.raises(ValueError, match=r"completion_mask \(3, 3\)"):
        sequence_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_mask[:, :3])
