"""GRPO math (lit_mrrml/losses/grpo.py): group advantages, k3 and the clipped loss, by hand.

Checks 3, 4 and 5 of design/policy.md. std is the sample std (Bessel): for two values x, y it is
|x - y| / sqrt(2). The loss hand batch uses eps_low = 0.1, eps_high = 0.3 (clip range [0.9, 1.3])
and the ratios exp(0.5) = 1.648721, exp(-0.5) = 0.606531, 1 and exp(0.1) = 1.105171.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor
from torch.testing import assert_close

from lit_mrrml.losses import GRPOLoss, group_advantages
from lit_mrrml.losses.grpo import GRPOLossOutput, k3_kl, logp_gap, tis_weights

INV_SQRT2 = 1 / math.sqrt(2)  # 0.70710678
E_HALF, E_MINUS_HALF, E_TENTH = math.exp(0.5), math.exp(-0.5), math.exp(0.1)


def unit_weights(b: int, num_dimensions: int) -> Tensor:
    return torch.ones(b, num_dimensions)


# --- advantages ---------------------------------------------------------------------------------


def test_gdpo_policy_md_case_by_hand() -> None:
    # G = 2, dimensions (correctness, integer, format) = ([1, 1], [1, -1], [1, 0]), unit weights.
    # correctness: std 0 < floor -> a = [0, 0]
    # integer: mean 0, std sqrt2 -> a = [1, -1] / (sqrt2 + 1e-4) = +-0.70705678
    # format:  mean 0.5, std 1/sqrt2 -> a = [0.5, -0.5] / (0.70710678 + 1e-4) = +-0.70700680
    # A = +-1.41406358, batch: mean 0, std 1.41406358 * sqrt2 = 1.99978789
    # A / (1.99978789 + 1e-4) = +-0.70707142 (eps = 0: exactly +-1/sqrt2)
    rewards = torch.tensor([[[1.0, 1.0, 1.0], [1.0, -1.0, 0.0]]])  # (B=1, G=2, L=3)
    advantages = group_advantages(rewards, unit_weights(1, 3))
    assert_close(advantages, torch.tensor([[0.70707142, -0.70707142]]), atol=1e-6, rtol=0)
    assert_close(advantages, torch.tensor([[INV_SQRT2, -INV_SQRT2]]), atol=1e-3, rtol=0)
    exact = group_advantages(rewards, unit_weights(1, 3), eps=0.0)
    assert_close(exact, torch.tensor([[INV_SQRT2, -INV_SQRT2]]))


def test_gdpo_zero_std_group_gives_zero() -> None:
    # Prompt 0's rollouts all score 0.1 on both dimensions (the group mean of 0.1 is not exactly
    # 0.1 in float32: the floor must still zero it); prompt 1 varies: a = [-1/sqrt2, 1/sqrt2] per
    # dimension, A = [-sqrt2, sqrt2], and the batch mean stays 0, so prompt 0 keeps A = 0.
    rewards = torch.tensor([[[0.1, 0.1]] * 7, [[0.0, 0.0]] * 6 + [[1.0, 3.0]]])  # (B=2, G=7, L=2)
    advantages = group_advantages(rewards, unit_weights(2, 2))
    assert_close(advantages[0], torch.zeros(7), atol=1e-6, rtol=0)
    assert (advantages[1] != 0).all()


def test_gdpo_every_group_constant_gives_zeros_not_nan() -> None:
    # Every dimension below the floor: A = 0 everywhere, then (0 - 0) / (0 + eps) = 0; with
    # eps = 0 and no floor the zero std gives 0 too, not 0 / 0.
    rewards = torch.tensor([[[1.0, 2.0], [1.0, 2.0]], [[0.3, 0.3], [0.3, 0.3]]])  # (B=2, G=2, L=2)
    assert torch.equal(group_advantages(rewards, unit_weights(2, 2)), torch.zeros(2, 2))
    assert torch.equal(group_advantages(rewards, unit_weights(2, 2), std_floor=0.0, eps=0.0), torch.zeros(2, 2))


def test_weighted_zero_std_group_gives_zero() -> None:
    # Prompt 0: R = [2.5, 2.5, 2.5] -> (R - 2.5) / (0 + eps) = 0; prompt 1: R = [0, 1, 2] -> [-1, 0, 1].
    rewards = torch.tensor([[[2.5], [2.5], [2.5]], [[0.0], [1.0], [2.0]]])  # (B=2, G=3, L=1)
    advantages = group_advantages(rewards, unit_weights(2, 1), mode="weighted", eps=0.0)
    assert torch.equal(advantages[0], torch.zeros(3))
    assert_close(advantages[1], torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.equal(group_advantages(rewards, unit_weights(2, 1), mode="weighted")[0], torch.zeros(3))


def test_gdpo_near_constant_dimension_below_floor_gives_zero() -> None:
    # [1, 1 + 1e-5]: std 7.1e-6 < 1e-3 -> 0. Without the floor (and eps = 0) the same noise would
    # be a full-size +-1/sqrt2 advantage.
    noise = torch.tensor([[[1.0], [1.0 + 1e-5]]])  # (B=1, G=2, L=1)
    assert torch.equal(group_advantages(noise, unit_weights(1, 1)), torch.zeros(1, 2))
    unfloored = group_advantages(noise, unit_weights(1, 1), std_floor=0.0, eps=0.0)
    assert_close(unfloored, torch.tensor([[-INV_SQRT2, INV_SQRT2]]), atol=1e-3, rtol=0)


def test_gdpo_near_constant_dimension_beside_a_real_one_is_ignored() -> None:
    # Dimension 0 is noise below the floor, dimension 1 = [0, 1]: the result is dimension 1's alone.
    rewards = torch.tensor([[[1.0, 0.0], [1.0 + 1e-5, 1.0]]])  # (B=1, G=2, L=2)
    both = group_advantages(rewards, unit_weights(1, 2))
    assert_close(both, group_advantages(rewards[..., 1:], unit_weights(1, 1)))


def test_gdpo_three_rollouts_by_hand() -> None:
    # dimension 0: [0, 1, 2], mean 1, std 1 -> [-1, 0, 1]
    # dimension 1: [2, 2, 5], mean 3, std sqrt3 -> [-1, -1, 2] / sqrt3
    # weights [1, 2]: A = [-1 - 2/sqrt3, -2/sqrt3, 1 + 4/sqrt3] = [-2.1547005, -1.1547005, 3.3094011]
    # batch (one prompt): mean 0, std 2.9093129 -> [-0.7406218, -0.3968980, 1.1375198]
    rewards = torch.tensor([[[0.0, 2.0], [1.0, 2.0], [2.0, 5.0]]], dtype=torch.float64)
    weights = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    advantages = group_advantages(rewards, weights, eps=0.0)
    assert_close(advantages, torch.tensor([[-0.7406218, -0.3968980, 1.1375198]], dtype=torch.float64))


def test_gdpo_scaling_all_weights_together_changes_nothing() -> None:
    # A scales by 7 and the batch standardisation undoes it (exactly with eps = 0).
    g = torch.Generator().manual_seed(0)
    rewards = torch.randn(3, 4, 3, generator=g)  # (B=3, G=4, L=3)
    weights = torch.rand(3, 3, generator=g) + 0.1  # (B, L)
    assert_close(group_advantages(rewards, 7 * weights, eps=0.0), group_advantages(rewards, weights, eps=0.0))
    assert_close(group_advantages(rewards, 7 * weights), group_advantages(rewards, weights), atol=1e-3, rtol=0)


def test_gdpo_large_scale_dimension_does_not_dominate() -> None:
    # Dimension 1 runs opposite to dimension 0 and is 1000x larger; per-dimension standardisation
    # removes the scale, so with weights favouring dimension 0 the advantage follows its order.
    rewards = torch.tensor([[[0.0, 1.0], [1.0, 0.5], [3.0, 0.0]]])  # (B=1, G=3, L=2)
    weights = torch.tensor([[0.7, 0.3]])
    scaled = group_advantages(rewards * torch.tensor([1.0, 1000.0]), weights, eps=0.0)
    assert_close(scaled, group_advantages(rewards, weights, eps=0.0))
    assert scaled[0].argsort().tolist() == [0, 1, 2]


def test_gdpo_is_standardised_over_the_batch() -> None:
    g = torch.Generator().manual_seed(1)
    rewards = torch.randn(4, 8, 3, generator=g) * torch.tensor([1.0, 10.0, 0.1]) + 5.0
    advantages = group_advantages(rewards, torch.rand(4, 3, generator=g))
    assert advantages.shape == (4, 8)
    assert_close(advantages.mean(), torch.tensor(0.0), atol=1e-5, rtol=0)
    assert_close(advantages.std(), torch.tensor(1.0), atol=1e-3, rtol=0)


def test_weighted_by_hand() -> None:
    # Prompt 0, weights [0.5, 0.5]: dims [1, 0, 2] and [3, 0, 1] -> R = [2, 0, 1.5], mean 7/6,
    # deviations [5/6, -7/6, 1/3], sample var (25/36 + 49/36 + 4/36) / 2 = 13/12, std 1.0408330
    # -> A = [0.8006408, -1.1208971, 0.3202563] (eps = 0).
    # Prompt 1, weights [1, 0]: R = dimension 0 = [0, 1, 2] -> A = [-1, 0, 1].
    rewards = torch.tensor(
        [[[1.0, 3.0], [0.0, 0.0], [2.0, 1.0]], [[0.0, 5.0], [1.0, -5.0], [2.0, 0.0]]], dtype=torch.float64
    )
    weights = torch.tensor([[0.5, 0.5], [1.0, 0.0]], dtype=torch.float64)
    advantages = group_advantages(rewards, weights, mode="weighted", eps=0.0)
    expected = torch.tensor([[0.8006408, -1.1208971, 0.3202563], [-1.0, 0.0, 1.0]], dtype=torch.float64)
    assert_close(advantages, expected)
    # eps = 1e-4: A = deviations / (1.0408330 + 1e-4) = [0.8005639, -1.1207894, 0.3202255]
    with_eps = group_advantages(rewards, weights, mode="weighted")
    assert_close(with_eps[0], torch.tensor([0.8005639, -1.1207894, 0.3202255], dtype=torch.float64))


@pytest.mark.parametrize("mode", ["gdpo", "weighted"])
def test_one_rollout_per_prompt_is_refused(mode: str) -> None:
    with pytest.raises(ValueError, match=r"G >= 2"):
        group_advantages(torch.zeros(3, 1, 2), torch.ones(3, 2), mode=mode)  # type: ignore[arg-type]


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match=r"rewards \(3, 4, 2\) and weights \(3, 5\)"):
        group_advantages(torch.zeros(3, 4, 2), torch.ones(3, 5))
    with pytest.raises(ValueError, match=r"rewards \(3, 4\)"):
        group_advantages(torch.zeros(3, 4), torch.ones(3, 4))


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="mode must be"):
        group_advantages(torch.zeros(1, 2, 1), torch.ones(1, 1), mode="sum")  # type: ignore[arg-type]


# --- k3 -----------------------------------------------------------------------------------------


def test_k3_value_by_hand() -> None:
    # ref - logp = 0.5: e^0.5 - 0.5 - 1 = 0.14872127; ref - logp = 0: 1 - 0 - 1 = 0
    logp = torch.tensor([-1.5, -2.0])
    ref = torch.tensor([-1.0, -2.0])
    assert_close(k3_kl(logp, ref), torch.tensor([E_HALF - 1.5, 0.0]))


def test_k3_gradient_by_hand() -> None:
    # d/dlogp [exp(ref - logp) - (ref - logp) - 1] = -exp(ref - logp) + 1 = 1 - e^0.5 = -0.64872127
    logp = torch.tensor([-1.5], requires_grad=True)
    k3_kl(logp, torch.tensor([-1.0])).sum().backward()
    assert logp.grad is not None
    assert_close(logp.grad, torch.tensor([1 - E_HALF]))


def test_kl_penalty_enters_the_loss_with_beta() -> None:
    # A = 0 and ratio 1: l_t = beta * k3 = 0.1 * 0.14872127 per token
    logp = torch.full((1, 2), -1.5)
    output = GRPOLoss(beta=0.1)(logp, logp, torch.zeros(1), torch.ones(1, 2), ref_logp=torch.full((1, 2), -1.0))
    assert_close(output.loss, torch.tensor(0.1 * (E_HALF - 1.5)))
    assert_close(output.metrics["kl"], torch.tensor(E_HALF - 1.5))


# --- the clipped objective ----------------------------------------------------------------------


def asymmetric() -> GRPOLoss:
    return GRPOLoss(eps_low=0.1, eps_high=0.3)  # clip range [0.9, 1.3]


@pytest.mark.parametrize(
    ("log_ratio", "advantage", "expected_loss", "expected_grad"),
    [
        # A > 0: l = -A min(rho, clip(rho)); grad -A rho where the unclipped term is the min, else 0
        (0.5, 2.0, -2 * 1.3, 0.0),  # rho 1.648721 > 1.3: upper clip binds, no gradient
        (-0.5, 2.0, -2 * E_MINUS_HALF, -2 * E_MINUS_HALF),  # rho 0.606531: min keeps rho (pessimistic)
        (0.0, 2.0, -2.0, -2.0),  # rho 1
        (0.1, 2.0, -2 * E_TENTH, -2 * E_TENTH),  # rho 1.105171 inside [0.9, 1.3]
        # A < 0: l = |A| max(rho, clip(rho))
        (0.5, -0.5, 0.5 * E_HALF, 0.5 * E_HALF),  # rho 1.648721: max keeps rho, gradient flows
        (-0.5, -0.5, 0.5 * 0.9, 0.0),  # rho 0.606531 < 0.9: lower clip binds, no gradient
        (0.0, -0.5, 0.5, 0.5),
        (0.1, -0.5, 0.5 * E_TENTH, 0.5 * E_TENTH),
    ],
)
def test_clipped_objective_per_token_by_hand(
    log_ratio: float, advantage: float, expected_loss: float, expected_grad: float
) -> None:
    logp = torch.tensor([[log_ratio - 1.0]], dtype=torch.float64, requires_grad=True)
    old = torch.tensor([[-1.0]], dtype=torch.float64)
    output = asymmetric()(logp, old, torch.tensor([advantage], dtype=torch.float64), torch.ones(1, 1))
    output.loss.backward()
    assert logp.grad is not None
    assert_close(output.loss, torch.tensor(expected_loss, dtype=torch.float64))
    assert_close(logp.grad, torch.tensor([[expected_grad]], dtype=torch.float64))


def hand_batch() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Rows A = 2 and A = -0.5, log-ratios [0.5, -0.5, 0, 0.1] each: (logp, old_logp, A, mask)."""
    log_ratio = torch.tensor([[0.5, -0.5, 0.0, 0.1]] * 2)
    old = torch.full((2, 4), -2.0)
    return old + log_ratio, old, torch.tensor([2.0, -0.5]), torch.ones(2, 4, dtype=torch.bool)


