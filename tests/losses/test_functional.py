"""Pure GPRC math (lit_mrrml/losses/functional.py) against hand-computed values on tiny examples.

Reference numbers used below: softplus(-x) = -log sigmoid(x) = log(1 + e^-x), so
-log sigmoid(1) = 0.31326169, -log sigmoid(2) = 0.12692801, -log sigmoid(0.5) = 0.47407698,
-log sigmoid(-1) = 1.31326169.
"""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from lit_mrrml.losses.functional import (
    anchored_rewards,
    axis_similarity,
    cosine_to_axis,
    intermediate_mask,
    last_response,
    mask_padding,
    masked_mean,
    pair_differences,
    pair_mask,
    pairwise_logsigmoid,
    perpendicular_deviation,
    reference_projection,
    response_mask,
    unit_axes,
)

NLS_1 = 0.31326169  # -log sigmoid(1)
NLS_2 = 0.12692801  # -log sigmoid(2)
NLS_HALF = 0.47407698  # -log sigmoid(0.5)
NLS_MINUS_1 = 1.31326169  # -log sigmoid(-1)


# --- masks -------------------------------------------------------------------------------------


def test_response_mask_marks_real_rows() -> None:
    mask = response_mask(torch.tensor([3, 2]), 3)
    expected = torch.tensor([[True, True, True], [True, True, False]])
    assert torch.equal(mask, expected)


def test_pair_mask_is_upper_triangle_of_real_rows() -> None:
    mask = pair_mask(torch.tensor([3, 2]), 3)
    expected = torch.zeros(2, 3, 3, dtype=torch.bool)
    expected[0, 0, 1] = expected[0, 0, 2] = expected[0, 1, 2] = True  # K = 3: (0,1), (0,2), (1,2)
    expected[1, 0, 1] = True  # K = 2: (0,1) only
    assert torch.equal(mask, expected)
    assert mask.sum((1, 2)).tolist() == [3, 1]


def test_intermediate_mask_excludes_best_worst_and_padding() -> None:
    mask = intermediate_mask(torch.tensor([4, 3, 2]), 4)
    expected = torch.tensor(
        [
            [False, True, True, False],  # K = 4: rows 1 and 2
            [False, True, False, False],  # K = 3: row 1
            [False, False, False, False],  # K = 2: none
        ]
    )
    assert torch.equal(mask, expected)


def test_mask_padding_zeros_padding_rows_and_their_gradient() -> None:
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [float("nan"), float("inf")]]], requires_grad=True)
    out = mask_padding(x, response_mask(torch.tensor([2]), 3))
    assert_close(out, torch.tensor([[[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]]]))
    out.sum().backward()
    assert_close(x.grad, torch.tensor([[[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]]]))


# --- reductions and gathers --------------------------------------------------------------------


def test_masked_mean_per_row() -> None:
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[True, False, True], [False, True, True]])
    assert_close(masked_mean(x, mask, dim=1), torch.tensor([2.0, 5.5]))  # (1+3)/2, (5+6)/2


def test_masked_mean_over_all_dims() -> None:
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[True, False, True], [False, True, False]])
    assert_close(masked_mean(x, mask, dim=(0, 1)), torch.tensor(3.0))  # (1+3+5)/3


def test_masked_mean_is_zero_when_nothing_selected() -> None:
    x = torch.tensor([[1.0, 2.0], [4.0, 5.0]])
    mask = torch.tensor([[False, False], [True, False]])
    assert_close(masked_mean(x, mask, dim=1), torch.tensor([0.0, 4.0]))


def test_last_response_picks_row_num_responses_minus_one() -> None:
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert_close(last_response(x, torch.tensor([3, 2])), torch.tensor([3.0, 5.0]))


def test_last_response_on_embeddings() -> None:
    z = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], [[4.0, 4.0], [5.0, 6.0], [9.0, 9.0]]])
    assert_close(last_response(z, torch.tensor([3, 2])), torch.tensor([[3.0, 3.0], [5.0, 6.0]]))


def test_unit_axes_normalises_and_keeps_zero_axis_finite() -> None:
    e = unit_axes(torch.tensor([[3.0, 4.0], [0.0, -2.0], [0.0, 0.0]]))
    assert_close(e, torch.tensor([[0.6, 0.8], [0.0, -1.0], [0.0, 0.0]]))


