"""GPRCLoss (lit_mrrml/losses/gprc.py): terms, reductions, padding, degenerate and invalid inputs,
metrics, properties and a small optimisation run.

The hand batch (K = 3, d = 2), used for the terms and the reduction rules:
- unit 0, n = 3, axis [3, 0] (e = [1, 0]): z = [2,0], [1,1], [0,0]; r = 2, 1, 0.
  L_rank = (2 * 0.31326169 + 0.12692801) / 3 = 0.25115046 (pair gaps 1, 2, 1)
  L_axis = (2 - sqrt2) / 3 = 0.19526215 (pair differences [1,-1], [2,0], [1,1])
  L_perp = 0.25 (lambda_1 = 0.5, residual [0, 1], ||d||^2 = 4)
- unit 1, n = 2, axis [0, 2] (e = [0, 1]): z = [0,0], [0,1], padding; r = 0, 1, padding.
  L_rank = -log sigmoid(-1) = 1.31326169; L_axis = 1 - cos([0,-1], [0,1]) = 2; no L_perp.
Batch: L_rank = mean over units = 0.78220607; L_axis = 1.09763107;
L_perp = 0.25 (only the K >= 3 unit); L_center = (4 + 1 + 0 + 0 + 1) / 5 = 1.2 (valid responses).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import Tensor, nn
from torch.testing import assert_close

from lit_mrrml.losses import GPRCLoss, GPRCOutput
from lit_mrrml.losses.functional import anchored_rewards, response_mask

NLS_1 = 0.31326169  # -log sigmoid(1)
NLS_2 = 0.12692801  # -log sigmoid(2)
NLS_HALF = 0.47407698  # -log sigmoid(0.5)
NLS_MINUS_1 = 1.31326169  # -log sigmoid(-1)
RANK = ((2 * NLS_1 + NLS_2) / 3 + NLS_MINUS_1) / 2  # 0.78220607
AXIS = ((2 - math.sqrt(2)) / 3 + 2.0) / 2  # 1.09763107
PERP = 0.25
CENTER = 1.2
PAD = 123.0


def hand_batch() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    z = torch.tensor([[[2.0, 0.0], [1.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.0], [PAD, -PAD]]])
    rewards = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, PAD]])
    axes = torch.tensor([[3.0, 0.0], [0.0, 2.0]])
    return z, rewards, axes, torch.tensor([3, 2])


# --- terms and total ---------------------------------------------------------------------------


def test_returns_named_tuple_with_scalar_loss() -> None:
    out = GPRCLoss()(*hand_batch())
    assert isinstance(out, GPRCOutput)
    loss, metrics = out
    assert loss.shape == ()
    assert isinstance(metrics, dict)


def test_each_term_by_hand() -> None:
    _, metrics = GPRCLoss()(*hand_batch())
    assert_close(metrics["loss_rank"], torch.tensor(RANK))
    assert_close(metrics["loss_axis"], torch.tensor(AXIS))
    assert_close(metrics["loss_perp"], torch.tensor(PERP))
    assert_close(metrics["loss_center"], torch.tensor(CENTER))


def test_total_is_weighted_sum_of_terms() -> None:
    loss, metrics = GPRCLoss(alpha=0.1, beta=0.2, gamma=0.3)(*hand_batch())
    assert_close(loss, torch.tensor(RANK + 0.1 * AXIS + 0.2 * PERP + 0.3 * CENTER))  # 1.30196918
    recomposed = (
        metrics["loss_rank"] + 0.1 * metrics["loss_axis"] + 0.2 * metrics["loss_perp"] + 0.3 * metrics["loss_center"]
    )
    assert_close(loss.detach(), recomposed)


def test_margin_enters_rank_term_with_rank_gap() -> None:
    z, rewards, axes, _ = hand_batch()
    _, metrics = GPRCLoss(margin=0.5)(z[:1], rewards[:1], axes[:1])
    assert_close(metrics["loss_rank"], torch.tensor((2 * NLS_HALF + NLS_1) / 3))


def test_default_num_responses_is_k() -> None:
    z, rewards, axes, _ = hand_batch()
    loss_default, _ = GPRCLoss()(z[:1], rewards[:1], axes[:1])
    loss_explicit, _ = GPRCLoss()(z[:1], rewards[:1], axes[:1], torch.tensor([3]))
    assert_close(loss_default, loss_explicit)


# --- reduction rules ---------------------------------------------------------------------------


def test_rank_is_mean_of_unit_means_not_pooled_over_pairs() -> None:
    _, metrics = GPRCLoss()(*hand_batch())
    pooled_over_pairs = (2 * NLS_1 + NLS_2 + NLS_MINUS_1) / 4
    assert not math.isclose(metrics["loss_rank"].item(), pooled_over_pairs, rel_tol=1e-3)
    assert_close(metrics["loss_rank"], torch.tensor(RANK))


def test_perp_averages_only_units_with_intermediates() -> None:
    _, metrics = GPRCLoss()(*hand_batch())
    assert_close(metrics["loss_perp"], torch.tensor(PERP))  # not PERP / 2


def test_perp_is_zero_when_no_unit_has_three_responses() -> None:
    z, rewards, axes, _ = hand_batch()
    _, metrics = GPRCLoss()(z, rewards, axes, torch.tensor([2, 2]))
    assert_close(metrics["loss_perp"], torch.tensor(0.0))


def test_center_averages_over_valid_responses() -> None:
    _, metrics = GPRCLoss()(*hand_batch())
    per_unit_mean = (5 / 3 + 1 / 2) / 2
    assert not math.isclose(metrics["loss_center"].item(), per_unit_mean, rel_tol=1e-3)
    assert_close(metrics["loss_center"], torch.tensor(CENTER))


# --- padding -----------------------------------------------------------------------------------

FILLS: dict[str, Callable[[tuple[int, ...]], Tensor]] = {
    "large_random": lambda shape: 1e6 * torch.randn(shape, generator=torch.Generator().manual_seed(7)),
    "nan": lambda shape: torch.full(shape, float("nan")),
    "inf": lambda shape: torch.full(shape, float("inf")),
    "neg_inf": lambda shape: torch.full(shape, float("-inf")),
}


def padded_run(fill: Callable[[tuple[int, ...]], Tensor]) -> tuple[Tensor, dict, Tensor, Tensor, Tensor, Tensor]:
    """Loss, metrics and grads for a fixed batch with num_responses (4, 3, 2) and padding from `fill`."""
    g = torch.Generator().manual_seed(0)
    b, k, d = 3, 4, 3
    num_responses = torch.tensor([4, 3, 2])
    pad = ~response_mask(num_responses, k)
    z, rewards = torch.randn(b, k, d, generator=g), torch.randn(b, k, generator=g)
    z[pad], rewards[pad] = fill((int(pad.sum()), d)), fill((int(pad.sum()),))
    axes = torch.randn(b, d, generator=g)
    z, rewards, axes = z.requires_grad_(), rewards.requires_grad_(), axes.requires_grad_()
    loss, metrics = GPRCLoss(alpha=0.3, beta=0.5, gamma=0.2, margin=0.1)(
        z, rewards, axes, num_responses, torch.tensor([0, 1, 0])
    )
    loss.backward()
    return loss, metrics, z.grad, rewards.grad, axes.grad, pad


@pytest.mark.parametrize("fill", FILLS.values(), ids=FILLS.keys())
def test_padding_does_not_change_loss_or_metrics(fill: Callable) -> None:
    loss, metrics, *_ = padded_run(fill)
    loss_ref, metrics_ref, *_ = padded_run(torch.zeros)
    assert torch.isfinite(loss)
    assert_close(loss, loss_ref)
    assert metrics.keys() == metrics_ref.keys()
    for name in metrics:
        assert_close(metrics[name], metrics_ref[name], equal_nan=True, msg=name)


@pytest.mark.parametrize("fill", FILLS.values(), ids=FILLS.keys())
def test_padding_does_not_change_gradients(fill: Callable) -> None:
    _, _, z_grad, r_grad, a_grad, pad = padded_run(fill)
    _, _, z_grad_ref, r_grad_ref, a_grad_ref, _ = padded_run(torch.zeros)
    assert_close(z_grad[~pad], z_grad_ref[~pad])
    assert_close(r_grad[~pad], r_grad_ref[~pad])
    assert_close(a_grad, a_grad_ref)


@pytest.mark.parametrize("fill", FILLS.values(), ids=FILLS.keys())
def test_padding_rows_get_zero_gradient(fill: Callable) -> None:
    _, _, z_grad, r_grad, _, pad = padded_run(fill)
    assert torch.equal(z_grad[pad], torch.zeros_like(z_grad[pad]))
    assert torch.equal(r_grad[pad], torch.zeros_like(r_grad[pad]))
    assert z_grad[~pad].abs().sum() > 0  # the real rows do get gradient


# --- plain Bradley-Terry baseline --------------------------------------------------------------


def test_zero_weights_equal_pairwise_bradley_terry() -> None:
    g = torch.Generator().manual_seed(1)
    z, rewards, axes = torch.randn(4, 4, 3, generator=g), torch.randn(4, 4, generator=g), torch.randn(4, 3, generator=g)
    num_responses = torch.tensor([4, 3, 2, 4])
    loss, _ = GPRCLoss(alpha=0.0, beta=0.0, gamma=0.0)(z, rewards, axes, num_responses)
    unit_means = []
    for b, n in enumerate(num_responses.tolist()):
        terms = [
            -math.log(1 / (1 + math.exp(-(rewards[b, j] - rewards[b, k]).item())))
            for j in range(n)
            for k in range(j + 1, n)
        ]
        unit_means.append(sum(terms) / len(terms))
    assert_close(loss, torch.tensor(sum(unit_means) / len(unit_means)))


def test_zero_weights_k2_equal_chosen_rejected_loss_and_grad() -> None:
    g = torch.Generator().manual_seed(2)
    rewards = torch.randn(5, 2, generator=g, requires_grad=True)
    z, axes = torch.randn(5, 2, 3, generator=g), torch.randn(5, 3, generator=g)
    loss, _ = GPRCLoss(alpha=0.0, beta=0.0, gamma=0.0)(z, rewards, axes)
    (grad,) = torch.autograd.grad(loss, rewards)
    chosen, rejected = rewards[:, 0], rewards[:, 1]
    expected = -F.logsigmoid(chosen - rejected).mean()
    (grad_expected,) = torch.autograd.grad(expected, rewards)
    assert_close(loss, expected)
    assert_close(grad, grad_expected)


# --- degenerate inputs -------------------------------------------------------------------------


def assert_finite_loss_and_grads(z: Tensor, rewards: Tensor, axes: Tensor, num_responses: Tensor) -> dict:
    z, rewards, axes = z.requires_grad_(), rewards.requires_grad_(), axes.requires_grad_()
    loss, metrics = GPRCLoss(alpha=1.0, beta=1.0, gamma=1.0)(z, rewards, axes, num_responses)
    loss.backward()
    assert torch.isfinite(loss)
    for name, grad in (("z", z.grad), ("rewards", rewards.grad), ("axes", axes.grad)):
        assert torch.isfinite(grad).all(), name
    return metrics


def test_zero_segment_is_finite() -> None:
    # z_1 == z_K: the reference segment has zero length.
    z = torch.tensor([[[1.0, 1.0], [2.0, 1.0], [1.0, 1.0]], [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]]])
    assert_finite_loss_and_grads(
        z, torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.0, 0.0]]), torch.ones(2, 2), torch.tensor([3, 3])
    )


def test_identical_embeddings_are_finite() -> None:
    z = torch.full((2, 3, 4), 0.7)
    metrics = assert_finite_loss_and_grads(z, torch.zeros(2, 3), torch.randn(2, 4), torch.tensor([3, 2]))
    assert_close(metrics["loss_axis"], torch.tensor(1.0))  # cos of a zero difference is 0
    assert_close(metrics["loss_perp"], torch.tensor(0.0))
    assert_close(metrics["loss_rank"], torch.tensor(math.log(2.0)))


def test_zero_axes_are_finite() -> None:
    z = torch.tensor([[[2.0, 0.0], [1.0, 1.0], [0.0, 0.0]]])
    metrics = assert_finite_loss_and_grads(z, torch.tensor([[2.0, 1.0, 0.0]]), torch.zeros(1, 2), torch.tensor([3]))
    assert_close(metrics["loss_axis"], torch.tensor(1.0))


# --- invalid inputs ----------------------------------------------------------------------------


@pytest.mark.parametrize("num_responses", [[1, 3], [2, 4], [0, 2]])
def test_num_responses_out_of_range_raises(num_responses: list[int]) -> None:
    z, rewards, axes, _ = hand_batch()
    with pytest.raises(ValueError, match="num_responses"):
        GPRCLoss()(z, rewards, axes, torch.tensor(num_responses))


def test_mismatched_rewards_shape_raises() -> None:
    z, rewards, axes, n = hand_batch()
    with pytest.raises(ValueError, match="shapes"):
        GPRCLoss()(z, rewards[:, :2], axes, n)


def test_mismatched_axes_shape_raises() -> None:
    z, rewards, _, n = hand_batch()
    with pytest.raises(ValueError, match="shapes"):
        GPRCLoss()(z, rewards, torch.ones(2, 5), n)


def test_mismatched_batch_size_raises() -> None:
    z, rewards, axes, n = hand_batch()
    with pytest.raises(ValueError, match="shapes"):
        GPRCLoss()(z, rewards[:1], axes[:1], n)


@pytest.mark.parametrize("n", [torch.tensor([3]), torch.tensor([3, 2, 2])])
def test_num_responses_wrong_shape_raises(n: Tensor) -> None:
    z, rewards, axes, _ = hand_batch()
    with pytest.raises(ValueError, match="shape"):
        GPRCLoss()(z, rewards, axes, n)


@pytest.mark.parametrize("name", ["alpha", "beta", "gamma", "margin"])
def test_negative_weight_raises(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        GPRCLoss(**{name: -0.1})


# --- metrics -----------------------------------------------------------------------------------


def metrics_batch() -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Three units, dimensions (4, 1, 4); see tests/losses/test_statistics.py for the per-unit numbers."""
    z = torch.tensor(
        [
            [[2.0, 0.0], [1.0, 1.0], [0.0, 0.0]],  # ordered, between, cos 1, perp ratio 1/2, margin 2
            [[2.0, 0.0], [3.0, 1.0], [0.0, 0.0]],  # 2/3 pairs, not between, cos 0, ratio sqrt2/2, margin 1
            [[0.0, 0.0], [0.0, 1.0], [PAD, PAD]],  # K = 2: 0/1 pairs, cos -1, margin -1
        ]
    )
    rewards = torch.tensor([[2.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 1.0, PAD]])
    axes = torch.tensor([[5.0, 0.0], [0.0, 0.5], [0.0, 3.0]])
    return z, rewards, axes, torch.tensor([3, 3, 2]), torch.tensor([4, 1, 4])