def test_token_mean_and_clip_fractions_of_the_hand_batch() -> None:
    # l = [-2.6, -1.213061, -2, -2.210342] and [0.824361, 0.45, 0.5, 0.552585], mean -0.587132
    # low clip only at (row 1, rho 0.607), high clip only at (row 0, rho 1.649): 1/8 each
    # ratio mean 2 (1.648721 + 0.606531 + 1 + 1.105171) / 8 = 1.090106
    output = asymmetric()(*hand_batch())
    per_token = [-2.6, -2 * E_MINUS_HALF, -2.0, -2 * E_TENTH, 0.5 * E_HALF, 0.45, 0.5, 0.5 * E_TENTH]
    assert_close(output.loss, torch.tensor(sum(per_token) / 8))
    assert_close(output.metrics["clip_frac_low"], torch.tensor(0.125))
    assert_close(output.metrics["clip_frac_high"], torch.tensor(0.125))
    assert_close(output.metrics["ratio_mean"], torch.tensor(2 * (E_HALF + E_MINUS_HALF + 1 + E_TENTH) / 8))
    assert_close(output.metrics["kl"], torch.tensor(0.0))


def test_metrics_are_detached() -> None:
    logp, old, advantages, mask = hand_batch()
    output = GRPOLoss(beta=0.1)(logp.requires_grad_(), old, advantages, mask, ref_logp=old)
    assert isinstance(output, GRPOLossOutput)
    assert set(output.metrics) == {"kl", "clip_frac_low", "clip_frac_high", "ratio_mean"}
    assert output.loss.requires_grad
    assert not any(value.requires_grad for value in output.metrics.values())


