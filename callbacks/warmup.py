"""GPRCWarmup: ramp the geometric terms of GPRC in, so the ranking loss shapes the rewards first."""

from __future__ import annotations

from typing import Any

import lightning as L


class GPRCWarmup(L.Callback):
    """Scales the loss's ``alpha`` and ``beta`` linearly from 0 to their configured values.

    At optimizer step s the weights are ``min(1, s / steps)`` times the targets read from the
    module's ``loss`` when fitting starts; they are logged as ``gprc/alpha`` and ``gprc/beta``.
    """

    def __init__(self, steps: int = 100) -> None:
        """
        Args:
            steps: Optimizer steps over which alpha and beta rise from 0 to their targets.
        """
        if steps < 1:
            raise ValueError(f"GPRCWarmup.steps must be >= 1, got {steps}")
        self.steps = steps
        self.targets: dict[str, float] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loss = getattr(pl_module, "loss", None)
        if loss is None or not all(hasattr(loss, k) for k in ("alpha", "beta")):
            raise TypeError("GPRCWarmup needs a LightningModule whose `loss` has `alpha` and `beta` (GPRCLoss)")
        self.targets = {"alpha": float(loss.alpha), "beta": float(loss.beta)}

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        fraction = min(1.0, trainer.global_step / self.steps)
        for name, target in self.targets.items():
            setattr(pl_module.loss, name, fraction * target)
            pl_module.log(f"gprc/{name}", fraction * target, on_step=True, on_epoch=False)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for name, target in self.targets.items():  # leave the module as configured
            setattr(pl_module.loss, name, target)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "targets": dict(self.targets)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.steps = state_dict["steps"]
        self.targets = dict(state_dict["targets"])
