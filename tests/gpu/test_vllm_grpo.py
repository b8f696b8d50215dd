"""GRPO with vLLM rollouts on a real GPU (needs the ``vllm`` extra): three steps of LoRA GDPO on
SmolLM2-135M-Instruct against a rule reward, vLLM colocated in the training process. The gap
between vLLM's processed log-probabilities and the trainer's stays small (at temperature 0.7, the
raw log-probabilities vLLM returns by default would be far off), also after the optimizer steps,
which it would not be if the merged weights were not loaded into vLLM after each step. Records
peak memory, step time and the gap per step (benchmarks/README.md)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEMO, MATRIX_PATH
from tests.gpu.conftest import GPU, fit, measured, record, write_config

pytestmark = [*GPU, pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs lit_mrrml[vllm]")]
STEPS = 3


def grpo_task(folder: Path, root: Path) -> dict[str, Any]:
    return {
        "seed_everything": 0,
        "trainer": {
            "max_steps": STEPS,
            "limit_val_batches": 0,
            "num_sanity_val_steps": 0,
            "log_every_n_steps": 1,
            "default_root_dir": str(root),
            "enable_model_summary": False,
            "enable_checkpointing": False,
        },
        "model": {
            "class_path": "lit_mrrml.GRPOPolicy",
            "init_args": {
                "backbone": {"path": str(folder), "dtype": "bfloat16"},
                "training_mode": "lora",
                "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
                "reward": {
                    "class_path": "lit_mrrml.policy.rewards.CallableReward",
                    "init_args": {"function": "lit_mrrml.testing.policy_rewards.target_share", "dimensions": ["share"]},
                },
                "engine": {
                    "class_path": "lit_mrrml.policy.vllm_engine.VLLMEngine",
                    "init_args": {"gpu_memory_utilization": 0.3, "max_model_len": 512, "dtype": "bfloat16",
                                  "enforce_eager": True},
                },
                "loss": {"class_path": "lit_mrrml.GRPOLoss", "init_args": {"beta": 0.04, "tis_cap": 3.0}},
                "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.0005}},
                "num_generations": 8,
                "max_new_tokens": 128,
                "temperature": 0.7,
                "micro_batch_size": 16,
            },
        },
        "data": {
            "class_path": "lit_mrrml.PromptDataModule",
            "init_args": {
                "matrix": str(MATRIX_PATH),
                "train_files": [str(DEMO / "train.jsonl")],
                "max_prompt_length": 256,
                "batch_size": 4,
            },
        },
    }  # fmt: skip


def test_grpo_with_vllm_rollouts_for_three_steps(smollm2_folder, tmp_path):
    task = write_config(tmp_path / "task.yaml", grpo_task(smollm2_folder, tmp_path))
    fit("--config", task, "--config", "configs/trainer/gpu.yaml", "--trainer.precision=bf16-true",
        *measured("grpo_vllm_lora"))  # fmt: skip
    result = record("grpo_vllm_lora")
    metrics = result["metrics"]
    assert result["steps"] == STEPS
    assert all(math.isfinite(v) for v in metrics["policy/loss"])
    gaps = metrics["rollout/logp_gap"]
    assert len(gaps) == STEPS and all(0 <= g < 0.1 for g in gaps), gaps  # after each weight sync too
    assert all(0 < w <= 3.0 for w in metrics["tis/weight_mean"])
