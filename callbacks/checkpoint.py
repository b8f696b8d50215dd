"""ResumableCheckpoint: Lightning's ModelCheckpoint whose ``last.ckpt`` resumes the run exactly.

Since Lightning 2.6, ``save_last=True`` writes ``last.ckpt`` only when a top-k checkpoint was
saved at the same step: with ``save_top_k: 1`` on a monitored metric, ``last.ckpt`` stays a copy
of the best, and ``fit --ckpt_path last`` after a kill would go back to it and redo every step
since. With ``every_n_train_steps`` it also skips (defers) a step whose monitored metric is not
logged yet. This subclass writes ``last.ckpt`` at every validation and at every
``every_n_train_steps`` optimizer step, whether or not the metric is there or improved, as the
name says; a deferred top-k save still happens at the next validation.

Lightning saves the model, optimizers, schedulers, loops, callbacks and the train loader's
``state_dict`` (``lit_mrrml.data.resumable``), but not the random number generators. This
checkpoint's state also holds every rank's generator states (``lit_mrrml.rng``), captured once at
the first save after a training batch, and the next training batch starts from them, in the
uninterrupted run as in one resumed from any checkpoint of that step. Whatever draws from the
generators between a checkpoint and the next batch (the validation loaders, callbacks, the
resumed run's model construction and setup) then changes nothing: dropout and other draws of
training continue as in the uninterrupted run.
"""

from __future__ import annotations

import warnings
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn

from lit_mrrml import rng

# ModelCheckpoint's warning at every step save under manual optimization (GRPOPolicy): it suggests
# saving the weights from before the optimizer step, but a resume needs those after it
MANUAL_SAVE_WARNING = "Using ModelCheckpoint with manual optimization and every_n_train_steps"


class ResumableCheckpoint(ModelCheckpoint):
    """ModelCheckpoint (every argument is Lightning's) with ``last.ckpt`` written at every validation
    and every ``every_n_train_steps`` step, and the RNG states of every rank saved and restored."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rng_states: list[rng.RNGState] | None = None  # saved since the last training batch, or loaded
        self._step_at_batch_start = -1
        self._latest_only, self._saved_before_latest = -1, -1  # the step of the last last.ckpt-only save

    # ---- last.ckpt ----------------------------------------------------------------------------
    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._restore_rng(trainer)
        self._step_at_batch_start = trainer.global_step

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=MANUAL_SAVE_WARNING)
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        every = self._every_n_train_steps
        stepped = trainer.global_step != self._step_at_batch_start  # not within gradient accumulation
        if stepped and every >= 1 and trainer.global_step % every == 0:
            self._save_latest(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_latest(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._defer_save_until_validation and self._latest_only == trainer.global_step:
            # a top-k save waits for this validation's metric: the step's extra last.ckpt must not stop it
            self._last_global_step_saved = self._saved_before_latest
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_latest(trainer)

    def _save_latest(self, trainer: L.Trainer) -> None:
        """last.ckpt, unless not fitting, sanity checking, or already saved (top-k and last) at this step."""
        if not self.save_last or self._should_skip_saving_checkpoint(trainer):
            return
        self._saved_before_latest, self._latest_only = self._last_global_step_saved, trainer.global_step
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    # ---- random number generators -------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """ModelCheckpoint's state and ``rng``: every rank's generator states, captured at the first
        save since the last training batch (a collective call: Lightning's ``dump_checkpoint`` runs
        on every rank), so that every checkpoint of a step holds the same states."""
        if self._rng_states is None:
            self._rng_states = rng.capture_all_ranks()
        return super().state_dict() | {"rng": self._rng_states}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._rng_states = state_dict.get("rng")

    def _restore_rng(self, trainer: L.Trainer) -> None:
        """Set this rank's generators to the states of the latest checkpoint, if one was saved or
        loaded since the last training batch."""
        states, self._rng_states = self._rng_states, None
        if states is None:
            return
        if len(states) != trainer.world_size:
            rank_zero_warn(
                f"the checkpoint holds the random states of {len(states)} rank(s), this run has {trainer.world_size}: "
                "they are not restored, so dropout and other random draws differ from the uninterrupted run"
            )
            return
        rng.restore(states[trainer.global_rank])
