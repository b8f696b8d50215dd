"""GRPO: group advantages and the clipped policy loss (design/policy.md), as pure torch.

Advantages of G rollouts of each of B prompts, from per-dimension rewards r (B, G, L) and each
prompt's scenario weights w (B, L); std is the sample std (Bessel's correction), eps = 1e-4:

    weighted:  R_ig = sum_l w_l r_igl;   A_ig = (R_ig - mean_g R) / (std_g R + eps)
    gdpo:      a_igl = (r_igl - mean_g r_l) / (std_g r_l + eps), and 0 where std_g r_l < std_floor
               A_ig = sum_l w_l a_igl;   A <- (A - mean A) / (std A + eps) over all B x G values

Loss per completion token t of rollout i, with rho_t = exp(logp_t - old_logp_t):

    l_t  = -min(rho_t A_i, clip(rho_t, 1 - eps_low, 1 + eps_high) A_i) + beta KL_t
    KL_t = exp(ref_t - logp_t) - (ref_t - logp_t) - 1                    (the k3 estimator)

    token_mean:    L = sum_{i,t} mask_it l_t / num_tokens       (num_tokens: whole rollout batch)
    sequence_mean: L = sum_i (sum_t mask_it l_t / sum_t mask_it) / num_sequences

Deliberate choices: in ``gdpo`` a dimension whose group std is below ``std_floor`` contributes 0,
so a nearly constant dimension cannot turn reward-model noise into full-size advantages; in
``weighted`` a group with constant R gives (R - mean) / (0 + eps) = 0 (up to the rounding of the
mean, at most |R - mean| / eps). A zero std always gives 0, never 0 / 0 (also with eps = 0), so a
batch where every group is constant gives all-zero advantages, not NaN. G < 2 is refused: the
sample std of one rollout is undefined. The final ``gdpo`` standardisation runs over the values
given (the caller gathers across ranks first). ``num_tokens`` is the denominator of the whole
rollout batch, so micro-batches called with it add up to the gradient of one big batch; it is
clamped at 1, so an all-masked batch gives loss 0 with zero gradients. ``old_logp``, ``ref_logp``
and the advantages are detached (targets, not parameters). Masked tokens are neutralised before
any exp, so junk log-probabilities after EOS give neither inf nor NaN. The metrics (``kl``,
``clip_frac_low``, ``clip_frac_high``, ``ratio_mean``) are means over the local mask; as in TRL,
the lower clip is active where rho < 1 - eps_low and A < 0, the upper where rho > 1 + eps_high
and A > 0 (the clipped side of the min, where the token's gradient is 0).

Truncated importance sampling (TIS; Yao et al. 2025, "Your efficient RL framework secretly brings
you off-policy RL training"): a rollout engine such as vLLM samples from its own kernels, so its
log-probabilities q_t of the sampled tokens differ from the trainer's old_logp_t. With ``tis_cap``
C set and the engine's ``sampler_logp`` given, the policy term of each token is weighted by

    w_t = min(exp(old_logp_t - sampler_logp_t), C)          (detached; 0 at masked tokens)
    l_t = -w_t min(rho_t A_i, clip(rho_t, 1 - eps_low, 1 + eps_high) A_i) + beta KL_t

the token-level truncated correction TRL applies with ``vllm_importance_sampling_mode:
token_truncate``; the KL term is not weighted. C >= 1, so that exact log-probabilities (w = 1) are
never scaled down. The metrics ``tis_weight_mean`` and ``tis_clipped_frac`` (w capped) are means
over the mask; ``logp_gap`` is the mean |sampler_logp - old_logp| the trainer logs.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

AdvantageMode = Literal["gdpo", "weighted"]
LossType = Literal["token_mean", "sequence_mean"]


def _check_rewards(rewards: Tensor, weights: Tensor) -> None:
    """Refuse anything but rewards (B, G, L) with G >= 2 and weights (B, L)."""
    if rewards.dim() != 3 or weights.shape != (rewards.shape[0], rewards.shape[2]):
        raise ValueError(
            f"group_advantages: rewards {tuple(rewards.shape)} and weights {tuple(weights.shape)} "
            "must have shapes (B, G, L) and (B, L)"
        )
    if rewards.shape[1] < 2:
        raise ValueError(
            f"group_advantages: need G >= 2 rollouts per prompt (the group std of one rollout is "
            f"undefined), got rewards {tuple(rewards.shape)}"
        )


def _standardise(x: Tensor, dim: int | tuple[int, ...], eps: float, std_floor: float = 0.0) -> Tensor:
    """(x - mean) / (sample std + eps) over `dim`; 0 where the std is below std_floor or 0 (eps = 0)."""
    std = x.std(dim, keepdim=True)
    scaled = (x - x.mean(dim, keepdim=True)) / (std + eps)
    return torch.where((std < std_floor) | (std + eps == 0), torch.zeros_like(scaled), scaled)


def _gdpo(rewards: Tensor, weights: Tensor, std_floor: float, eps: float) -> Tensor:
    """(B, G): per-dimension group standardisation, weighted sum, batch standardisation."""
    per_dim = _standardise(rewards, 1, eps, std_floor)  # (B, G, L); std over the G rollouts
    total = (per_dim * weights[:, None, :]).sum(-1)  # (B, G)
    return _standardise(total, (0, 1), eps)


def group_advantages(
    rewards: Tensor,
    weights: Tensor,
    mode: AdvantageMode = "gdpo",
    std_floor: float = 1e-3,
    eps: float = 1e-4,
) -> Tensor:
    """(B, G) advantages of G rollouts of each of B prompts.

    Args:
        rewards: (B, G, L) per-dimension rewards; G >= 2.
        weights: (B, L) each prompt's scenario weights.
        mode: ``"gdpo"`` (standardise each dimension, sum, standardise over the batch) or
            ``"weighted"`` (sum the dimensions, standardise within the group).
        std_floor: In ``gdpo``, a dimension whose group std is below it contributes 0.
        eps: Added to every std.
    """
    _check_rewards(rewards, weights)
    if mode == "gdpo":
        return _gdpo(rewards, weights, std_floor, eps)
    if mode == "weighted":
        total = (rewards * weights[:, None, :]).sum(-1)  # (B, G)
        return _standardise(total, 1, eps)
    raise ValueError(f"group_advantages: mode must be 'gdpo' or 'weighted', got {mode!r}")


def k3_kl(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-token k3 estimate of KL(policy || reference): exp(ref - logp) - (ref - logp) - 1 >= 0."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of x over the True entries of mask; 0 when there are none."""
    maskf = mask.to(x.dtype)
    return (x * maskf).sum() / maskf.sum().clamp_min(1.0)


