"""One checkpoint file from a sharded one, for loading in a single process.

ModelParallelStrategy (FSDP2) and FSDPStrategy with ``state_dict_type: sharded`` write a checkpoint
as a folder: one ``.distcp`` file of weights and optimizer state a rank, and ``meta.pt`` with the
rest (hyperparameters, loops, callbacks, the data's position). ``consolidate_checkpoint`` gathers
the full weights into a single Lightning checkpoint that ``RewardModel.load_from_checkpoint``,
``GRPOPolicy.load_from_checkpoint`` and ``RewardModelReward`` load anywhere, without processes or
a strategy. It reads the folder the way Lightning's own
``python -m lightning.fabric.utilities.consolidate_checkpoint FOLDER`` does (the whole model must
fit in CPU memory). The optimizer state is left out: it is keyed by parameter name, not in the
layout a one-process optimizer loads; to resume training, pass the folder itself to ``--ckpt_path``
under a sharded strategy (on any number of ranks: torch.distributed.checkpoint reshards).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from lit_mrrml.modules.checkpoint import CheckpointError

META = "meta.pt"  # Lightning's name for the non-tensor part of a sharded checkpoint
OPTIMIZER_KEY = re.compile(r"optimizer_\d+")  # where a sharded checkpoint keeps each optimizer's state


def is_sharded_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a folder a sharded strategy wrote (it holds ``meta.pt``)."""
    return (Path(path) / META).is_file()


def consolidated_path(folder: Path) -> Path:
    """``<run>/last.ckpt`` (a folder) -> ``<run>/last.consolidated.ckpt``."""
    return folder.with_name(f"{folder.stem}.consolidated.ckpt")


def load_sharded_checkpoint(folder: str | Path) -> dict[str, Any]:
    """The sharded checkpoint ``folder`` as one Lightning checkpoint dict in CPU memory: full
    weights under ``state_dict``, ``meta.pt``'s entries, no optimizer state."""
    from lightning.fabric.utilities.load import _load_distributed_checkpoint

    source = Path(folder)
    if not is_sharded_checkpoint(source):
        raise CheckpointError(
            f"{source} is not a sharded Lightning checkpoint (no {META} in it): pass the folder a sharded strategy "
            "wrote, such as <run>/checkpoints/last.ckpt"
        )
    checkpoint = _load_distributed_checkpoint(source)  # the shards' full tensors, then meta.pt's entries
    if "state_dict" not in checkpoint and "model" in checkpoint:  # FSDPStrategy (FSDP1) names the weights "model"
        checkpoint["state_dict"] = checkpoint.pop("model")
    if "state_dict" not in checkpoint:
        raise CheckpointError(f"{source}: the shards hold no model weights (no 'state_dict' or 'model' entry)")
    for key in [k for k in checkpoint if OPTIMIZER_KEY.fullmatch(k)]:
        del checkpoint[key]
    return checkpoint


def consolidate_checkpoint(folder: str | Path, output: str | Path | None = None) -> Path:
    """Write the sharded checkpoint ``folder`` as one Lightning checkpoint file (full weights, no
    optimizer state) at ``output`` (default: ``consolidated_path(folder)``); returns its path."""
    target = Path(output) if output is not None else consolidated_path(Path(folder))
    if target.exists():
        raise CheckpointError(f"consolidate_checkpoint: {target} exists already: remove it or pass another output")
    torch.save(load_sharded_checkpoint(folder), target)
    return target
