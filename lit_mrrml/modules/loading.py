"""Load a trained reward model from an export folder or a Lightning checkpoint, for scoring."""

from __future__ import annotations

from pathlib import Path

from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.matrix.compare import check_trained_matrix
from lit_mrrml.modules.checkpoint import check_lightning_checkpoint
from lit_mrrml.modules.reward import RewardModel


def load_reward_model(
    path: str, device: str = "cpu", matrix: RubricMatrix | None = None, what: str = "reward model"
) -> RewardModel:
    """A reward model export folder or a Lightning checkpoint file, in eval mode; with ``matrix`` (the
    matrix in use), its dimension list must be the model's (other changes are warned about).
    ``what`` names the setting that gave ``path`` in error messages."""
    source = Path(path)
    if source.is_dir():
        return RewardModel.from_pretrained(source, map_location=device, matrix=matrix)
    if not source.is_file():
        raise FileNotFoundError(f"{what}: {path} is neither an export folder nor a checkpoint file")
    check_lightning_checkpoint(source, what)
    model = RewardModel.load_from_checkpoint(source, map_location=device).eval()
    if matrix is not None:
        current = matrix.to_dict()
        check_trained_matrix(model.dimension_names, model.matrix_snapshot, list(matrix.dimension_ids), current, path)
    return model
