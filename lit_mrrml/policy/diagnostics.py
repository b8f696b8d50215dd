"""What a rollout batch says about the run: reward statistics per dimension, completion lengths,
and the reward-hacking alarms (Spearman between completion length and each dimension's reward).

A policy that learns to please a reward model through a surface cue (length is the usual one)
shows it here before it shows on HealthBench: a length correlation that climbs towards 1 on every
dimension means the reward follows length, not content.
"""

from __future__ import annotations

from torch import Tensor
from torchmetrics.functional import spearman_corrcoef


def length_correlation(lengths: Tensor, values: Tensor) -> Tensor | None:
    """Spearman's rho between completion lengths (N,) and values (N,) (ties get their mean rank);
    None when it is undefined: fewer than 3 rows, or either side constant."""
    if lengths.numel() < 3 or bool((lengths == lengths[0]).all()) or bool((values == values[0]).all()):
        return None
    return spearman_corrcoef(lengths.double(), values.double()).float()


def reward_metrics(
    rewards: Tensor, totals: Tensor, lengths: Tensor, names: list[str], num_generations: int, std_floor: float
) -> dict[str, Tensor]:
    """rewards (N, L) prompt-major in groups of G, totals (N,), lengths (N,) -> namespaced metrics."""
    out: dict[str, Tensor] = {}
    groups = rewards.view(-1, num_generations, rewards.shape[1])  # (B, G, L)
    zero_std = (groups.std(1) < std_floor).float().mean(0)  # (L,): share of groups without signal
    columns = [*zip(names, rewards.unbind(1), strict=True), ("total", totals)]
    for name, values in columns:
        out[f"reward/{name}/mean"] = values.mean()
        out[f"reward/{name}/std"] = values.std() if values.numel() > 1 else values.new_zeros(())
        rho = length_correlation(lengths, values)
        if rho is not None:
            out[f"hacking/length_corr/{name}"] = rho
    for name, share in zip(names, zero_std.unbind(0), strict=True):
        out[f"frac_zero_std/{name}"] = share
    return out
