"""Batch encoded units into padded tensors.

A batch of B units with up to K responses each becomes B*K rows (unit-major, best first); rows
past a unit's ``num_responses`` are all padding with an all-zero attention mask, and the model
skips them. Sequences are right-padded, so a row's last real token is ``sum(mask) - 1``.
"""

from __future__ import annotations

from typing import Any

import torch

from lit_mrrml.data.encode import EncodedUnit


class RankedUnitCollator:
    """Callable for DataLoader(collate_fn=...)."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int = 8) -> None:
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, units: list[EncodedUnit]) -> dict[str, Any]:
        b = len(units)
        k = max(len(u.input_ids) for u in units)
        longest = max(len(seq) for u in units for seq in u.input_ids)
        t = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((b * k, t), self.pad_token_id, dtype=torch.long)  # (B*K, T)
        attention_mask = torch.zeros((b * k, t), dtype=torch.long)  # (B*K, T)
        anchor_index = torch.zeros(b * k, dtype=torch.long)  # (B*K,): last prompt token
        for i, unit in enumerate(units):
            for j, (seq, anchor) in enumerate(zip(unit.input_ids, unit.anchors, strict=True)):
                row = i * k + j
                input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
                attention_mask[row, : len(seq)] = 1
                anchor_index[row] = anchor
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "anchor_index": anchor_index,
            "num_responses": torch.tensor([len(u.input_ids) for u in units], dtype=torch.long),  # (B,)
            "dimension": torch.tensor([u.dimension for u in units], dtype=torch.long),  # (B,)
            "scenario": torch.tensor([u.scenario for u in units], dtype=torch.long),  # (B,)
            "unit_ids": [u.id for u in units],
        }