def tis_weights(old_logp: Tensor, sampler_logp: Tensor, mask: Tensor, cap: float) -> tuple[Tensor, Tensor]:
    """Truncated importance weights, detached: (w (N, T) = min(exp(old_logp - sampler_logp), cap), 0
    where masked; capped (N, T) bool, where the cap binds)."""
    mask = mask.bool()
    zero = torch.zeros((), dtype=old_logp.dtype, device=old_logp.device)
    raw = torch.exp(torch.where(mask, old_logp.detach() - sampler_logp.detach().to(old_logp.dtype), zero))
    return torch.where(mask, raw.clamp(max=cap), zero), mask & (raw > cap)


def logp_gap(sampler_logp: Tensor, old_logp: Tensor, mask: Tensor) -> Tensor:
    """Mean |sampler_logp - old_logp| over the True entries of mask (0 when there are none)."""
    mask = mask.bool()
    zero = torch.zeros((), dtype=old_logp.dtype, device=old_logp.device)
    gap = torch.where(mask, (sampler_logp.to(old_logp.dtype) - old_logp).abs(), zero)
    return _masked_mean(gap.detach(), mask)


def _as_count(count: int | Tensor, like: Tensor) -> Tensor:
    """A denominator as a scalar tensor of like's dtype and device, clamped at 1."""
    return torch.as_tensor(count, dtype=like.dtype, device=like.device).clamp_min(1.0)


