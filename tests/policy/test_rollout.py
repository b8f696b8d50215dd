"""The rollout engine (lit_mrrml/policy/rollout.py): prompt-major, left-padded, seeded, and drawn
from exactly the distribution the loss scores (softmax(logits / T), no other processor)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.testing import assert_close
from transformers import AutoConfig, AutoModelForCausalLM

from lit_mrrml.models.tiny import TINY_QWEN2
from lit_mrrml.policy.logprobs import sequence_logprobs
from lit_mrrml.policy.rollout import HFGenerateEngine, SamplingSettings, generation_config, left_pad

PAD, EOS = 0, 2
PROMPTS = [[5, 17, 42, 99, 3], [7, 8]]


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    config = AutoConfig.for_model(**TINY_QWEN2)
    config.top_k, config.repetition_penalty = None, None
    lm = AutoModelForCausalLM.from_config(config).eval()
    lm.generation_config.top_k = 5  # a model default that would change the distribution if it leaked in
    lm.generation_config.repetition_penalty = 1.5
    return lm


def draw(model: nn.Module, seed: int, g: int = 3, **settings: float) -> object:
    sampling = SamplingSettings(**{"max_new_tokens": 6, **settings})  # type: ignore[arg-type]
    return HFGenerateEngine().generate(model, PROMPTS, g, sampling, [EOS], PAD, seed)


def test_left_pad() -> None:
    ids, mask = left_pad([[1, 2, 3], [4]], pad_id=9)
    assert ids.tolist() == [[1, 2, 3], [9, 9, 4]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_rollouts_are_prompt_major_left_padded_and_bounded(model: nn.Module) -> None:
    r = draw(model, seed=1)
    assert r.prompt_ids.shape == (6, 5) and r.completion_ids.shape[0] == 6  # type: ignore[attr-defined]
    assert r.prompt_ids[3:, -2:].tolist() == [[7, 8]] * 3  # type: ignore[attr-defined]  # rows 3..5: prompt 1
    assert r.prompt_mask[3:].sum(1).tolist() == [2, 2, 2]  # type: ignore[attr-defined]
    assert r.completion_ids.shape[1] <= 6  # type: ignore[attr-defined]  # max_new_tokens
    assert ((r.lengths == 6) | ~r.truncated).all()  # type: ignore[attr-defined]  # truncated rows are full


def test_the_same_seed_gives_the_same_rollouts_and_leaves_the_global_rng(model: nn.Module) -> None:
    state = torch.random.get_rng_state()
    a, b, c = draw(model, seed=4), draw(model, seed=4), draw(model, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.completion_ids, b.completion_ids)  # type: ignore[attr-defined]
    assert not torch.equal(a.completion_ids, c.completion_ids)  # type: ignore[attr-defined]


def test_engine_batches_give_the_same_shapes_and_masks(model: nn.Module) -> None:
    sampling = SamplingSettings(max_new_tokens=6, temperature=0.0)  # greedy: comparable across batchings
    whole = HFGenerateEngine().generate(model, PROMPTS, 2, sampling, [EOS], PAD, 0)
    split = HFGenerateEngine(batch_size=1).generate(model, PROMPTS, 2, sampling, [EOS], PAD, 0)
    n = whole.completion_ids.shape[1]
    assert torch.equal(split.completion_ids[:, :n], whole.completion_ids)
    assert torch.equal(split.completion_mask[:, :n], whole.completion_mask)


def test_sampling_distribution_is_exactly_the_scored_one(model: nn.Module) -> None:
    """generate's processed scores (after every warper) equal log_softmax(logits / T) at each step:
    no top-k or repetition penalty from the model's generation config leaks into the sampling."""
    sampling = SamplingSettings(max_new_tokens=5, temperature=0.7)
    config = generation_config(sampling, [EOS], PAD)
    config.return_dict_in_generate, config.output_scores = True, True
    ids, mask = left_pad(PROMPTS, PAD)
    torch.manual_seed(3)
    out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    completion = out.sequences[:, ids.shape[1] :]  # (2, T)
    steps = torch.stack(out.scores, 1).log_softmax(-1)  # (2, T, V): the sampling distribution
    sampled = steps.gather(2, completion[..., None]).squeeze(2)
    keep = torch.ones_like(completion)
    ours, _ = sequence_logprobs(model, ids, mask, completion, keep, temperature=0.7)
    assert_close(ours, sampled, atol=1e-5, rtol=0)


def test_sampling_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_new_tokens"):
        SamplingSettings(max_new_tokens=0)
    with pytest.raises(ValueError, match="top_p"):
        SamplingSettings(top_p=0.0)
