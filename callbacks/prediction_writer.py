"""RewardPredictionWriter: write ``predict`` results as JSONL, one scored response a line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter

from lit_mrrml.jsonio import dumps


class RewardPredictionWriter(BasePredictionWriter):
    """Appends each predict batch's records to a JSONL file as the batch finishes.

    Records are ``{"id", "response", "rewards": {dimension: value}, "total"}``. With several
    processes, each writes its own file (``<stem>.rank<r>.jsonl``).
    """

    def __init__(self, output_path: str | None = None) -> None:
        """
        Args:
            output_path: JSONL file to write; default ``<trainer.log_dir>/predictions.jsonl``.
        """
        super().__init__(write_interval="batch")
        self.output_path = output_path
        self.path: Path | None = None

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        path = Path(self.output_path or Path(trainer.log_dir or ".") / "predictions.jsonl")
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("", encoding="utf-8")
        self.path = path

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        assert self.path is not None
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write("".join(dumps(record, str(self.path)) + "\n" for record in prediction))

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.path is not None and trainer.is_global_zero:
            print(f"predictions written to {self.path}")