def test_metrics_overall_by_hand() -> None:
    _, m = GPRCLoss()(*metrics_batch())
    assert_close(m["pair_acc"], torch.tensor(5 / 7))
    assert_close(m["order_acc"], torch.tensor(0.5))
    assert_close(m["betweenness"], torch.tensor(0.5))
    assert_close(m["axis_cos"], torch.tensor(0.0))
    assert_close(m["perp_ratio"], torch.tensor((0.5 + math.sqrt(2) / 2) / 2))
    assert_close(m["margin"], torch.tensor(2 / 3))


def test_metrics_per_dimension_by_hand() -> None:
    _, m = GPRCLoss()(*metrics_batch())
    # dimension 4: units 0 and 2
    assert_close(m["pair_acc/4"], torch.tensor(3 / 4))
    assert_close(m["order_acc/4"], torch.tensor(1.0))
    assert_close(m["betweenness/4"], torch.tensor(1.0))
    assert_close(m["axis_cos/4"], torch.tensor(0.0))
    assert_close(m["perp_ratio/4"], torch.tensor(0.5))
    assert_close(m["margin/4"], torch.tensor(0.5))
    # dimension 1: unit 1
    assert_close(m["pair_acc/1"], torch.tensor(2 / 3))
    assert_close(m["order_acc/1"], torch.tensor(0.0))
    assert_close(m["betweenness/1"], torch.tensor(0.0))
    assert_close(m["perp_ratio/1"], torch.tensor(math.sqrt(2) / 2))
    assert_close(m["margin/1"], torch.tensor(1.0))
    assert "pair_acc/0" not in m


