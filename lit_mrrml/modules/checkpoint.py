"""Is this file a Lightning checkpoint? Asked before Lightning loads it, so that a wrong path (a
config, an export's safetensors, a plain ``torch.save`` of a state dict) gets one line saying so
instead of an unpickling traceback from deep inside the trainer."""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from lit_mrrml.errors import InputError

SPECIAL = ("last", "best", "hpc", "registry")  # ckpt_path values the Trainer resolves itself


class CheckpointError(InputError):
    """A checkpoint path that does not hold a Lightning checkpoint."""


def check_lightning_checkpoint(path: str | Path, what: str = "--ckpt_path") -> None:
    """Raise CheckpointError unless ``path`` is a Lightning checkpoint file (or a sharded checkpoint
    folder, which the strategy that wrote it checks). The file is memory-mapped, not read."""
    if str(path) in SPECIAL or str(path).startswith("registry:"):
        return
    source = Path(path)
    if source.is_dir():
        return
    if not source.is_file():
        raise CheckpointError(f"{what}: {source} does not exist")
    if not zipfile.is_zipfile(source):
        raise CheckpointError(f"{what}: {source} is not a Lightning checkpoint (not a torch.save archive)")
    try:
        checkpoint = torch.load(source, map_location="cpu", mmap=True, weights_only=True)
    except Exception as err:  # any failure to unpickle means: not a checkpoint we can load
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{what}: {source} is not a Lightning checkpoint ({reason})") from None
    if not isinstance(checkpoint, dict) or not {"state_dict", "pytorch-lightning_version"} <= set(checkpoint):
        raise CheckpointError(
            f"{what}: {source} is a torch file but not a Lightning checkpoint (it has no 'state_dict' and "
            "'pytorch-lightning_version'): pass a .ckpt written by a Trainer, such as <run>/checkpoints/last.ckpt"
        )