def test_sequence_mean_by_hand() -> None:
    # eps 0.2, all ratios inside [0.8, 1.2]. Row 0, A = 1, 3 tokens with rho [1, e^0.1, e^-0.05]:
    # token mean -(1 + 1.105171 + 0.951229) / 3 = -1.018800. Row 1, A = -2, 1 token with rho 1:
    # mean 2. Row 2 is fully masked: 0.
    # sequence_mean: (-1.018800 + 2 + 0) / 3 = 0.327067, or / 2 = 0.490600 with num_sequences = 2;
    # token_mean for contrast: (-3.056400 + 2) / 4 = -0.264100.
    old = torch.zeros(3, 3)
    logp = torch.tensor([[0.0, 0.1, -0.05], [0.0, 9.0, 9.0], [9.0, 9.0, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]], dtype=torch.bool)
    advantages = torch.tensor([1.0, -2.0, 3.0])
    row0 = -(1 + E_TENTH + math.exp(-0.05)) / 3
    loss = GRPOLoss(loss_type="sequence_mean")
    assert_close(loss(logp, old, advantages, mask).loss, torch.tensor((row0 + 2) / 3))
    assert_close(loss(logp, old, advantages, mask, num_sequences=2).loss, torch.tensor((row0 + 2) / 2))
    assert_close(GRPOLoss()(logp, old, advantages, mask).loss, torch.tensor((3 * row0 + 2) / 4))