def test_no_per_dimension_metrics_without_dimension() -> None:
    z, rewards, axes, n, _ = metrics_batch()
    _, m = GPRCLoss()(z, rewards, axes, n)
    assert not any("/" in name for name in m)


def test_order_acc_is_nan_without_three_response_units() -> None:
    z, rewards, axes, _, _ = metrics_batch()
    _, m = GPRCLoss()(z[:, :2], rewards[:, :2], axes, dimension=torch.tensor([0, 0, 1]))
    assert torch.isnan(m["order_acc"])
    assert torch.isnan(m["order_acc/0"])
    assert torch.isnan(m["betweenness"])
    assert torch.isfinite(m["pair_acc"])


def test_metrics_are_detached() -> None:
    z, rewards, axes, n, dim = metrics_batch()
    _, m = GPRCLoss()(z.requires_grad_(), rewards.requires_grad_(), axes.requires_grad_(), n, dim)
    assert all(not value.requires_grad for value in m.values())


# --- properties --------------------------------------------------------------------------------


@st.composite
def batches(draw: st.DrawFn, elements: st.SearchStrategy, dtype: torch.dtype) -> tuple[Tensor, ...]:
    """Random (z, rewards, axes, num_responses) with B in [1, 3], K in [2, 4], d in [1, 4]."""
    b, k, d = draw(st.integers(1, 3)), draw(st.integers(2, 4)), draw(st.integers(1, 4))

    def array(*shape: int) -> Tensor:
        return torch.as_tensor(draw(hnp.arrays(float, shape, elements=elements)), dtype=dtype)

    num_responses = torch.tensor(draw(st.lists(st.integers(2, k), min_size=b, max_size=b)))
    return array(b, k, d), array(b, k), array(b, d), num_responses


