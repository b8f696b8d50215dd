"""configs/paper/qwen3_32b_{reward,sft,grpo}.yaml: each parses with the command line's parser
(``--print_config``: nothing is built or downloaded), holds the settings the paper's scale needs,
and its header's memory lines are those lit_mrrml.memory_estimate computes for its own settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lit_mrrml.memory_estimate import PAPER_PLANS, header_lines
from lit_mrrml.trainer_cli import MRRMLCLI
from tests.conftest import ROOT

STAGES = ("reward", "sft", "grpo")


def path(stage: str) -> Path:
    return ROOT / "configs" / "paper" / f"qwen3_32b_{stage}.yaml"


def printed(stage: str, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    """The config LightningCLI resolves for ``fit --config <paper config> ...``, parsed, not run."""
    with pytest.raises(SystemExit) as done:
        MRRMLCLI(args=["fit", "--config", str(path(stage)), *extra, "--print_config"])
    assert done.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("stage", STAGES)
def test_a_paper_config_parses_as_fsdp_bf16_on_8_gpus(stage, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    config = printed(stage, capsys)
    trainer, model = config["trainer"], config["model"]["init_args"]
    assert trainer["accelerator"] == "gpu" and trainer["devices"] == 8 and trainer["precision"] == "bf16-true"
    strategy = trainer["strategy"]
    assert strategy["class_path"] == "lit_mrrml.strategies.BlockFSDPStrategy"
    assert strategy["init_args"]["checkpoint_blocks"] is True and strategy["init_args"]["use_orig_params"] is True
    assert strategy["init_args"]["state_dict_type"] == "sharded"
    assert model["training_mode"] == "lora" and model["lora"]["r"] == PAPER_PLANS[stage].lora_rank
    assert model["backbone"]["dtype"] == "bfloat16"
    for name in ("train_files", "val_files"):
        assert all((ROOT / f).is_file() for f in config["data"]["init_args"][name])


def test_the_reward_model_is_qlora_on_qwen3_32b_with_fsdp_storage(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    config = printed("reward", capsys)
    backbone = config["model"]["init_args"]["backbone"]
    assert backbone["path"] == "Qwen/Qwen3-32B"
    assert backbone["quantization"] == {
        "bits": 4, "quant_type": "nf4", "double_quant": True, "compute_dtype": "bfloat16", "storage_dtype": "bfloat16",
    }  # fmt: skip
    data = config["data"]["init_args"]
    assert data["batch_size"] * 4 * data["max_length"] == PAPER_PLANS["reward"].tokens  # K <= 4 responses a unit


def test_sft_trains_lora_on_qwen3_32b(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    config = printed("sft", capsys)
    assert config["model"]["class_path"] == "lit_mrrml.SFTPolicy"
    assert config["model"]["init_args"]["backbone"]["path"] == "Qwen/Qwen3-32B"
    data = config["data"]["init_args"]
    assert data["batch_size"] * data["max_length"] == PAPER_PLANS["sft"].tokens


def test_grpo_rolls_out_with_vllm_and_corrects_with_tis(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    config = printed("grpo", capsys)
    model, plan = config["model"]["init_args"], PAPER_PLANS["grpo"]
    assert model["backbone"]["path"] == "runs/paper/qwen3_32b_sft/export"  # the SFT stage's export
    engine = model["engine"]
    assert engine["class_path"] == "lit_mrrml.policy.vllm_engine.VLLMEngine"
    assert engine["init_args"]["gpu_memory_utilization"] == plan.vllm_fraction
    assert engine["init_args"]["tensor_parallel_size"] == plan.vllm_tp == 8
    assert engine["init_args"]["dtype"] == "bfloat16"
    prompt, completion = config["data"]["init_args"]["max_prompt_length"], model["max_new_tokens"]
    assert engine["init_args"]["max_model_len"] == prompt + completion
    assert model["micro_batch_size"] * (prompt + completion) == plan.tokens
    assert model["loss"]["init_args"]["tis_cap"] == 3.0
    assert model["reward"]["init_args"]["path"] == "runs/paper/qwen3_32b_reward/export"


def test_a_paper_config_composes_with_the_multinode_trainer_config(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    config = printed("grpo", capsys, "--config", "configs/trainer/multinode.yaml", "--trainer.num_nodes=4")
    assert config["trainer"]["num_nodes"] == 4 and config["trainer"]["devices"] == 8
    assert config["trainer"]["strategy"]["class_path"] == "lit_mrrml.strategies.BlockFSDPStrategy"


@pytest.mark.parametrize("stage", STAGES)
def test_the_header_gives_the_estimate_of_the_configs_own_settings(stage):
    text = path(stage).read_text().splitlines()
    expected = header_lines(PAPER_PLANS[stage])
    start = text.index(expected[0])
    assert text[start : start + len(expected)] == expected
    assert float(expected[-1].split("free: ")[1].split()[0]) > 0  # fits on an 80 GB GPU
