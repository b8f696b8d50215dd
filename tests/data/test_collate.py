"""Batching encoded units: (B*K, T) rows, right padding to a multiple of 8, padding rows for K < K_max."""

from __future__ import annotations

import torch

from lit_mrrml.data.collate import RankedUnitCollator
from lit_mrrml.data.encode import EncodedUnit

PAD = 0


def encoded(uid: str, lengths: list[int], anchor: int, dimension: int = 0, scenario: int = 0) -> EncodedUnit:
    """A unit whose sequence k holds tokens 10*k+1 ... of the given lengths."""
    seqs = tuple(tuple(range(10 * k + 1, 10 * k + 1 + n)) for k, n in enumerate(lengths))
    return EncodedUnit(uid, seqs, (anchor,) * len(lengths), dimension, scenario, truncated=False)


def batch_of_two() -> dict:
    units = [encoded("a", [5, 9, 7], anchor=2, dimension=5, scenario=1), encoded("b", [4, 6], anchor=1, dimension=2)]
    return RankedUnitCollator(pad_token_id=PAD)(units)


def test_shapes_are_b_times_kmax_by_padded_length() -> None:
    batch = batch_of_two()
    assert batch["input_ids"].shape == (6, 16)  # B=2, K_max=3; longest 9 -> 16
    assert batch["attention_mask"].shape == (6, 16)
    assert batch["anchor_index"].shape == (6,)
    assert batch["input_ids"].dtype == torch.long


def test_rows_are_unit_major_and_right_padded() -> None:
    batch = batch_of_two()
    assert batch["input_ids"][1, :9].tolist() == list(range(11, 20))
    assert batch["input_ids"][1, 9:].tolist() == [PAD] * 7
    assert batch["attention_mask"][1].tolist() == [1] * 9 + [0] * 7
    assert batch["input_ids"][3, :4].tolist() == [1, 2, 3, 4]  # unit b, response 0
    assert batch["attention_mask"].sum(dim=1).tolist() == [5, 9, 7, 4, 6, 0]


def test_padding_row_for_a_unit_with_fewer_responses() -> None:
    batch = batch_of_two()
    assert batch["attention_mask"][5].sum() == 0
    assert (batch["input_ids"][5] == PAD).all()
    assert batch["num_responses"].tolist() == [3, 2]


def test_anchors_per_row() -> None:
    assert batch_of_two()["anchor_index"].tolist() == [2, 2, 2, 1, 1, 0]


def test_unit_level_fields() -> None:
    batch = batch_of_two()
    assert batch["dimension"].tolist() == [5, 2]
    assert batch["scenario"].tolist() == [1, 0]
    assert batch["unit_ids"] == ["a", "b"]


def test_length_already_a_multiple_is_not_padded_further() -> None:
    batch = RankedUnitCollator(pad_token_id=PAD)([encoded("a", [8, 3], anchor=1)])
    assert batch["input_ids"].shape == (2, 8)


def test_custom_pad_token_and_multiple() -> None:
    batch = RankedUnitCollator(pad_token_id=7, pad_to_multiple_of=4)([encoded("a", [5, 2], anchor=1)])
    assert batch["input_ids"].shape == (2, 8)
    assert batch["input_ids"][1].tolist() == [11, 12, 7, 7, 7, 7, 7, 7]