def test_token_mean_micro_batches_add_up_to_one_batch() -> None:
    # Two micro-batches, each divided by the whole batch's token count, sum to the one-batch loss
    # and give the same gradients (float64, mixed clipping, a KL term, varied lengths).
    g = torch.Generator().manual_seed(0)
    n, t = 6, 5
    old = -torch.rand(n, t, generator=g, dtype=torch.float64) * 3
    logp = (old + 0.5 * torch.randn(n, t, generator=g, dtype=torch.float64)).requires_grad_()
    ref = old + 0.3 * torch.randn(n, t, generator=g, dtype=torch.float64)
    advantages = torch.randn(n, generator=g, dtype=torch.float64)
    mask = torch.arange(t)[None, :] < torch.tensor([5, 1, 3, 0, 4, 2])[:, None]  # (N, T)
    loss = GRPOLoss(eps_low=0.1, eps_high=0.3, beta=0.05)

    whole = loss(logp, old, advantages, mask, ref_logp=ref).loss
    (whole_grad,) = torch.autograd.grad(whole, logp)
    total = int(mask.sum())  # 15
    parts = [
        loss(logp[rows], old[rows], advantages[rows], mask[rows], ref_logp=ref[rows], num_tokens=total).loss
        for rows in (slice(0, 2), slice(2, 6))
    ]
    (parts_grad,) = torch.autograd.grad(sum(parts), logp)
    assert_close(sum(parts), whole, atol=1e-6, rtol=0)
    assert_close(parts_grad, whole_grad, atol=1e-6, rtol=0)
    assert whole_grad.abs().sum() > 0