FLOATS = st.floats(-100.0, 100.0, allow_nan=False, allow_infinity=False, width=32)
# A grid of quarters: translations and scalings by powers of two stay exact in float64.
GRID = st.integers(-16, 16).map(lambda i: i / 4)


@settings(max_examples=60, deadline=None)
@given(
    batch=batches(FLOATS, torch.float32),
    alpha=st.floats(0.0, 2.0),
    beta=st.floats(0.0, 2.0),
    margin=st.floats(0.0, 2.0),
)
def test_property_loss_finite_and_terms_in_range(
    batch: tuple[Tensor, ...], alpha: float, beta: float, margin: float
) -> None:
    z, rewards, axes, n = batch
    z, rewards = z.requires_grad_(), rewards.requires_grad_()
    loss, m = GPRCLoss(alpha=alpha, beta=beta, gamma=0.0, margin=margin)(z, rewards, axes, n)
    loss.backward()
    assert torch.isfinite(loss)
    assert loss >= 0
    assert m["loss_rank"] >= 0
    assert -1e-6 <= m["loss_axis"] <= 2 + 1e-6
    assert m["loss_perp"] >= 0
    assert torch.isfinite(z.grad).all()
    assert torch.isfinite(rewards.grad).all()


@settings(max_examples=60, deadline=None)
@given(batch=batches(GRID, torch.float64), data=st.data())
def test_property_axis_and_perp_invariant_to_translating_a_unit(batch: tuple[Tensor, ...], data: st.DataObject) -> None:
    z, rewards, axes, n = batch
    shift = torch.as_tensor(data.draw(hnp.arrays(float, (z.shape[0], 1, z.shape[2]), elements=GRID)))
    loss_fn = GPRCLoss()
    _, m = loss_fn(z, rewards, axes, n)
    _, m_shifted = loss_fn(z + shift, rewards, axes, n)
    assert_close(m_shifted["loss_axis"], m["loss_axis"])
    assert_close(m_shifted["loss_perp"], m["loss_perp"])