def test_pair_differences_entry() -> None:
    z = torch.tensor([[[2.0, 0.0], [1.0, 1.0], [0.0, 0.0]]])
    diff = pair_differences(z)
    assert diff.shape == (1, 3, 3, 2)
    assert_close(diff[0, 0, 1], torch.tensor([1.0, -1.0]))  # z_0 - z_1
    assert_close(diff[0, 2, 0], torch.tensor([-2.0, 0.0]))  # z_2 - z_0


def test_cosine_to_axis_and_zero_vector() -> None:
    v = torch.tensor([[1.0, 1.0], [0.0, -3.0], [0.0, 0.0]])
    e = torch.tensor([0.0, 1.0])
    assert_close(cosine_to_axis(v, e), torch.tensor([1 / math.sqrt(2), -1.0, 0.0]))


# --- rewards -----------------------------------------------------------------------------------


def test_anchored_rewards_by_hand() -> None:
    # v = z - z_x = [[1, 1], [2, 0]]; e = [[0.6, 0.8], [0, 1]]
    # <v, e>: row 0 -> [1.4, 1.0], row 1 -> [1.2, 0.0]
    # r = tau * <v, e> + b with tau = [2, 0.5], b = [0.1, -1]
    z = torch.tensor([[1.0, 2.0], [3.0, 1.0]])
    z_anchor = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    axes = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    tau = torch.tensor([2.0, 0.5])
    bias = torch.tensor([0.1, -1.0])
    rewards = anchored_rewards(z, z_anchor, axes, tau, bias)
    assert_close(rewards, torch.tensor([[2.9, -0.5], [2.5, -1.0]]))


def test_anchored_rewards_ignore_shared_offset_of_response_and_anchor() -> None:
    z = torch.tensor([[1.0, 2.0], [3.0, 1.0]])
    z_anchor = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    axes = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    tau, bias = torch.tensor([2.0, 0.5]), torch.tensor([0.1, -1.0])
    shift = torch.tensor([5.0, -7.0])
    assert_close(
        anchored_rewards(z + shift, z_anchor + shift, axes, tau, bias),
        anchored_rewards(z, z_anchor, axes, tau, bias),
    )


# --- ranking -----------------------------------------------------------------------------------


def test_pairwise_logsigmoid_three_responses() -> None:
    # pairs (0,1): 1, (0,2): 2, (1,2): 1
    rewards = torch.tensor([[2.0, 1.0, 0.0]])
    loss = pairwise_logsigmoid(rewards, pair_mask(torch.tensor([3]), 3))
    assert_close(loss, torch.tensor([(2 * NLS_1 + NLS_2) / 3]))


def test_pairwise_logsigmoid_margin_scales_with_rank_gap() -> None:
    # margin 0.5: (0,1): 1 - 0.5 = 0.5, (0,2): 2 - 0.5 * 2 = 1, (1,2): 1 - 0.5 = 0.5
    rewards = torch.tensor([[2.0, 1.0, 0.0]])
    loss = pairwise_logsigmoid(rewards, pair_mask(torch.tensor([3]), 3), margin=0.5)
    assert_close(loss, torch.tensor([(2 * NLS_HALF + NLS_1) / 3]))


def test_pairwise_logsigmoid_ignores_padding_pairs() -> None:
    # K = 2 unit: only (0,1) with r_0 - r_1 = -1; the padded row 2 is ignored.
    rewards = torch.tensor([[0.0, 1.0, 99.0]])
    loss = pairwise_logsigmoid(rewards, pair_mask(torch.tensor([2]), 3))
    assert_close(loss, torch.tensor([NLS_MINUS_1]))


# --- geometry ----------------------------------------------------------------------------------


def test_axis_similarity_by_hand() -> None:
    # unit 0, e = [1, 0]: z_0 - z_1 = [1, -1] (cos 1/sqrt2), z_0 - z_2 = [2, 0] (cos 1),
    #   z_1 - z_2 = [1, 1] (cos 1/sqrt2) -> mean(1 - cos) = (2 - sqrt2) / 3
    # unit 1 (K = 2), e = [0, 1]: z_0 - z_1 = [0, -1] (cos -1) -> 2
    z = torch.tensor([[[2.0, 0.0], [1.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.0], [7.0, -3.0]]])
    axes = torch.tensor([[3.0, 0.0], [0.0, 2.0]])
    loss = axis_similarity(z, axes, pair_mask(torch.tensor([3, 2]), 3))
    assert_close(loss, torch.tensor([(2 - math.sqrt(2)) / 3, 2.0]))


