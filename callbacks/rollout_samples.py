"""RolloutSamples: a few validation prompts, their completions and per-dimension rewards, per validation.

A person reads these to see what the policy learned: the numbers say that the reward rose, the
samples say whether the answers got better or only longer. Each validation appends its first
``num_samples`` completions to a JSONL file (``{"step", "id", "prompt", "completion", "rewards",
"total", "length", "truncated"}``), and to the logger's table where it has one (W&B, MLflow).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L

from lit_mrrml.jsonio import dumps

COLUMNS = ["step", "id", "prompt", "completion", "total", "length", "truncated"]


class RolloutSamples(L.Callback):
    """Writes a few validation completions of a policy at every validation.

    Args:
        num_samples: Completions kept per validation (the first validation prompts, fixed order).
        output_path: JSONL file; default ``<trainer.log_dir>/rollout_samples.jsonl``.
    """

    def __init__(self, num_samples: int = 4, output_path: str | None = None) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {num_samples}")
        self.num_samples, self.output_path = num_samples, output_path
        self.samples: list[dict[str, Any]] = []
        self.path: Path | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.path = Path(self.output_path or Path(trainer.log_dir or ".") / "rollout_samples.jsonl")

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.samples = []

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int, *args: Any
    ) -> None:
        room = self.num_samples - len(self.samples)
        if room > 0 and isinstance(outputs, list):
            self.samples += [{"step": trainer.global_step, **s} for s in outputs[:room]]

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not self.samples or self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write("".join(dumps(s, str(self.path)) + "\n" for s in self.samples))
        rows = [[s[c] for c in COLUMNS] for s in self.samples]
        for logger in trainer.loggers:
            log_table = getattr(logger, "log_table", None)  # WandbLogger
            if callable(log_table):
                log_table(key="rollout_samples", columns=COLUMNS, data=rows)
