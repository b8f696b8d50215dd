"""configs/trainer/fsdp.yaml (BlockFSDPStrategy) on a real GPU: the reward model with LoRA on
SmolLM2-135M-Instruct in bf16 mixed precision, and on its 4-bit NF4 weights stored in bf16
(bnb_4bit_quant_storage, bf16-true: the FSDP route for 4-bit weights). Each trains a few steps,
writes a sharded checkpoint, and records its peak memory and step time (benchmarks/README.md)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEMO, MATRIX_PATH
from tests.gpu.conftest import GPU, fit, measured, record, write_config

pytestmark = GPU
STEPS = 6


def reward_task(folder: Path, root: Path, **backbone: Any) -> dict[str, Any]:
    """A LoRA reward model on the demo units, validated and checkpointed at steps 3 and 6."""
    return {
        "seed_everything": 0,
        "trainer": {
            "max_steps": STEPS,
            "val_check_interval": 3,
            "check_val_every_n_epoch": None,
            "limit_val_batches": 2,
            "num_sanity_val_steps": 0,
            "log_every_n_steps": 1,
            "default_root_dir": str(root),
            "enable_model_summary": False,
            "callbacks": [
                {"class_path": "callbacks.ResumableCheckpoint",
                 "init_args": {"monitor": "val/pair_acc", "mode": "max", "save_last": True}},
            ],
        },
        "model": {
            "class_path": "lit_mrrml.RewardModel",
            "init_args": {
                "backbone": {"path": str(folder), **backbone},
                "training_mode": "lora",
                "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
                "embedding_dim": 64,
                "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.0002}},
            },
        },
        "data": {
            "class_path": "lit_mrrml.RubricDataModule",
            "init_args": {
                "matrix": str(MATRIX_PATH),
                "train_files": [str(DEMO / "train.jsonl")],
                "val_files": [str(DEMO / "val.jsonl")],
                "max_length": 384,
                "batch_size": 8,
            },
        },
    }  # fmt: skip


@pytest.mark.parametrize(
    ("name", "backbone", "precision"),
    [
        ("fsdp_bf16_lora", {"dtype": "float32"}, "bf16-mixed"),
        (
            "fsdp_4bit_lora",
            {"dtype": "bfloat16", "quantization": {"bits": 4, "quant_type": "nf4", "double_quant": True,
                                                    "compute_dtype": "bfloat16", "storage_dtype": "bfloat16"}},
            "bf16-true",
        ),
    ],
)  # fmt: skip
def test_fsdp_trains_the_reward_model_on_smollm2(name, backbone, precision, smollm2_folder, tmp_path):
    task = write_config(tmp_path / "task.yaml", reward_task(smollm2_folder, tmp_path, **backbone))
    fit("--config", task, "--config", "configs/trainer/fsdp.yaml", "--trainer.devices=1",
        f"--trainer.precision={precision}", *measured(name))  # fmt: skip
    result = record(name)
    assert result["steps"] == STEPS
    assert all(math.isfinite(v) for v in result["metrics"]["train/loss"])
    assert 0 < result["peak_allocated_gib"] < 40
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()  # sharded: a folder of .distcp files
