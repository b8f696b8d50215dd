"""The multi-dimensional reward head: projection g, dimension axes, anchored per-dimension rewards.

z = g(h) in R^d embeds a response; z_x = g(h(x)) embeds its prompt anchor; each dimension i has
an axis a_i (a row of A in R^{L x d}), a positive scale tau_i = softplus(.) and a bias b_i, and
r_i = tau_i <z - z_x, a_i / ||a_i||> + b_i (design/gprc.md). One call scores every dimension.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit_mrrml.losses.functional import anchored_rewards


class HeadOutput(NamedTuple):
    """Rewards on every dimension, the embeddings behind them, and each row's labelled axis."""

    rewards: Tensor  # (N, L)
    z: Tensor  # (N, d) response embeddings
    z_anchor: Tensor  # (N, d) prompt-anchor embeddings
    axes: Tensor  # (N, d) the axis a_i of each row's labelled dimension (row 0 of A when unlabelled)


class RewardHead(nn.Module):
    """Projection head g (Linear or 2-layer MLP), axes A (L, d), scales tau (L,) and biases b (L,)."""

    def __init__(
        self, hidden_size: int, num_dimensions: int, embedding_dim: int = 256, kind: Literal["linear", "mlp"] = "linear"
    ) -> None:
        super().__init__()
        if num_dimensions < 1:
            raise ValueError("RewardHead needs at least one dimension")
        if kind == "linear":
            self.projection: nn.Module = nn.Linear(hidden_size, embedding_dim)
        else:
            self.projection = nn.Sequential(
                nn.Linear(hidden_size, embedding_dim), nn.GELU(), nn.Linear(embedding_dim, embedding_dim)
            )
        self.axes = nn.Parameter(torch.randn(num_dimensions, embedding_dim) / math.sqrt(embedding_dim))
        self.raw_scale = nn.Parameter(torch.full((num_dimensions,), math.log(math.e - 1.0)))  # softplus -> 1
        self.bias = nn.Parameter(torch.zeros(num_dimensions))

    @property
    def scale(self) -> Tensor:
        """(L,) tau_i = softplus(raw), always positive."""
        return F.softplus(self.raw_scale)

    def forward(self, h: Tensor, h_anchor: Tensor, dimension: Tensor | None = None) -> HeadOutput:
        """h, h_anchor: (N, H) final hidden states at the response's last token and the prompt's last
        token; dimension: (N,) long, each row's labelled dimension (its axis is gathered here, inside
        forward, so that sharded parameters are gathered too)."""
        h = h.to(self.axes.dtype)
        z, z_anchor = self.projection(h), self.projection(h_anchor.to(self.axes.dtype))  # (N, d)
        rewards = anchored_rewards(z, z_anchor, self.axes, self.scale, self.bias)  # (N, L)
        if dimension is None:
            dimension = torch.zeros(h.shape[0], dtype=torch.long, device=h.device)
        return HeadOutput(rewards, z, z_anchor, self.axes[dimension])