@pytest.mark.parametrize("loss_type", ["token_mean", "sequence_mean"])
def test_all_masked_gives_zero_loss_and_zero_gradient(loss_type: str) -> None:
    logp = torch.full((2, 3), -1.0, requires_grad=True)
    output = GRPOLoss(beta=0.1, loss_type=loss_type)(  # type: ignore[arg-type]
        logp, torch.zeros(2, 3), torch.tensor([1.0, -1.0]), torch.zeros(2, 3), ref_logp=torch.zeros(2, 3)
    )
    output.loss.backward()
    assert output.loss.item() == 0.0
    assert logp.grad is not None and torch.equal(logp.grad, torch.zeros(2, 3))
    assert all(torch.isfinite(value) for value in output.metrics.values())


def test_junk_after_eos_does_not_leak() -> None:
    # Masked log-probabilities of 1e4 would overflow exp(); they are neutralised first.
    logp, old, advantages, mask = hand_batch()
    mask[:, 2:] = False
    junk = torch.where(mask, logp, torch.tensor(1e4)).requires_grad_()
    clean = torch.where(mask, logp, torch.tensor(0.0)).requires_grad_()
    loss = GRPOLoss(beta=0.1)
    junk_out = loss(junk, old, advantages, mask, ref_logp=old)
    clean_out = loss(clean, old, advantages, mask, ref_logp=old)
    junk_out.loss.backward()
    clean_out.loss.backward()
    assert_close(junk_out.loss, clean_out.loss)
    assert_close(junk_out.metrics, clean_out.metrics)
    assert junk.grad is not None and clean.grad is not None
    assert_close(junk.grad, clean.grad)


