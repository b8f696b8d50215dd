"""Pure tensor functions behind GPRC (design/gprc.md), shared by the loss, the metrics and the head.

Conventions: a batch holds B units of up to K responses each, best first; ``num_responses`` (B,)
says how many rows of each unit are real. Rows past it are padding: every function here masks them
so that they change neither values nor gradients (callers zero them first with ``mask_padding``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def response_mask(num_responses: Tensor, k: int) -> Tensor:
    """(B, K) bool: True for the real responses of each unit."""
    return torch.arange(k, device=num_responses.device)[None, :] < num_responses[:, None]


def pair_mask(num_responses: Tensor, k: int) -> Tensor:
    """(B, K, K) bool: True at [b, j, k] for every ordered pair j < k of real responses."""
    valid = response_mask(num_responses, k)  # (B, K)
    upper = torch.ones(k, k, dtype=torch.bool, device=num_responses.device).triu(1)  # j < k
    return valid[:, :, None] & valid[:, None, :] & upper[None]


def intermediate_mask(num_responses: Tensor, k: int) -> Tensor:
    """(B, K) bool: True for the responses strictly between the best and the worst of a unit."""
    idx = torch.arange(k, device=num_responses.device)[None, :]
    return (idx > 0) & (idx < num_responses[:, None] - 1)


def mask_padding(x: Tensor, mask: Tensor) -> Tensor:
    """Zero the padding rows of x (B, K, ...) so that NaN or junk there cannot leak into gradients."""
    while mask.dim() < x.dim():
        mask = mask.unsqueeze(-1)
    return torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))


def masked_mean(x: Tensor, mask: Tensor, dim: int | tuple[int, ...]) -> Tensor:
    """Mean of x over `dim` where mask is True; 0 where nothing is selected."""
    maskf = mask.to(x.dtype)
    return (x * maskf).sum(dim) / maskf.sum(dim).clamp_min(1.0)


def last_response(x: Tensor, num_responses: Tensor) -> Tensor:
    """(B, ...) the worst real response of each unit: row num_responses - 1 of x (B, K, ...)."""
    index = (num_responses - 1).view(-1, *([1] * (x.dim() - 1))).expand(-1, 1, *x.shape[2:])
    return x.gather(1, index).squeeze(1)


def unit_axes(axes: Tensor, eps: float = 1e-8) -> Tensor:
    """Normalise axes (..., d) to unit length: e_i = a_i / ||a_i||."""
    return axes / axes.norm(dim=-1, keepdim=True).clamp_min(eps)


def anchored_rewards(z: Tensor, z_anchor: Tensor, axes: Tensor, tau: Tensor, bias: Tensor) -> Tensor:
    """Per-dimension rewards r_i = tau_i * <z - z_x, e_i> + b_i for every dimension at once.

    z, z_anchor: (N, d) response and prompt-anchor embeddings; axes: (L, d) any norm;
    tau: (L,) positive scales; bias: (L,). Returns (N, L).
    """
    v = z - z_anchor  # (N, d): polar vector around the prompt anchor
    return (v @ unit_axes(axes).T) * tau + bias


def pairwise_logsigmoid(rewards: Tensor, pairs: Tensor, margin: float = 0.0) -> Tensor:
    """(B,) per-unit mean over pairs j < k of -log sigmoid(r_j - r_k - margin * (k - j))."""
    k = rewards.shape[1]
    idx = torch.arange(k, device=rewards.device, dtype=rewards.dtype)
    gap = idx[None, :] - idx[:, None]  # (K, K): k - j
    diff = rewards[:, :, None] - rewards[:, None, :] - margin * gap[None]  # (B, K, K): r_j - r_k - m(k-j)
    return masked_mean(-F.logsigmoid(diff), pairs, dim=(1, 2))


def pair_differences(z: Tensor) -> Tensor:
    """(B, K, K, d): z_j - z_k for every (j, k)."""
    return z[:, :, None, :] - z[:, None, :, :]


def cosine_to_axis(v: Tensor, e: Tensor, eps: float = 1e-8) -> Tensor:
    """cos(v, e) for v (..., d) and unit axes e broadcastable to v; 0 for a zero vector."""
    return (v * e).sum(-1) / v.norm(dim=-1).clamp_min(eps)


def axis_similarity(z: Tensor, axes: Tensor, pairs: Tensor, eps: float = 1e-8) -> Tensor:
    """(B,) per-unit mean over pairs j < k of 1 - cos(z_j - z_k, e_i)."""
    e = unit_axes(axes, eps)[:, None, None, :]  # (B, 1, 1, d)
    cos = cosine_to_axis(pair_differences(z), e, eps)  # (B, K, K)
    return masked_mean(1.0 - cos, pairs, dim=(1, 2))


def reference_projection(z: Tensor, num_responses: Tensor, eps: float = 1e-8) -> tuple[Tensor, Tensor, Tensor]:
    """Project every response on the reference segment from the worst (z_K) to the best (z_1).

    Returns (lam, perp_sq, d_sq): lam (B, K) the unclamped position <z_j - z_K, d> / ||d||^2,
    perp_sq (B, K) ||(z_j - z_K) - clamp(lam, 0, 1) d||^2 / (||d||^2 + eps), and d_sq (B,) ||d||^2.
    The position's denominator is clamped at eps so that d = 0 gives 0, not NaN.
    """
    z_worst = last_response(z, num_responses)  # (B, d)
    d = z[:, 0] - z_worst  # (B, d): worst -> best
    d_sq = (d * d).sum(-1)  # (B,)
    rel = z - z_worst[:, None, :]  # (B, K, d)
    lam = (rel * d[:, None, :]).sum(-1) / d_sq.clamp_min(eps)[:, None]  # (B, K)
    resid = rel - lam.clamp(0.0, 1.0)[..., None] * d[:, None, :]  # (B, K, d)
    perp_sq = (resid * resid).sum(-1) / (d_sq[:, None] + eps)  # (B, K)
    return lam, perp_sq, d_sq


def perpendicular_deviation(z: Tensor, num_responses: Tensor, eps: float = 1e-8) -> tuple[Tensor, Tensor]:
    """Per-unit mean of the perpendicular deviation of intermediate answers from the reference segment.

    Returns (loss (B,), has_intermediate (B,) bool); units with K = 2 have loss 0 and False.
    """
    inter = intermediate_mask(num_responses, z.shape[1])  # (B, K)
    _, perp_sq, _ = reference_projection(z, num_responses, eps)
    return masked_mean(perp_sq, inter, dim=1), inter.any(dim=1)
