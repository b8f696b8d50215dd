"""ResumableCheckpoint: Lightning's ModelCheckpoint whose ``last.ckpt`` is the latest state.

Since Lightning 2.6, ``save_last=True`` writes ``last.ckpt`` only when a top-k checkpoint was
saved at the same step: with ``save_top_k: 1`` on a monitored metric, ``last.ckpt`` stays a copy
of the best, and ``fit --ckpt_path last`` after a kill would go back to it and redo (with other
random draws) every step since. This subclass also writes ``last.ckpt`` at the validations where
the monitored metric did not improve, as Lightning did before 2.6 and as the name says.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class ResumableCheckpoint(ModelCheckpoint):
    """ModelCheckpoint (every argument is Lightning's) with ``last.ckpt`` written at every validation."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_latest(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_latest(trainer)

    def _save_latest(self, trainer: L.Trainer) -> None:
        """last.ckpt, unless not fitting, sanity checking, or already saved (top-k and last) at this step."""
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