@settings(max_examples=60, deadline=None)
@given(batch=batches(GRID, torch.float64), scale=st.sampled_from([0.25, 0.5, 2.0, 4.0]))
def test_property_axis_and_perp_invariant_to_scaling(batch: tuple[Tensor, ...], scale: float) -> None:
    z, rewards, axes, n = batch
    last = z[torch.arange(z.shape[0]), n - 1]
    segment_sq = (z[:, 0] - last).square().sum(-1)
    assume(bool((segment_sq[n >= 3] > 0).all()))  # the scale-free claim needs ||d|| >> eps
    loss_fn = GPRCLoss()
    _, m = loss_fn(z, rewards, axes, n)
    _, m_scaled = loss_fn(z * scale, rewards, axes, n)
    assert_close(m_scaled["loss_perp"], m["loss_perp"], rtol=1e-5, atol=1e-7)
    assert_close(m_scaled["loss_axis"], m["loss_axis"])


@settings(max_examples=60, deadline=None)
@given(batch=batches(GRID, torch.float64), data=st.data(), margin=st.sampled_from([0.0, 0.25, 1.0]))
def test_property_rank_invariant_to_shifting_unit_rewards(
    batch: tuple[Tensor, ...], data: st.DataObject, margin: float
) -> None:
    z, rewards, axes, n = batch
    shift = torch.as_tensor(data.draw(hnp.arrays(float, (z.shape[0], 1), elements=GRID)))
    loss_fn = GPRCLoss(margin=margin)
    _, m = loss_fn(z, rewards, axes, n)
    _, m_shifted = loss_fn(z, rewards + shift, axes, n)
    assert_close(m_shifted["loss_rank"], m["loss_rank"])


