"""GPRC on chosen/rejected pairs scored by a plain sequence-classification head (K = 2 units).

A Hugging Face ``*ForSequenceClassification`` model with ``num_labels = L`` ends in a linear score
head: at the last non-padding token, with h in R^H the final hidden state (the head's input),
logits = W h + c, W in R^{L x H}. That is the GPRC reward (design/gprc.md) with
- z = h: the projection g is the identity, so d = H;
- axes A = W: row w_i is dimension i's axis, e_i = w_i / ||w_i||;
- tau_i = ||w_i|| > 0 and b_i = c_i (0 for the usual bias-free head): r_i = tau_i <z, e_i> + b_i;
- no prompt anchor (z_x = 0).
For a pair of one prompt the anchor cancels wherever GPRC uses it on pairs: L_rank depends on
r_chosen - r_rejected and L_axis on z_chosen - z_rejected, and L_perp is 0 for K = 2; only
L_center (off by default) sees the raw, unanchored rewards. Rewards of different prompts are
therefore not made comparable the way the anchored RewardHead makes them (choice, stated).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class PairInputs(NamedTuple):
    """GPRCLoss inputs for B pairs, chosen first."""

    z: Tensor  # (B, 2, H) reward embeddings of (chosen, rejected)
    rewards: Tensor  # (B, 2) rewards on each pair's labelled dimension
    axes: Tensor  # (B, H) the labelled dimension's axis: its row of the score weight


def last_token_index(input_ids: Tensor, pad_token_id: int | None) -> Tensor:
    """(N,) the position each sequence is scored at, as transformers' sequence classifiers pick it:
    the rightmost token that is not ``pad_token_id`` (the last position without a pad id)."""
    n, t = input_ids.shape
    if pad_token_id is None:
        return torch.full((n,), t - 1, dtype=torch.long, device=input_ids.device)
    non_pad = (input_ids != pad_token_id).to(torch.int64)  # (N, T)
    positions = torch.arange(t, device=input_ids.device, dtype=torch.int64)
    return (positions * non_pad).argmax(-1)


def pair_inputs(z: Tensor, logits: Tensor, weight: Tensor, dimension: Tensor) -> PairInputs:
    """Rearrange a preference batch for GPRCLoss.

    Args:
        z: (2B, H) score-head inputs at the scored token: the B chosen rows, then the B rejected.
        logits: (2B, L) the head's outputs there, in the same order.
        weight: (L, H) the score head's weight (its rows are the axes).
        dimension: (B,) long, each pair's labelled dimension.
    """
    b = dimension.shape[0]
    if z.shape[0] != 2 * b or logits.shape[0] != 2 * b or weight.shape != (logits.shape[1], z.shape[1]):
        raise ValueError(
            f"pair_inputs: z {tuple(z.shape)}, logits {tuple(logits.shape)}, weight {tuple(weight.shape)} do not "
            f"fit {b} pairs: expected (2B, H), (2B, L), (L, H)"
        )
    pairs_z = torch.stack(z.chunk(2), dim=1)  # (B, 2, H): chosen, rejected
    pairs_logits = torch.stack(logits.chunk(2), dim=1)  # (B, 2, L)
    rewards = pairs_logits.gather(2, dimension[:, None, None].expand(b, 2, 1)).squeeze(2)  # (B, 2)
    return PairInputs(pairs_z, rewards, weight[dimension])
