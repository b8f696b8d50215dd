"""vLLM requests and outputs in the trainer's terms, as pure functions (no vLLM import here).

``sampling_params`` builds vLLM's ``SamplingParams`` for exactly the distribution the trainer's
log-probabilities assume; ``rollouts_from_outputs`` lays vLLM's ``RequestOutput``s out as
``Rollouts`` the way ``HFGenerateEngine`` does, with the sampled tokens' log-probabilities.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from lit_mrrml.policy.masks import completion_mask
from lit_mrrml.policy.rollout import Rollouts, SamplingSettings, left_pad


def request_seed(seed: int, index: int) -> int:
    """The seed of prompt ``index`` of a call seeded ``seed``, in [0, 2**31)."""
    digest = hashlib.sha256(repr((seed, index)).encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2**31)


def sampling_params(api: Any, sampling: SamplingSettings, n: int, stop_ids: list[int], seed: int) -> Any:
    """vLLM sampling settings equal to the trainer's: softmax(logits / T) cut to top_p, nothing else."""
    sample = sampling.temperature > 0
    return api.SamplingParams(
        n=n,
        temperature=sampling.temperature,
        top_p=sampling.top_p if sample else 1.0,
        top_k=-1,  # off (vLLM: 0 or -1)
        min_p=0.0,
        repetition_penalty=1.0,
        presence_penalty=0.0,
        frequency_penalty=0.0,
        seed=seed,
        max_tokens=sampling.max_new_tokens,
        min_tokens=0,
        stop_token_ids=list(stop_ids),
        ignore_eos=False,
        logprobs=0,  # the sampled token's log-probability only
        detokenize=False,
        skip_special_tokens=False,
    )


def sampled_logprobs(completion: Any) -> list[float]:
    """The log-probability vLLM reported for each sampled token of one completion."""
    if completion.logprobs is None:
        raise RuntimeError("vLLM returned no log-probabilities: the request must set logprobs=0")
    ids = list(completion.token_ids)
    return [float(position[token].logprob) for position, token in zip(completion.logprobs, ids, strict=True)]


def rollouts_from_outputs(
    prompt_ids: list[list[int]],
    outputs: list[Any],
    num_generations: int,
    stop_ids: list[int],
    pad_id: int,
    device: torch.device | None = None,
) -> Rollouts:
    """vLLM's request outputs (one a prompt, ``num_generations`` completions each) as ``Rollouts``
    laid out like HFGenerateEngine's: prompt-major, prompts left-padded, completions right-padded,
    the mask up to and with the first stop id, ``sampler_logprobs`` 0 outside it."""
    rows: list[list[int]] = []
    logps: list[list[float]] = []
    for request in outputs:
        completions = sorted(request.outputs, key=lambda c: c.index)
        if len(completions) != num_generations:
            raise RuntimeError(f"vLLM returned {len(completions)} completions for a prompt, expected {num_generations}")
        rows += [list(c.token_ids) for c in completions]
        logps += [sampled_logprobs(c) for c in completions]
    n, width = len(rows), max([1, *map(len, rows)])
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    sampler = torch.zeros((n, width), dtype=torch.float32)
    lengths = torch.tensor([len(r) for r in rows])
    for i, (row, logp) in enumerate(zip(rows, logps, strict=True)):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        sampler[i, : len(row)] = torch.tensor(logp, dtype=torch.float32)
    real = torch.arange(width)[None, :] < lengths[:, None]  # (N, T): tokens vLLM produced, not padding
    keep, _ = completion_mask(ids, stop_ids)
    keep &= real  # padding is never a stop token, even when the pad id is one
    stopped = (torch.isin(ids, torch.tensor(stop_ids)) & real).any(1)
    prompts, prompt_mask = left_pad([p for p in prompt_ids for _ in range(num_generations)], pad_id, device)
    return Rollouts(
        prompts,
        prompt_mask,
        ids.masked_fill(~keep, pad_id).to(device),
        keep.to(device),
        (~stopped).to(device),
        num_generations,
        sampler.masked_fill(~keep, 0.0).to(device),
    )
