"""Rollouts: G sampled completions for each of B prompts, behind one small engine interface.

``HFGenerateEngine`` samples with transformers ``generate`` in this process: the prompts are
left-padded so they end together, each is repeated G times (prompt-major: the G rollouts of
prompt b are rows b*G .. b*G+G-1), and the sampling distribution is exactly softmax(logits / T)
cut to ``top_p``: no top-k, repetition penalty or other processor the model's generation config
might carry, so that the log-probabilities the loss computes are those the tokens were drawn
from. A completion stops at the first token in the union of the tokenizer's and the generation
config's EOS ids; its mask keeps that EOS (``lit_mrrml.policy.masks``). Sampling is seeded and
does not touch the global RNG, so a resumed run draws the rollouts an uninterrupted one would.

``lit_mrrml.policy.vllm_engine.VLLMEngine`` implements the same ``generate`` with vLLM colocated
in the training process, and loads the trained weights into it after ``sync``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from transformers import GenerationConfig

from lit_mrrml.models.sharding import is_sharded
from lit_mrrml.policy.masks import completion_mask


@dataclass(frozen=True)
class SamplingSettings:
    """How completions are drawn.

    Args:
        max_new_tokens: Longest completion in tokens; a completion that reaches it without an EOS
            is truncated.
        temperature: Softmax temperature T (0: greedy decoding).
        top_p: Nucleus sampling mass (1.0: the whole distribution).
    """

    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {self.temperature} and {self.top_p}")


@dataclass
class Rollouts:
    """N = B x G completions, prompt-major, with the left-padded prompts they continue."""

    prompt_ids: Tensor  # (N, P) left-padded
    prompt_mask: Tensor  # (N, P) 1 on real prompt tokens
    completion_ids: Tensor  # (N, T) the sampled tokens; after the first EOS only padding
    completion_mask: Tensor  # (N, T) bool: tokens up to and including the first EOS
    truncated: Tensor  # (N,) bool: no EOS within max_new_tokens
    num_generations: int  # G
    # (N, T) log-probabilities of the completion tokens under the engine's own sampling
    # distribution (vLLM's processed log-probs), 0 at padding; None when the engine does not report them
    sampler_logprobs: Tensor | None = None

    @property
    def lengths(self) -> Tensor:
        """(N,) completion lengths in tokens (the EOS counted)."""
        return self.completion_mask.sum(1)

    def select(self, rows: Tensor) -> Rollouts:
        """The rollouts at ``rows`` (a micro-batch); ``num_generations`` loses its meaning there."""
        return Rollouts(
            self.prompt_ids[rows],
            self.prompt_mask[rows],
            self.completion_ids[rows],
            self.completion_mask[rows],
            self.truncated[rows],
            self.num_generations,
            self.sampler_logprobs[rows] if self.sampler_logprobs is not None else None,
        )


def left_pad(sequences: list[list[int]], pad_id: int, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """(ids, mask), both (N, P): each sequence right-aligned after ``pad_id`` padding."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq) :] = 1
    return ids.to(device), mask.to(device)


def generation_config(sampling: SamplingSettings, stop_ids: list[int], pad_id: int) -> GenerationConfig:
    """Plain sampling from softmax(logits / T) with ``top_p``, every other processor switched off
    explicitly (``generate`` fills unset fields from the model's own generation config)."""
    sample = sampling.temperature > 0
    return GenerationConfig(
        max_new_tokens=sampling.max_new_tokens,
        min_new_tokens=0,
        do_sample=sample,
        temperature=sampling.temperature if sample else 1.0,
        top_p=sampling.top_p if sample else 1.0,
        top_k=0,
        min_p=None,
        typical_p=1.0,
        epsilon_cutoff=0.0,
        eta_cutoff=0.0,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        num_beams=1,
        eos_token_id=stop_ids,
        pad_token_id=pad_id,
    )


