"""Send a saved matplotlib figure to every logger of a run that takes images.

TensorBoard gets the figure itself (``add_figure``), Weights & Biases and MLflow the PNG written
beside the logs (``log_image``, ``log_artifact``); a logger without images (CSV) gets nothing. The
PNG on disk stays the record either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from lightning.pytorch.loggers import Logger


def send_figure(loggers: list[Logger], tag: str, figure: Any, png: Path, step: int) -> list[str]:
    """Give ``figure`` (already saved as ``png``) to each logger that takes images, under ``tag``;
    returns the names of the loggers' classes that took it."""
    took = []
    for logger in loggers:
        kind, any_logger = type(logger).__name__, cast(Any, logger)  # matched by class name: no optional imports
        if kind == "TensorBoardLogger":
            any_logger.experiment.add_figure(tag, figure, global_step=step, close=False)
        elif kind == "WandbLogger":
            any_logger.log_image(key=tag, images=[str(png)], step=step)
        elif kind == "MLFlowLogger":
            folder = str(Path(tag).parent)  # geometry/epoch=N: the PNGs of one validation side by side
            any_logger.experiment.log_artifact(any_logger.run_id, str(png), artifact_path=folder)
        else:
            continue
        took.append(kind)
    return took
