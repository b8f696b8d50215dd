"""GPUMeasure: a callback that writes a run's peak GPU memory and step time to a JSON file."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch


class GPUMeasure(L.Callback):
    """Peak memory (``torch.cuda.max_memory_allocated`` and ``max_memory_reserved``, from the start
    of training) and the wall time of every training step (CUDA synchronised), written at the end
    of fit with the last logged metrics.

    Args:
        path: JSON file to write (its folder is created).
        name: The run's name in the file.
    """

    def __init__(self, path: str, name: str = "") -> None:
        self.path, self.name = Path(path), name
        self.times: list[float] = []
        self.start = 0.0
        self.metrics: dict[str, list[float]] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        torch.cuda.synchronize()
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self.start)
        for key, value in trainer.callback_metrics.items():
            self.metrics.setdefault(key, []).append(float(value))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        steady = self.times[1:] or self.times  # the first step pays for compilation and warm-up
        record = {
            "name": self.name,
            "device": torch.cuda.get_device_name(),
            "steps": len(self.times),
            "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
            "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
            "step_time_s": statistics.median(steady) if steady else None,
            "first_step_s": self.times[0] if self.times else None,
            "metrics": self.metrics,
            "versions": {"torch": torch.__version__, "lightning": L.__version__},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
