"""The optimizer and scheduler of a module's trainable parameters, from LightningCLI's callables."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn


def trainable_optimizers(module: nn.Module, optimizer: OptimizerCallable, scheduler: LRSchedulerCallable | None) -> Any:
    """What ``configure_optimizers`` returns: the optimizer over the parameters that require
    gradients, with the scheduler stepped every optimizer step when there is one."""
    built = optimizer([p for p in module.parameters() if p.requires_grad])
    if scheduler is None:
        return built
    return {"optimizer": built, "lr_scheduler": {"scheduler": scheduler(built), "interval": "step"}}