class GRPOLossOutput(NamedTuple):
    """The scalar loss and its detached metrics."""

    loss: Tensor
    metrics: dict[str, Tensor]


class GRPOLoss(nn.Module):
    """Clipped surrogate objective with an optional k3 KL penalty to a reference policy."""

    def __init__(
        self,
        eps_low: float = 0.2,
        eps_high: float = 0.2,
        beta: float = 0.0,
        loss_type: LossType = "token_mean",
        tis_cap: float | None = None,
    ) -> None:
        """
        Args:
            eps_low: Lower clip range: the ratio is clipped at 1 - eps_low; in [0, 1).
            eps_high: Upper clip range: the ratio is clipped at 1 + eps_high; >= 0.
            beta: Weight of the k3 KL penalty to the reference policy; 0 needs no reference.
            loss_type: ``"token_mean"`` (masked sum over the rollout batch / its completion tokens)
                or ``"sequence_mean"`` (mean over sequences of each sequence's token mean).
            tis_cap: Truncated importance sampling against the rollout engine's own log-probabilities
                (vLLM): each token's policy term is weighted by min(exp(old_logp - sampler_logp),
                tis_cap); >= 1 (TRL's default cap is 3). None: no correction. Engines that report no
                sampler log-probabilities (transformers ``generate``) are never corrected.
        """
        super().__init__()
        if not 0 <= eps_low < 1:
            raise ValueError(f"GRPOLoss: eps_low must be in [0, 1), got {eps_low}")
        if eps_high < 0 or beta < 0:
            raise ValueError(f"GRPOLoss: eps_high and beta must be >= 0, got {eps_high} and {beta}")
        if loss_type not in ("token_mean", "sequence_mean"):
            raise ValueError(f"GRPOLoss: loss_type must be 'token_mean' or 'sequence_mean', got {loss_type!r}")
        if tis_cap is not None and not tis_cap >= 1:
            raise ValueError(f"GRPOLoss: tis_cap must be >= 1 (or None: no correction), got {tis_cap}")
        self.eps_low, self.eps_high, self.beta, self.loss_type = eps_low, eps_high, beta, loss_type
        self.tis_cap = tis_cap

    def extra_repr(self) -> str:
        return (
            f"eps_low={self.eps_low}, eps_high={self.eps_high}, beta={self.beta}, loss_type={self.loss_type}, "
            f"tis_cap={self.tis_cap}"
        )

    def forward(
        self,
        logp: Tensor,
        old_logp: Tensor,
        advantages: Tensor,
        mask: Tensor,
        ref_logp: Tensor | None = None,
        num_tokens: int | Tensor | None = None,
        num_sequences: int | Tensor | None = None,
        sampler_logp: Tensor | None = None,
    ) -> GRPOLossOutput:
        """
        Args:
            logp: (N, T) the policy's log-probabilities of the completion tokens, with gradients.
            old_logp: (N, T) the rollout policy's log-probabilities (detached here).
            advantages: (N,) each completion's advantage.
            mask: (N, T) bool or 0/1, True for the completion tokens that count (up to and with EOS).
            ref_logp: (N, T) the reference policy's log-probabilities; needed when beta > 0.
            num_tokens: ``token_mean`` denominator: the whole rollout batch's completion tokens
                (default ``mask.sum()``), clamped at 1.
            num_sequences: ``sequence_mean`` denominator (default N), clamped at 1; sequences
                with no mask token contribute 0, so the caller leaves them out of it.
            sampler_logp: (N, T) the rollout engine's log-probabilities of the same tokens; with
                ``tis_cap`` set, the truncated importance weights multiply the policy term.
        """
        self._check(logp, old_logp, advantages, mask, ref_logp)
        if sampler_logp is not None and sampler_logp.shape != logp.shape:
            raise ValueError(f"GRPOLoss: sampler_logp {tuple(sampler_logp.shape)} must match logp {tuple(logp.shape)}")
        mask = mask.bool()
        zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
        log_ratio = torch.where(mask, logp - old_logp.detach(), zero)  # (N, T); 0 at masked tokens
        ratio = torch.exp(log_ratio)
        adv = advantages.detach().to(logp.dtype)[:, None]  # (N, 1)
        clipped = ratio.clamp(1 - self.eps_low, 1 + self.eps_high)
        per_token = -torch.minimum(ratio * adv, clipped * adv)  # (N, T)
        weights, capped = None, None
        if self.tis_cap is not None and sampler_logp is not None:
            weights, capped = tis_weights(old_logp, sampler_logp, mask, self.tis_cap)  # (N, T), detached
            per_token = per_token * weights
        kl = None
        if ref_logp is not None:  # (N, T); 0 at masked tokens
            kl = k3_kl(torch.where(mask, logp, zero), torch.where(mask, ref_logp.detach(), zero))
        if self.beta > 0 and kl is not None:  # _check: beta > 0 comes with ref_logp
            per_token = per_token + self.beta * kl
        loss = self._reduce(torch.where(mask, per_token, zero), mask, num_tokens, num_sequences)
        metrics = self._metrics(ratio, adv, mask, kl)
        if weights is not None and capped is not None:
            metrics["tis_weight_mean"] = _masked_mean(weights, mask)
            metrics["tis_clipped_frac"] = _masked_mean(capped.to(weights.dtype), mask)
        return GRPOLossOutput(loss, metrics)

    def _check(self, logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, ref_logp: Tensor | None) -> None:
        shapes = [old_logp.shape, mask.shape] + ([ref_logp.shape] if ref_logp is not None else [])
        if logp.dim() != 2 or any(shape != logp.shape for shape in shapes) or advantages.shape != logp.shape[:1]:
            ref = tuple(ref_logp.shape) if ref_logp is not None else None
            raise ValueError(
                f"GRPOLoss: shapes logp {tuple(logp.shape)}, old_logp {tuple(old_logp.shape)}, "
                f"mask {tuple(mask.shape)}, ref_logp {ref}, advantages {tuple(advantages.shape)} "
                "do not match (N, T), (N, T), (N, T), (N, T), (N,)"
            )
        if self.beta > 0 and ref_logp is None:
            raise ValueError(f"GRPOLoss: beta = {self.beta} > 0 needs ref_logp (or set beta = 0)")

    def _reduce(
        self, per_token: Tensor, mask: Tensor, num_tokens: int | Tensor | None, num_sequences: int | Tensor | None
    ) -> Tensor:
        """Scalar loss from the masked per-token losses (N, T) (zero at masked tokens)."""
        if self.loss_type == "token_mean":
            denominator = mask.sum() if num_tokens is None else num_tokens
            return per_token.sum() / _as_count(denominator, per_token)
        per_sequence = per_token.sum(1) / mask.sum(1).to(per_token.dtype).clamp_min(1.0)  # (N,)
        denominator = per_token.shape[0] if num_sequences is None else num_sequences
        return per_sequence.sum() / _as_count(denominator, per_token)

    def _metrics(self, ratio: Tensor, adv: Tensor, mask: Tensor, kl: Tensor | None) -> dict[str, Tensor]:
        ratio = ratio.detach()
        low = (ratio < 1 - self.eps_low) & (adv < 0)  # (N, T): the lower clip binds
        high = (ratio > 1 + self.eps_high) & (adv > 0)  # (N, T): the upper clip binds
        metrics = {
            "kl": _masked_mean(kl.detach(), mask) if kl is not None else ratio.new_zeros(()),
            "clip_frac_low": _masked_mean(low.to(ratio.dtype), mask),
            "clip_frac_high": _masked_mean(high.to(ratio.dtype), mask),
            "ratio_mean": _masked_mean(ratio, mask),
        }
        return metrics