def test_first_pass_ratio_is_exactly_one_and_nothing_is_clipped() -> None:
    # old_logp = logp: rho = exp(0) = 1 exactly; l = -A, gradient -A / num_tokens on each token.
    logp = torch.randn(3, 4, generator=torch.Generator().manual_seed(0)).requires_grad_()
    advantages = torch.tensor([1.5, -2.0, 0.0])
    output = GRPOLoss()(logp, logp.detach(), advantages, torch.ones(3, 4))
    output.loss.backward()
    assert output.metrics["ratio_mean"].item() == 1.0
    assert output.metrics["clip_frac_low"].item() == 0.0
    assert output.metrics["clip_frac_high"].item() == 0.0
    assert logp.grad is not None
    assert_close(logp.grad, (-advantages / 12)[:, None].expand(3, 4))


def test_kl_metric_is_zero_when_ref_equals_logp() -> None:
    logp, old, advantages, mask = hand_batch()
    assert GRPOLoss(beta=0.1)(logp, old, advantages, mask, ref_logp=logp.clone()).metrics["kl"].item() == 0.0


def test_kl_is_reported_with_beta_zero_but_not_added() -> None:
    # beta = 0: the reference changes the kl metric, not the loss.
    logp, old, advantages, mask = hand_batch()
    plain = GRPOLoss()(logp, old, advantages, mask)
    with_ref = GRPOLoss()(logp, old, advantages, mask, ref_logp=logp + 0.5)
    assert_close(with_ref.loss, plain.loss)
    assert_close(with_ref.metrics["kl"], torch.tensor(E_HALF - 1.5))


def test_beta_without_reference_is_refused() -> None:
    logp, old, advantages, mask = hand_batch()
    with pytest.raises(ValueError, match="needs ref_logp"):
        GRPOLoss(beta=0.04)(logp, old, advantages, mask)


def test_loss_shape_mismatch_is_refused() -> None:
    logp, old, _, mask = hand_batch()
    with pytest.raises(ValueError, match=r"advantages \(3,\)"):
        GRPOLoss()(logp, old, torch.zeros(3), mask)
    with pytest.raises(ValueError, match=r"mask \(2, 3\)"):
        GRPOLoss()(logp, old, torch.zeros(2), mask[:, :3])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eps_low": 1.0}, "eps_low"),
        ({"eps_low": -0.1}, "eps_low"),
        ({"eps_high": -0.1}, "eps_high"),
        ({"beta": -1.0}, "beta"),
        ({"loss_type": "seq"}, "loss_type"),
        ({"tis_cap": 0.5}, "tis_cap"),
    ],
)
def test_invalid_settings_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GRPOLoss(**kwargs)


# --- truncated importance sampling --------------------------------------------------------------

LN3 = math.log(3.0)  # 1.0986123


def tis_row() -> tuple[Tensor, Tensor]:
    """One row of 3 tokens, old_logp - sampler_logp = [-0.5, 0.5, ln 3]: (old_logp, sampler_logp)."""
    old = torch.full((1, 3), -1.0, dtype=torch.float64)
    return old, old - torch.tensor([[-0.5, 0.5, LN3]], dtype=torch.float64)


def test_tis_weights_by_hand() -> None:
    # exp([-0.5, 0.5, ln 3]) = [0.606531, 1.648721, 3], capped at 2: [0.606531, 1.648721, 2]
    old, sampler = tis_row()
    weights, capped = tis_weights(old, sampler, torch.ones(1, 3), cap=2.0)
    assert_close(weights, torch.tensor([[E_MINUS_HALF, E_HALF, 2.0]], dtype=torch.float64))
    assert capped.tolist() == [[False, False, True]]
    masked, masked_capped = tis_weights(old, sampler, torch.tensor([[1, 1, 0]]), cap=2.0)
    assert_close(masked, torch.tensor([[E_MINUS_HALF, E_HALF, 0.0]], dtype=torch.float64))
    assert not masked_capped.any()


