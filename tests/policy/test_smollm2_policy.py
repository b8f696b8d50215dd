"""Slow: the real SmolLM2-135M-Instruct as a policy: two GRPO steps with LoRA against a SmolLM2
reward model of the demo's configuration, then its merged export answers two HealthBench rows."""

from __future__ import annotations

import json
import math

import lightning as L
import pytest
import torch
from transformers import AutoModelForCausalLM

from lit_mrrml import GRPOLoss, GRPOPolicy
from lit_mrrml.cli import main
from lit_mrrml.policy.rewards import RewardModelReward
from lit_mrrml.testing import ChatServer, RubricJudgeRules
from tests.conftest import DEMO
from tests.healthbench.conftest import GRADED_ROWS, write_rows
from tests.modules.test_grpo import prompts
from tests.modules.test_reward_model import make_data, make_model, trainer
from tests.policy.test_export_answers import LOCAL
from tests.test_smollm2 import SMOLLM2

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2_reward(matrix, tmp_path_factory):
    """The demo reward model's configuration (frozen SmolLM2, linear GPRC head), trained 3 steps."""
    folder = tmp_path_factory.mktemp("reward")
    torch.manual_seed(0)
    model = make_model(SMOLLM2, matrix, training_mode="frozen")
    data = make_data(SMOLLM2, {s: DEMO / f"{s}.jsonl" for s in ("train", "val", "test")})
    data.max_length = 160
    trainer(folder, max_steps=3, limit_val_batches=0).fit(model, datamodule=data)
    return model.save_pretrained(folder / "export")


def test_smollm2_policy_makes_two_grpo_steps_and_its_export_answers_healthbench(smollm2_reward, tmp_path):
    torch.manual_seed(0)
    policy = GRPOPolicy(
        backbone=SMOLLM2,
        reward=RewardModelReward(str(smollm2_reward), max_length=256),
        training_mode="lora",
        loss=GRPOLoss(beta=0.04),
        num_generations=2,
        max_new_tokens=12,
        micro_batch_size=2,
        optimizer=lambda p: torch.optim.AdamW(p, lr=1e-3),
    )
    data = prompts(SMOLLM2, batch_size=1)
    data.max_val_prompts = 1
    run = L.Trainer(
        accelerator="cpu",
        precision="32-true",
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        limit_val_batches=1,
    )
    policy.configure_model()
    lora = {n: p.detach().clone() for n, p in policy.policy.named_parameters() if p.requires_grad}
    run.fit(policy, datamodule=data)
    assert math.isfinite(float(run.callback_metrics["policy/loss"]))
    assert 0 < float(run.callback_metrics["completions/mean_length"]) <= 12  # max_new_tokens
    moved = [n for n, p in policy.policy.named_parameters() if p.requires_grad and not torch.equal(p, lora[n])]
    assert moved, "no LoRA weight changed"
    export = policy.save_pretrained(tmp_path / "export")
    merged = AutoModelForCausalLM.from_pretrained(export)
    assert sum(p.numel() for p in merged.parameters()) == sum(
        p.numel() for n, p in policy.policy.named_parameters() if "lora_" not in n
    )
    rows = write_rows(tmp_path / "rows.jsonl", GRADED_ROWS[:2])
    with ChatServer(RubricJudgeRules()) as judge:
        code = main(
            [
                "healthbench",
                "--config",
                str(LOCAL),
                "--policy.init_args.batch_size=2",
                f"--policy.init_args.model={json.dumps({'path': str(export), 'gguf_file': None})}",
                f"--rows.path={rows}",
                "--rows.limit=null",
                "--answers.max_tokens=16",
                f"--judge.init_args.base_url={judge.url}",
                f"--output_dir={tmp_path / 'hb'}",
                "--progress=false",
            ]
        )
    assert code == 0
    results = json.loads((tmp_path / "hb" / "results.json").read_text())
    assert results["policy"]["id"] == f"hf:{export}"
    assert results["rows"]["graded"] == 2 and results["rows"]["unanswered"] == 0
