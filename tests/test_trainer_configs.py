"""configs/trainer/*.yaml: every one completes every tiny task config as a second ``--config``;
BlockFSDPStrategy finds the wrap unit from the loaded model; two-process DDP and FSDP2 runs of the
reward model (every mode) and of both policies, from the command line."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy, ModelParallelStrategy, SingleDeviceStrategy
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from lit_mrrml.cli import main
from lit_mrrml.errors import InputError
from lit_mrrml.models.lora import LoraSpec, add_lora
from lit_mrrml.models.tiny import TINY_QWEN2
from lit_mrrml.strategies import BlockFSDPStrategy, block_types
from lit_mrrml.trainer_cli import MRRMLCLI
from tests.conftest import ROOT, csv_logger
from tests.policy.conftest import tiny_reward_export  # noqa: F401  (the fixture, for the GRPO config)

TRAINER_CONFIGS = sorted((ROOT / "configs" / "trainer").glob("*.yaml"))
TASKS = {
    "reward": "configs/reward/tiny.yaml",
    "sft": "configs/policy/tiny_sft.yaml",
    "grpo": "configs/policy/tiny.yaml",
}
STRATEGIES = {"ddp": DDPStrategy, "fsdp_cpu": ModelParallelStrategy, "cpu": SingleDeviceStrategy}
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}


def trainer_block(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())["trainer"]


def test_trainer_configs_hold_only_the_hardware_with_a_header():
    assert {p.stem for p in TRAINER_CONFIGS} == {"cpu", "gpu", "ddp", "fsdp", "fsdp_cpu", "multinode"}
    for path in TRAINER_CONFIGS:
        config = yaml.safe_load(path.read_text())
        assert set(config) == {"trainer"}, path  # a second --config: nothing of the task's
        assert not {"callbacks", "default_root_dir", "logger"} & set(config["trainer"]), path
        header = path.read_text().split("\ntrainer:")[0]
        assert all(line.startswith("#") for line in header.splitlines()) and "Needs" in header, path
        assert f"--config configs/trainer/{path.name}" in header or path.stem == "multinode", path
    multinode = (ROOT / "configs" / "trainer" / "multinode.yaml").read_text()
    assert "torchrun --nnodes=2 --nproc_per_node=8" in multinode and "\n#   srun python -m lit_mrrml fit" in multinode
    assert "#SBATCH --ntasks-per-node=8" in multinode and trainer_block(ROOT / "configs/trainer/multinode.yaml") == {
        "accelerator": "gpu",
        "devices": 8,
        "num_nodes": 2,
    }


class ParseOnly(MRRMLCLI):
    """Parses (composition, types, every strategy's init_args) without building anything: the GPU
    configs cannot build a Trainer on a CPU machine."""

    def instantiate_classes(self) -> None:
        pass


def args(task: str, trainer: Path, reward: Path | None) -> list[str]:
    extra = [f"--model.init_args.reward.init_args.path={reward}"] if task == "grpo" and reward else []
    return ["--config", TASKS[task], "--config", str(trainer.relative_to(ROOT)), *extra]


@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("trainer", TRAINER_CONFIGS, ids=lambda p: p.stem)
def test_every_trainer_config_completes_every_task_config(task, trainer, monkeypatch):
    monkeypatch.chdir(ROOT)
    config = ParseOnly(args=args(task, trainer, None), run=False).config
    block = trainer_block(trainer)
    for key, value in block.items():  # the trainer config's settings win...
        got = config.trainer[key]
        if isinstance(value, dict):  # a strategy class with its init_args
            assert got.class_path == value["class_path"]
            assert got.init_args.as_dict().items() >= value["init_args"].items()
        else:
            assert got == value, key
    for key, value in yaml.safe_load((ROOT / TASKS[task]).read_text())["trainer"].items():  # ...the rest stays
        if key == "callbacks":
            assert [c.class_path for c in config.trainer.callbacks] == [c["class_path"] for c in value]
        elif key not in block:
            assert config.trainer[key] == value, key


@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_the_cpu_configs_build_the_strategy_they_name(task, name, tiny_reward_export, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.chdir(ROOT)
    trainer_config = ROOT / "configs" / "trainer" / f"{name}.yaml"
    cli = MRRMLCLI(
        args=[*args(task, trainer_config, tiny_reward_export), f"--trainer.default_root_dir={tmp_path}"], run=False
    )
    block = trainer_block(trainer_config)
    assert type(cli.trainer.strategy) is STRATEGIES[name]
    assert cli.trainer.precision == block["precision"] == "32-true"
    assert cli.trainer.num_devices == block["devices"] and cli.trainer.num_nodes == 1
    if name == "fsdp_cpu":
        assert cli.trainer.strategy._data_parallel_size == 2 and cli.trainer.strategy._tensor_parallel_size == 1


def test_the_fsdp_config_builds_a_block_fsdp_strategy():
    strategy_config = trainer_block(ROOT / "configs" / "trainer" / "fsdp.yaml")["strategy"]
    assert strategy_config["class_path"] == "lit_mrrml.strategies.BlockFSDPStrategy"
    strategy = BlockFSDPStrategy(**strategy_config["init_args"])
    assert isinstance(strategy, FSDPStrategy) and strategy.checkpoint_blocks
    assert strategy._state_dict_type == "sharded" and strategy.kwargs["use_orig_params"] is True
    assert str(strategy.sharding_strategy) == "ShardingStrategy.FULL_SHARD"
    assert "auto_wrap_policy" not in strategy.kwargs  # computed from the model at setup


# ---- BlockFSDPStrategy: the wrap unit from the loaded model -------------------------------------
def tiny(model_type: str, lm_head: bool = False) -> nn.Module:
    fields = {k: v for k, v in TINY_QWEN2.items() if k != "model_type"}
    auto = AutoModelForCausalLM if lm_head else AutoModel
    return auto.from_config(AutoConfig.for_model(model_type, **fields))


def wrapped_modules(policy: Any, model: nn.Module) -> list[nn.Module]:
    return list(policy._run_policy(model, set(), {}))


@pytest.mark.parametrize(
    ("model_type", "block"), [("qwen2", "Qwen2DecoderLayer"), ("llama", "LlamaDecoderLayer")], ids=["qwen2", "llama"]
)
def test_the_wrap_and_checkpointing_unit_is_the_decoder_layer(model_type, block):
    model = tiny(model_type)
    strategy = BlockFSDPStrategy(checkpoint_blocks=True)
    found = strategy.configure_policies(model)
    assert {t.__name__ for t in found} == {block}
    layers = list(model.layers)  # type: ignore[arg-type]
    assert wrapped_modules(strategy.kwargs["auto_wrap_policy"], model) == layers
    assert wrapped_modules(strategy._activation_checkpointing_kwargs["auto_wrap_policy"], model) == layers


def test_a_lora_wrapped_causal_lm_inside_a_module_is_found_too():
    peft_model = add_lora(tiny("llama", lm_head=True), LoraSpec(), False, False, task_type="CAUSAL_LM")
    holder = nn.ModuleDict({"policy": peft_model, "head": nn.Linear(4, 2)})  # as in a LightningModule
    strategy = BlockFSDPStrategy()
    assert {t.__name__ for t in strategy.configure_policies(holder)} == {"LlamaDecoderLayer"}
    wrapped = wrapped_modules(strategy.kwargs["auto_wrap_policy"], holder)
    assert len(wrapped) == 2 and all(type(m).__name__ == "LlamaDecoderLayer" for m in wrapped)
    assert strategy._activation_checkpointing_kwargs == {}  # checkpoint_blocks off


def test_setup_wraps_with_the_policy_computed_from_the_model(monkeypatch):
    seen: dict[str, Any] = {}

    def lightning_wrap(self: FSDPStrategy, model: nn.Module) -> nn.Module:
        seen["policy"] = self.kwargs.get("auto_wrap_policy")
        return model

    monkeypatch.setattr(FSDPStrategy, "_setup_model", lightning_wrap)
    model = tiny("qwen2")
    BlockFSDPStrategy()._setup_model(model)
    assert wrapped_modules(seen["policy"], model) == list(model.layers)  # type: ignore[arg-type]


def test_a_model_without_blocks_and_a_hand_made_policy_are_refused():
    with pytest.raises(InputError, match=r"^BlockFSDPStrategy: Sequential has no transformer block to wrap .*ddp"):
        BlockFSDPStrategy().configure_policies(nn.Sequential(nn.Linear(4, 4), nn.ReLU()))
    assert block_types(tiny("qwen2"))  # the same call on a transformer finds its blocks
    with pytest.raises(InputError, match=r"remove \['auto_wrap_policy'\] \(set checkpoint_blocks instead\)"):
        BlockFSDPStrategy(auto_wrap_policy={nn.Linear})


def test_grpo_refuses_lightnings_accumulation_in_one_line(tiny_reward_export, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.chdir(ROOT)
    argv = ["fit", "--config", TASKS["grpo"], f"--model.init_args.reward.init_args.path={tiny_reward_export}"]
    code = main([*argv, f"--trainer.default_root_dir={tmp_path}", "--trainer.accumulate_grad_batches=2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: trainer.accumulate_grad_batches=2: GRPOPolicy optimises manually")
    assert "model.init_args.micro_batch_size" in err[-1]
    assert not (tmp_path / "checkpoints").exists()  # refused before any step


# ---- two processes from the command line --------------------------------------------------------
LIMITS = {
    "reward": ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.num_sanity_val_steps=0"],
    "sft": ["--trainer.max_steps=2", "--trainer.val_check_interval=2"],
    "grpo": ["--trainer.max_steps=2", "--trainer.val_check_interval=2", "--model.init_args.max_new_tokens=8"],
}
DEFAULT_RUNS = {("reward", "lora", "ddp")}
RUNS = [  # about 25 s each on 2 cores: one in the default suite, the rest with make test-slow
    pytest.param(
        task,
        mode,
        trainer,
        id=f"{task}-{mode}-{trainer}",
        marks=() if (task, mode, trainer) in DEFAULT_RUNS else pytest.mark.slow,
    )
    for trainer in ("ddp", "fsdp_cpu")
    for task, mode in (("reward", "frozen"), ("reward", "lora"), ("reward", "full"), ("sft", "full"), ("grpo", "full"))
]


def train_loss(metrics_file: Path, task: str) -> float:
    key = "policy/loss" if task == "grpo" else "train/loss"
    rows = [row for row in csv.DictReader(metrics_file.open()) if row.get(key)]
    assert rows, f"no {key} in {metrics_file}"
    return float(rows[-1][key])


@pytest.mark.distributed
@pytest.mark.parametrize(("task", "mode", "trainer"), RUNS)
def test_two_processes_train_from_the_command_line(task, mode, trainer, tiny_reward_export, tmp_path):  # noqa: F811
    command = [
        sys.executable,
        "-m",
        "lit_mrrml",
        "fit",
        *args(task, ROOT / "configs" / "trainer" / f"{trainer}.yaml", tiny_reward_export),
        f"--trainer.default_root_dir={tmp_path}",
        f"--model.init_args.training_mode={mode}",
        "--trainer.limit_val_batches=1",
        "--trainer.log_every_n_steps=1",
        *LIMITS[task],
        *csv_logger(tmp_path),
    ]
    done = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    unit = {"reward": "units", "sft": "conversations", "grpo": "prompts x 4 rollouts"}[task]
    assert f"{unit} per device x 2 device(s) x 1 node x 1 accumulated" in done.stderr
    (metrics_file,) = tmp_path.glob("lightning_logs/version_0/metrics.csv")
    assert math.isfinite(train_loss(metrics_file, task))
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert last.is_dir() if trainer == "fsdp_cpu" else last.is_file()  # FSDP2: one shard a rank
    if trainer == "ddp":
        state = torch.load(last, map_location="cpu", weights_only=True)
        assert state["global_step"] == 2 and state["state_dict"]
    if task == "sft":  # ExportOnFitEnd: under FSDP2 the shards are gathered first; the export holds the last weights
        from transformers import AutoModelForCausalLM

        from lit_mrrml.modules.sharded_checkpoint import load_sharded_checkpoint

        saved = load_sharded_checkpoint(last) if last.is_dir() else torch.load(last, map_location="cpu")
        exported = AutoModelForCausalLM.from_pretrained(tmp_path / "export").state_dict()
        weights = {k.removeprefix("policy."): v for k, v in saved["state_dict"].items()}
        assert exported.keys() <= weights.keys() and len(exported) > 10
        for name, value in exported.items():
            assert torch.equal(value, weights[name]), name