def test_reference_projection_inside_segment() -> None:
    # d = z_0 - z_2 = [2, 0], ||d||^2 = 4; z_1 - z_2 = [1, 1]: lambda 0.5, residual [0, 1] -> 1/4
    z = torch.tensor([[[2.0, 0.0], [1.0, 1.0], [0.0, 0.0]]])
    lam, perp_sq, d_sq = reference_projection(z, torch.tensor([3]))
    assert_close(lam, torch.tensor([[1.0, 0.5, 0.0]]))
    assert_close(perp_sq, torch.tensor([[0.0, 0.25, 0.0]]))
    assert_close(d_sq, torch.tensor([4.0]))


def test_reference_projection_lambda_unclamped_residual_clamped() -> None:
    # d = [2, 0]; unit 0: z_1 = [3, 1] -> lambda 6/4 = 1.5, residual [3, 1] - 1 * d = [1, 1] -> 2/4
    #             unit 1: z_1 = [-1, 2] -> lambda -2/4 = -0.5, residual [-1, 2] - 0 * d -> 5/4
    z = torch.tensor([[[2.0, 0.0], [3.0, 1.0], [0.0, 0.0]], [[2.0, 0.0], [-1.0, 2.0], [0.0, 0.0]]])
    lam, perp_sq, _ = reference_projection(z, torch.tensor([3, 3]))
    assert_close(lam[:, 1], torch.tensor([1.5, -0.5]))
    assert_close(perp_sq[:, 1], torch.tensor([0.5, 1.25]))


def test_reference_projection_uses_last_real_response_as_worst() -> None:
    # K = 2 in a K = 3 batch: worst is z_1 = [1, 1], d = [0, 2]; real rows: lambda 1 and 0
    z = torch.tensor([[[1.0, 3.0], [1.0, 1.0], [9.0, 9.0]]])
    lam, perp_sq, d_sq = reference_projection(z, torch.tensor([2]))
    assert_close(lam[:, :2], torch.tensor([[1.0, 0.0]]))
    assert_close(perp_sq[:, :2], torch.tensor([[0.0, 0.0]]))
    assert_close(d_sq, torch.tensor([4.0]))


def test_reference_projection_zero_segment_is_finite() -> None:
    # z_0 == z_2: d = 0, lambda's denominator is clamped at eps -> 0, not NaN
    z = torch.tensor([[[1.0, 1.0], [2.0, 1.0], [1.0, 1.0]]])
    lam, perp_sq, d_sq = reference_projection(z, torch.tensor([3]))
    assert_close(lam, torch.zeros(1, 3))
    assert_close(d_sq, torch.tensor([0.0]))
    assert torch.isfinite(perp_sq).all()
    assert_close(perp_sq[0, 1], torch.tensor(1.0 / 1e-8))  # ||[1, 0]||^2 / (0 + eps)


def test_perpendicular_deviation_mixed_k() -> None:
    # d = [2, 0] (||d||^2 = 4) in units 0 and 1
    # unit 0 (K = 4): z_1 = [1, 1] -> 1/4; z_2 = [0.5, 2]: lambda 1/4, residual [0, 2] -> 4/4; mean 0.625
    # unit 1 (K = 3): z_1 = [3, 1] -> lambda clamped to 1, residual [1, 1] -> 0.5
    # unit 2 (K = 2): no intermediate -> 0
    z = torch.tensor(
        [
            [[2.0, 0.0], [1.0, 1.0], [0.5, 2.0], [0.0, 0.0]],
            [[2.0, 0.0], [3.0, 1.0], [0.0, 0.0], [5.0, 5.0]],
            [[2.0, 0.0], [1.0, 1.0], [5.0, 5.0], [5.0, 5.0]],
        ]
    )
    loss, has_inter = perpendicular_deviation(z, torch.tensor([4, 3, 2]))
    assert_close(loss, torch.tensor([0.625, 0.5, 0.0]))
    assert has_inter.tolist() == [True, True, False]


def test_perpendicular_deviation_is_zero_for_two_responses() -> None:
    z = torch.tensor([[[2.0, 0.0], [-3.0, 7.0]]])
    loss, has_inter = perpendicular_deviation(z, torch.tensor([2]))
    assert_close(loss, torch.tensor([0.0]))
    assert has_inter.tolist() == [False]