# --- optimisation ------------------------------------------------------------------------------


def test_gprc_trains_free_embeddings_to_perfect_ranking() -> None:
    torch.manual_seed(0)
    b, k, d, dims = 8, 3, 4, 2
    z = nn.Parameter(torch.randn(b, k, d))
    z_anchor = nn.Parameter(torch.randn(b, d))
    axes = nn.Parameter(torch.randn(dims, d))
    tau_raw, bias = nn.Parameter(torch.zeros(dims)), nn.Parameter(torch.zeros(dims))
    dimension = torch.arange(b) % dims
    num_responses = torch.tensor([3, 2, 3, 2, 3, 3, 2, 3])
    loss_fn = GPRCLoss(alpha=0.1, beta=0.1)
    optimizer = torch.optim.Adam([z, z_anchor, axes, tau_raw, bias], lr=0.05)

    def step() -> GPRCOutput:
        flat = anchored_rewards(z.reshape(b * k, d), z_anchor.repeat_interleave(k, 0), axes, F.softplus(tau_raw), bias)
        rewards = flat.view(b, k, dims).gather(2, dimension.view(b, 1, 1).expand(b, k, 1)).squeeze(2)  # (B, K)
        return loss_fn(z, rewards, axes[dimension], num_responses, dimension)

    first, _ = step()
    for _ in range(200):
        optimizer.zero_grad()
        loss, _ = step()
        loss.backward()
        optimizer.step()
    last, metrics = step()
    assert last.item() < 0.05 * first.item()
    assert metrics["pair_acc"].item() == 1.0
    assert metrics["order_acc"].item() == 1.0
    assert metrics["axis_cos"].item() > 0.9
