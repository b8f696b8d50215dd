"""GPRC: Geometric Projection Reference Constraints (design/gprc.md), as a plain nn.Module.

For a unit on dimension i with responses y_1 > ... > y_K (embeddings z_k, rewards r_k = r_i(x, y_k)):

    L_rank   = mean_{j<k} -log sigmoid(r_j - r_k - m (k - j))
    L_axis   = mean_{j<k} (1 - cos(z_j - z_k, e_i))
    L_perp   = mean_{1<j<K} ||(z_j - z_K) - lambda_j d||^2 / (||d||^2 + eps),
               d = z_1 - z_K, lambda_j = clamp(<z_j - z_K, d> / ||d||^2, 0, 1)
    L_center = mean_k r_k^2
    L        = L_rank + alpha L_axis + beta L_perp + gamma L_center

Deliberate choices: every term lives inside one unit (no cross-device gather); each term is a mean
over units of the unit's own mean; L_perp averages over units with K >= 3 only (0 if none);
L_center averages over all real responses. alpha = beta = gamma = 0 is plain pairwise
Bradley-Terry. Padding rows (past a unit's ``num_responses``) are zeroed before any arithmetic,
so they change neither the loss nor its gradients. ``lambda_j``'s denominator is clamped at eps
so that a degenerate segment (z_1 = z_K) gives 0 instead of NaN.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from lit_mrrml.losses.functional import (
    axis_similarity,
    mask_padding,
    masked_mean,
    pair_mask,
    pairwise_logsigmoid,
    perpendicular_deviation,
    response_mask,
)
from lit_mrrml.losses.statistics import pooled_rates, unit_statistics


class GPRCOutput(NamedTuple):
    """The scalar loss and its detached metrics."""

    loss: Tensor
    metrics: dict[str, Tensor]


class GPRCLoss(nn.Module):
    """Axis ranking + axis similarity + perpendicular deviation (+ optional centering)."""

    def __init__(
        self,
        alpha: float = 0.1,
        beta: float = 0.1,
        gamma: float = 0.0,
        margin: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        """
        Args:
            alpha: Weight of the axis-similarity loss (quality direction along the dimension's axis).
            beta: Weight of the perpendicular-deviation loss (intermediate answers on the reference segment).
            gamma: Weight of the reward-centering loss mean r^2.
            margin: Rank-gap margin m of the ranking loss: pair (j, k) must be apart by m * (k - j).
            eps: Numerical guard for norms and the segment length.
        """
        super().__init__()
        for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma), ("margin", margin)):
            if value < 0:
                raise ValueError(f"GPRCLoss: {name} must be >= 0, got {value}")
        self.alpha, self.beta, self.gamma, self.margin, self.eps = alpha, beta, gamma, margin, eps

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}, margin={self.margin}"

    def forward(
        self,
        z: Tensor,
        rewards: Tensor,
        axes: Tensor,
        num_responses: Tensor | None = None,
        dimension: Tensor | None = None,
    ) -> GPRCOutput:
        """
        Args:
            z: (B, K, d) reward embeddings of each unit's responses, best first; rows past
                ``num_responses`` are padding.
            rewards: (B, K) each response's reward on its unit's labelled dimension.
            axes: (B, d) each unit's dimension axis a_i (any norm).
            num_responses: (B,) long, real responses per unit (default K); each must be in [2, K].
            dimension: (B,) long, optional; names the per-dimension metrics ``<metric>/<index>``.
        """
        b, k, _ = z.shape
        if rewards.shape != (b, k) or axes.shape != (b, z.shape[2]):
            raise ValueError(
                f"GPRCLoss: shapes z {tuple(z.shape)}, rewards {tuple(rewards.shape)}, "
                f"axes {tuple(axes.shape)} do not match (B, K, d), (B, K), (B, d)"
            )
        if num_responses is None:
            num_responses = torch.full((b,), k, dtype=torch.long, device=z.device)
        if num_responses.shape != (b,) or (dimension is not None and dimension.shape != (b,)):
            raise ValueError(f"GPRCLoss: num_responses and dimension must have shape ({b},)")
        if bool(((num_responses < 2) | (num_responses > k)).any()):
            raise ValueError(f"GPRCLoss: num_responses must be in [2, {k}], got {num_responses.tolist()}")
        valid = response_mask(num_responses, k)  # (B, K)
        z, rewards = mask_padding(z, valid), mask_padding(rewards, valid)
        pairs = pair_mask(num_responses, k)  # (B, K, K)

        rank = pairwise_logsigmoid(rewards, pairs, self.margin).mean()
        axis = axis_similarity(z, axes, pairs, self.eps).mean()
        perp_unit, has_inter = perpendicular_deviation(z, num_responses, self.eps)
        perp = masked_mean(perp_unit, has_inter, dim=0)
        center = masked_mean(rewards.square(), valid, dim=(0, 1))
        loss = rank + self.alpha * axis + self.beta * perp + self.gamma * center

        metrics = {"loss_rank": rank, "loss_axis": axis, "loss_perp": perp, "loss_center": center}
        metrics = {name: value.detach() for name, value in metrics.items()}
        metrics.update(self._rates(z.detach(), rewards.detach(), axes.detach(), num_responses, dimension))
        return GPRCOutput(loss, metrics)

    def _rates(
        self, z: Tensor, rewards: Tensor, axes: Tensor, num_responses: Tensor, dimension: Tensor | None
    ) -> dict[str, Tensor]:
        stats = unit_statistics(z, rewards, axes, num_responses, self.eps)
        metrics = pooled_rates(stats)
        if dimension is not None:
            for index in dimension.unique().tolist():
                for name, value in pooled_rates(stats, dimension == index).items():
                    metrics[f"{name}/{index}"] = value
        return metrics
