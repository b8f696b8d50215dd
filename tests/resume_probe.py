"""Callbacks for the kill -9 resume tests: record every step's metrics, and SIGKILL the run mid-step."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import lightning as L
import torch


class StepLog(L.Callback):
    """Appends one JSON line per optimizer step: the global step and the given metrics' step values.

    Args:
        path: JSONL file; opened, appended to and closed at every step, so a kill loses nothing.
        keys: ``trainer.callback_metrics`` keys to record (those logged with ``on_step``).
    """

    def __init__(self, path: str, keys: list[str]) -> None:
        self.path, self.keys = Path(path), list(keys)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        metrics = trainer.callback_metrics
        record = {"step": trainer.global_step} | {k: float(metrics[k]) for k in self.keys if k in metrics}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


class KillAt(L.Callback):
    """Kills its own process with SIGKILL in the middle of the optimizer step after ``step`` steps:
    after that step's forward and backward (which drew dropout masks), before the weights change.

    Args:
        step: The number of optimizer steps done when the kill comes.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def read_steps(path: Path) -> list[dict[str, Any]]:
    """The recorded steps, in order."""
    return [json.loads(line) for line in path.read_text().splitlines()]
