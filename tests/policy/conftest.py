"""Policy fixtures: a tiny exported reward model on the shipped matrix."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.models.backbone import BackboneSpec
from lit_mrrml.models.tiny import TINY_QWEN2
from tests.conftest import MATRIX_PATH, TINY_TOKENIZER
from tests.modules.test_reward_model import make_model


@pytest.fixture(scope="session")
def tiny_reward_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random reward model (frozen backbone, perturbed head) exported with its backbone."""
    torch.manual_seed(1)
    spec = BackboneSpec(config=dict(TINY_QWEN2), tokenizer=str(TINY_TOKENIZER))
    model = make_model(spec, RubricMatrix.from_yaml(MATRIX_PATH), training_mode="frozen")
    model.configure_model()
    with torch.no_grad():
        for p in model.head.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return model.save_pretrained(tmp_path_factory.mktemp("reward") / "export")
