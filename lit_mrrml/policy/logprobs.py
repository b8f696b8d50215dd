"""Per-token log-probabilities and entropies of completions under a causal LM (design/policy.md, step 4).

A batch is N rows of P left-padded prompt tokens followed by T completion tokens. Completion token
t is scored by the logits at the position before it: logp_t = log_softmax(logits_{t-1} / T)[token_t],
so the logit at the last prompt token scores the first completion token. Position ids come from
the attention mask, so left padding does not shift positions and a row gives the same values
under any padding. Only the T scoring positions are sliced from the logits, and they are reduced
one row at a time in fp32 (gathered logit minus logsumexp), so the peak extra memory is one
(T, V) block rather than a full-batch log_softmax.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


def position_ids_from_mask(attention_mask: Tensor) -> Tensor:
    """(N, S) long: cumsum(mask) - 1, clamped at 0, so the first real token is at position 0."""
    return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)


def _scoring_logits(logits: Tensor, num_completion_tokens: int, temperature: float) -> Tensor:
    """(N, T, V) view of the logits at the T positions before the completion tokens."""
    if logits.dim() != 3 or not 0 < num_completion_tokens < logits.shape[1]:
        raise ValueError(
            f"logits {tuple(logits.shape)} must be (N, P + T, V) with P >= 1 prompt tokens before "
            f"T = {num_completion_tokens} >= 1 completion tokens"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return logits[:, -num_completion_tokens - 1 : -1]  # position P - 1 scores completion token 0


def completion_logprobs(logits: Tensor, completion_ids: Tensor, temperature: float = 1.0) -> Tensor:
    """(N, T) fp32 log_softmax(logits / temperature) at the position before each completion token.

    logits: (N, P + T, V) over the full sequence; completion_ids: (N, T) long.
    """
    n, t = completion_ids.shape
    scoring = _scoring_logits(logits, t, temperature)  # (N, T, V)
    if scoring.shape[0] != n:
        raise ValueError(f"logits {tuple(logits.shape)} and completion_ids {(n, t)} disagree on N")
    rows = []
    for row, ids in zip(scoring, completion_ids, strict=True):  # (T, V), (T,): one row at a time
        scaled = row.float() / temperature
        picked = scaled.gather(-1, ids[:, None]).squeeze(-1)  # (T,)
        rows.append(picked - torch.logsumexp(scaled, dim=-1))
    return torch.stack(rows)


def completion_entropy(logits: Tensor, num_completion_tokens: int, temperature: float = 1.0) -> Tensor:
    """(N, T) fp32 entropy -sum_v p log p of softmax(logits / temperature) at the same positions."""
    scoring = _scoring_logits(logits, num_completion_tokens, temperature)  # (N, T, V)
    rows = []
    for row in scoring:  # (T, V)
        logp = torch.log_softmax(row.float() / temperature, dim=-1)
        rows.append(-(logp.exp() * logp).sum(-1))
    return torch.stack(rows)


def _check_batch(prompt_ids: Tensor, prompt_mask: Tensor, completion_ids: Tensor, completion_mask: Tensor) -> None:
    """Refuse anything but prompt ids and mask (N, P) and completion ids and mask (N, T)."""
    n = prompt_ids.shape[0]
    if (
        prompt_ids.dim() != 2
        or prompt_mask.shape != prompt_ids.shape
        or completion_ids.dim() != 2
        or completion_mask.shape != completion_ids.shape
        or completion_ids.shape[0] != n
    ):
        raise ValueError(
            f"sequence_logprobs: prompt_ids {tuple(prompt_ids.shape)}, prompt_mask {tuple(prompt_mask.shape)}, "
            f"completion_ids {tuple(completion_ids.shape)}, completion_mask {tuple(completion_mask.shape)} "
            "do not match (N, P), (N, P), (N, T), (N, T)"
        )


def sequence_logprobs(
    model: nn.Module,
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    completion_ids: Tensor,
    completion_mask: Tensor,
    temperature: float = 1.0,
    with_entropy: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """(N, T) completion log-probabilities under a causal LM, and (N, T) detached entropies if asked.

    Args:
        model: A transformers causal LM (called with input_ids, attention_mask, position_ids).
        prompt_ids: (N, P) left-padded prompt tokens; prompt_mask (N, P) 1 for real tokens.
        completion_ids: (N, T) sampled tokens; completion_mask (N, T) 1 up to and with EOS, so the
            tokens after EOS are never attended to.
        temperature: The sampling temperature the logits are divided by.
        with_entropy: Also return the per-token entropy (a metric: computed without gradients).
    """
    _check_batch(prompt_ids, prompt_mask, completion_ids, completion_mask)
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)  # (N, P + T)
    attention_mask = torch.cat([prompt_mask.long(), completion_mask.long()], dim=1)  # (N, P + T)
    output: Any = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
        use_cache=False,
    )
    logits: Tensor = output.logits  # (N, P + T, V)
    logp = completion_logprobs(logits, completion_ids, temperature)
    if not with_entropy:
        return logp, None
    with torch.no_grad():
        entropy = completion_entropy(logits.detach(), completion_ids.shape[1], temperature)
    return logp, entropy
