"""Load a trained reward model from an export folder or a Lightning checkpoint (a file, or the folder
of a sharded one), for scoring."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.matrix.compare import check_trained_matrix
from lit_mrrml.modules.checkpoint import check_lightning_checkpoint
from lit_mrrml.modules.reward import RewardModel
from lit_mrrml.modules.sharded_checkpoint import is_sharded_checkpoint, load_sharded_checkpoint


def load_reward_model(
    path: str, device: str = "cpu", matrix: RubricMatrix | None = None, what: str = "reward model"
) -> RewardModel:
    """A reward model export folder, a Lightning checkpoint file or a sharded checkpoint folder (FSDP:
    gathered in memory), in eval mode; with ``matrix`` (the matrix in use), its dimension list must
    be the model's (other changes are warned about). ``what`` names the setting that gave ``path``
    in error messages."""
    source = Path(path)
    if is_sharded_checkpoint(source):  # a folder of FSDP shards (for a large model, consolidate it once instead)
        buffer = io.BytesIO()
        torch.save(load_sharded_checkpoint(source), buffer)
        buffer.seek(0)
        model = RewardModel.load_from_checkpoint(buffer, map_location=device).eval()
    elif source.is_dir():
        return RewardModel.from_pretrained(source, map_location=device, matrix=matrix)
    elif not source.is_file():
        raise FileNotFoundError(f"{what}: {path} is neither an export folder nor a checkpoint file")
    else:
        check_lightning_checkpoint(source, what)
        model = RewardModel.load_from_checkpoint(source, map_location=device).eval()
    if matrix is not None:
        current = matrix.to_dict()
        check_trained_matrix(model.dimension_names, model.matrix_snapshot, list(matrix.dimension_ids), current, path)
    return model