class RolloutEngine(ABC):
    """Draws G completions for each prompt; implemented in process now, by vLLM later."""

    @abstractmethod
    def generate(
        self,
        model: nn.Module,
        prompt_ids: list[list[int]],
        num_generations: int,
        sampling: SamplingSettings,
        stop_ids: list[int],
        pad_id: int,
        seed: int,
    ) -> Rollouts:
        """Rollouts of ``model`` (prompt-major), the same for the same weights, prompts and ``seed``."""

    def sync(self, model: nn.Module, root: nn.Module | None = None) -> None:  # noqa: B027 (in-process: live weights)
        """Bring the engine's copy of the weights up to date after an optimizer step.

        ``root`` is the module the strategy wrapped (``trainer.strategy.model``): under FSDP1 it
        holds the weights outside the policy's wrapped blocks (see ``lit_mrrml.policy.weight_stream``).
        """


class HFGenerateEngine(RolloutEngine):
    """transformers ``generate`` on the policy itself, in batches of sequences; on a policy sharded
    with FSDP2 over several ranks, in step with the other ranks (``synced_forwards``).

    Args:
        batch_size: Sequences (prompts x generations) per ``generate`` call; None: all at once.
    """

    def __init__(self, batch_size: int | None = None) -> None:
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size

    def generate(
        self,
        model: nn.Module,
        prompt_ids: list[list[int]],
        num_generations: int,
        sampling: SamplingSettings,
        stop_ids: list[int],
        pad_id: int,
        seed: int,
    ) -> Rollouts:
        device = next(model.parameters()).device
        repeated = [ids for ids in prompt_ids for _ in range(num_generations)]  # prompt-major
        ids, mask = left_pad(repeated, pad_id, device)  # (N, P)
        config = generation_config(sampling, stop_ids, pad_id)
        step = self.batch_size or len(repeated)
        synced = synced_forwards(model, -(-len(repeated) // step))
        pieces = []
        was_training = model.training
        model.eval()
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
            torch.manual_seed(seed)
            for start in range(0, len(repeated), step):
                out: Any = model.generate(  # type: ignore[operator]
                    input_ids=ids[start : start + step],
                    attention_mask=mask[start : start + step],
                    generation_config=config,
                    synced_gpus=synced,
                )
                pieces.append(out[:, ids.shape[1] :])  # (n, t): left padding makes every prompt end at P
        model.train(was_training)
        completions = _right_pad([p for p in pieces], pad_id)  # (N, T)
        keep, truncated = completion_mask(completions, stop_ids)
        completions = completions.masked_fill(~keep, pad_id)
        return Rollouts(ids, mask, completions, keep, truncated, num_generations)


def synced_forwards(model: nn.Module, calls: int) -> bool:
    """Whether ``generate`` must keep every rank in step (``synced_gpus``): for an FSDP-sharded
    model in a process group of more than one rank, where every forward all-gathers weights, so a
    rank whose completions all stopped at EOS keeps running forwards until every rank's have.

    transformers detects only its own FSDP wrapping, not Lightning's ``fully_shard``, hence the
    explicit flag. Every rank must also make the same number of ``generate`` calls (``calls``);
    a rank with another count would wait forever, so a mismatch is refused on every rank.
    """
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1 and is_sharded(model)):
        return False
    device = next(model.parameters()).device
    counts = torch.tensor([calls, -calls], device=device)
    dist.all_reduce(counts, op=dist.ReduceOp.MAX)  # (max calls, -min calls) over the ranks
    if int(counts[0]) != -int(counts[1]):
        raise RuntimeError(
            f"sharded generate: the ranks make {-int(counts[1])} to {int(counts[0])} generate calls (this rank "
            f"{calls}): give every rank the same number of prompts, or set the engine's batch_size to None"
        )
    return True


def _right_pad(pieces: list[Tensor], pad_id: int) -> Tensor:
    """Concatenate (n_i, t_i) pieces along rows, right-padding each to the widest t."""
    width = max(p.shape[1] for p in pieces)
    padded = [torch.nn.functional.pad(p, (0, width - p.shape[1]), value=pad_id) for p in pieces]
    return torch.cat(padded, 0)