def test_tis_weights_the_policy_term_by_hand() -> None:
    # First pass (rho = 1), A = 2: l_t = -2 w_t. Without the correction: -2 a token, loss -2.
    # With cap 2: -2 (0.606531 + 1.648721 + 2) / 3 = -2.836835; d loss / d logp_t = -2 w_t / 3
    # = [-0.404354, -1.099147, -1.333333]; weight mean 1.418417, one token of three capped.
    old, sampler = tis_row()
    advantages = torch.tensor([2.0], dtype=torch.float64)
    logp = old.clone().requires_grad_()
    corrected = GRPOLoss(tis_cap=2.0)(logp, old, advantages, torch.ones(1, 3), sampler_logp=sampler)
    corrected.loss.backward()
    w = [E_MINUS_HALF, E_HALF, 2.0]
    assert_close(corrected.loss, torch.tensor(-2 * sum(w) / 3, dtype=torch.float64))
    assert logp.grad is not None
    assert_close(logp.grad, torch.tensor([[-2 * x / 3 for x in w]], dtype=torch.float64))
    assert_close(corrected.metrics["tis_weight_mean"], torch.tensor(sum(w) / 3, dtype=torch.float64))
    assert_close(corrected.metrics["tis_clipped_frac"], torch.tensor(1 / 3, dtype=torch.float64))
    plain = GRPOLoss()(old, old, advantages, torch.ones(1, 3))
    assert_close(plain.loss, torch.tensor(-2.0, dtype=torch.float64))
    assert "tis_weight_mean" not in plain.metrics


def test_tis_leaves_the_kl_term_unweighted() -> None:
    # A = 0: the policy term is 0 whatever w, and l_t = beta k3 = 0.1 (e^0.5 - 1.5) with or without TIS.
    old, sampler = tis_row()
    ref = old + 0.5
    loss = GRPOLoss(beta=0.1, tis_cap=2.0)
    out = loss(old, old, torch.zeros(1, dtype=torch.float64), torch.ones(1, 3), ref, sampler_logp=sampler)
    assert_close(out.loss, torch.tensor(0.1 * (E_HALF - 1.5), dtype=torch.float64))


def test_exact_sampler_logprobs_or_no_cap_change_nothing() -> None:
    # sampler_logp = old_logp: w = 1 everywhere; tis_cap None: the sampler log-probs are ignored.
    logp, old, advantages, mask = hand_batch()
    plain = asymmetric()(logp, old, advantages, mask)
    exact = GRPOLoss(eps_low=0.1, eps_high=0.3, tis_cap=2.0)(logp, old, advantages, mask, sampler_logp=old.clone())
    assert_close(exact.loss, plain.loss)
    assert exact.metrics["tis_weight_mean"].item() == 1.0 and exact.metrics["tis_clipped_frac"].item() == 0.0
    ignored = asymmetric()(logp, old, advantages, mask, sampler_logp=old - 5.0)
    assert_close(ignored.loss, plain.loss)


def test_logp_gap_by_hand() -> None:
    # |sampler - old| = [0.5, 0.5, ln 3]: mean 0.699537; with the last token masked: 0.5
    old, sampler = tis_row()
    assert_close(logp_gap(sampler, old, torch.ones(1, 3)), torch.tensor((1 + LN3) / 3, dtype=torch.float64))
    assert_close(logp_gap(sampler, old, torch.tensor([[1, 1, 0]])), torch.tensor(0.5, dtype=torch.float64))
    assert logp_gap(sampler, old, torch.zeros(1, 3)).item() == 0.0


def test_sampler_logp_shape_mismatch_is_refused() -> None:
    logp, old, advantages, mask = hand_batch()
    with pytest.raises(ValueError, match=r"sampler_logp \(2, 3\)"):
        GRPOLoss(tis_cap=2.0)(logp, old, advantages, mask, sampler_logp=old[:, :3])
