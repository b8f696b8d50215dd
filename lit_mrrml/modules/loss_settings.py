"""A loss's settings as hyperparameters: ``loss/alpha``, ``loss/beta``, ... in every logger.

The loss is an object given to the module (``--model.loss``), which ``save_hyperparameters`` leaves
out (it is rebuilt from the config); its constructor's arguments, read back from the attributes of
the same names, are what a run's comparison needs.
"""

from __future__ import annotations

import inspect
from typing import Any

import lightning as L

Setting = float | int | str | bool | None


def loss_settings(loss: Any) -> dict[str, Setting]:
    """``loss/<name>`` for each argument of the loss's constructor that it keeps as a plain value."""
    settings: dict[str, Setting] = {}
    for name in inspect.signature(type(loss).__init__).parameters:
        value = getattr(loss, name, inspect.Parameter.empty)
        if name != "self" and (value is None or isinstance(value, (float, int, str, bool))):
            settings[f"loss/{name}"] = value
    if settings:
        settings["loss/class"] = type(loss).__name__
    return settings


def log_loss_settings(module: L.LightningModule, loss: Any) -> dict[str, Setting]:
    """Send the settings to every logger of the module's run (rank zero: Lightning's loggers)."""
    settings = loss_settings(loss)
    if settings:
        for logger in module.loggers:
            logger.log_hyperparams(settings)
    return settings
