"""Exact resume after kill -9: a run killed mid-epoch (SIGKILL, in the middle of an optimizer step)
and resumed with ``fit --ckpt_path last`` takes the steps of the uninterrupted run, to float tolerance.

Each test runs the tiny config three times: uninterrupted (in this process), killed (the real
command in a subprocess, which kills itself with ``tests.resume_probe.KillAt`` after a mid-epoch
``last.ckpt``), and resumed from it (the real command again). ``tests.resume_probe.StepLog`` records
every step's metrics. Dropout is on (LoRA dropout), so the random states matter, and the training
order is shuffled (or cell-balanced), so the data order and the position in the epoch matter.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from lit_mrrml.trainer_cli import MRRMLCLI
from tests.conftest import ROOT
from tests.policy.conftest import tiny_reward_export  # noqa: F401 (a fixture)
from tests.resume_probe import read_steps

REWARD_CONFIG, POLICY_CONFIG = "configs/reward/tiny.yaml", "configs/policy/tiny.yaml"


def run_command(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "lit_mrrml", "fit", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def write_config(path: Path, settings: dict[str, Any], log: Path, keys: list[str], kill_at: int | None = None) -> Path:
    """A second --config: ``settings``, whose callbacks list (replacing the config's) gets the step
    log and, when ``kill_at`` is set, the kill."""
    callbacks = [
        *settings["trainer"]["callbacks"],
        {"class_path": "tests.resume_probe.StepLog", "init_args": {"path": str(log), "keys": keys}},
    ]
    if kill_at is not None:
        callbacks.append({"class_path": "tests.resume_probe.KillAt", "init_args": {"step": kill_at}})
    config = {**settings, "trainer": {**settings["trainer"], "callbacks": callbacks}}
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def checkpoint(monitor: str, every_n_train_steps: int) -> dict[str, Any]:
    """The shipped configs' ResumableCheckpoint, saving last.ckpt every ``every_n_train_steps`` too."""
    settings = {"monitor": monitor, "mode": "max", "save_top_k": 1, "save_last": True, "filename": "best-{step}"}
    return {
        "class_path": "callbacks.ResumableCheckpoint",
        "init_args": settings | {"every_n_train_steps": every_n_train_steps},
    }


def kill_and_resume(tmp_path: Path, base: list[str], write: Any, kill_at: int) -> tuple[Path, Path, Path, Path]:
    """Run uninterrupted (in this process), killed at ``kill_at`` steps and resumed (subprocesses);
    returns the uninterrupted and the killed-then-resumed roots and step logs."""
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    whole_log, broken_log = tmp_path / "whole.jsonl", tmp_path / "broken.jsonl"
    MRRMLCLI(
        args=[
            "fit",
            *base,
            "--config",
            str(write(tmp_path / "w.yaml", whole_log)),
            f"--trainer.default_root_dir={whole}",
        ]
    )
    killed = run_command(
        [
            *base,
            "--config",
            str(write(tmp_path / "k.yaml", broken_log, kill_at)),
            f"--trainer.default_root_dir={broken}",
        ]
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert last_position(broken) == (kill_at, {"epoch": 0, "batches_done": kill_at})  # mid-epoch 0
    resumed = run_command(
        [
            *base,
            "--config",
            str(write(tmp_path / "r.yaml", broken_log)),
            f"--trainer.default_root_dir={broken}",
            "--ckpt_path=last",
        ]
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restored all states from the checkpoint" in resumed.stderr
    return whole, broken, whole_log, broken_log


def assert_same_steps(whole_log: Path, broken_log: Path, keys: list[str], resumed_from: int, total: int) -> None:
    """The killed run logged steps 1..resumed_from (the kill came during the next one), the resumed
    run the rest, each with the uninterrupted run's values."""
    whole, broken = read_steps(whole_log), read_steps(broken_log)
    assert [r["step"] for r in whole] == list(range(1, total + 1))
    assert [r["step"] for r in broken] == list(range(1, total + 1))
    for key in keys:
        expected = torch.tensor([r[key] for r in whole], dtype=torch.float64)
        actual = torch.tensor([r[key] for r in broken], dtype=torch.float64)
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-7, msg=f"{key} per step")
    assert len({round(r[keys[0]], 6) for r in whole[resumed_from:]}) > 1  # the compared steps differ


def assert_same_weights(whole: Path, broken: Path, step: int) -> None:
    a = torch.load(whole / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(broken / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == step
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=1e-5, atol=1e-6, msg=key)


def last_position(root: Path) -> tuple[int, dict[str, int]]:
    """The global step and the train loader's position saved in ``root``'s last.ckpt."""
    checkpoint = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)
    (loader,) = checkpoint["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    return checkpoint["global_step"], loader


REWARD_KEYS = ["train/loss", "train/loss_rank", "gprc/alpha"]
# 5 steps an epoch, 2 epochs; last.ckpt every 3 steps: the kill during step 4 resumes at step 3,
# mid-epoch 0, and the resumed run goes on into epoch 1 (a new order). LoRA dropout, a learning-rate
# schedule and the GPRC warm-up all run across the resume.
REWARD_SETTINGS = {
    "trainer": {
        "max_epochs": 2,
        "limit_train_batches": 5,
        "limit_val_batches": 1,
        "num_sanity_val_steps": 0,
        "callbacks": [
            checkpoint("val/pair_acc", every_n_train_steps=3),
            {"class_path": "callbacks.GPRCWarmup", "init_args": {"steps": 6}},
        ],
    },
    "model": {
        "init_args": {
            "training_mode": "lora",
            "lora": {"dropout": 0.3},
            "lr_scheduler": {
                "class_path": "torch.optim.lr_scheduler.StepLR",
                "init_args": {"step_size": 2, "gamma": 0.7},
            },
        }
    },
}


@pytest.mark.parametrize(  # about 80 s each on 2 cores: the cell-balanced one runs with make test-slow
    "balance_cells", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["shuffled", "cell_balanced"]
)
def test_reward_model_resumes_a_killed_run_on_the_same_curve(tmp_path, monkeypatch, balance_cells):
    monkeypatch.chdir(ROOT)
    settings = {**REWARD_SETTINGS, "data": {"init_args": {"balance_cells": balance_cells}}}

    def write(path: Path, log: Path, kill_at: int | None = None) -> Path:
        return write_config(path, settings, log, REWARD_KEYS, kill_at)

    whole, broken, whole_log, broken_log = kill_and_resume(tmp_path, ["--config", REWARD_CONFIG], write, kill_at=3)
    assert_same_steps(whole_log, broken_log, REWARD_KEYS, resumed_from=3, total=10)
    assert_same_weights(whole, broken, step=10)


POLICY_KEYS = ["policy/loss", "reward/total/mean", "policy/kl"]
# LoRA with dropout kept on; last.ckpt after every step: the kill during step 3 resumes at step 2
POLICY_SETTINGS = {
    "trainer": {"max_steps": 4, "callbacks": [checkpoint("val/reward/total", every_n_train_steps=1)]},
    "model": {"init_args": {"training_mode": "lora", "lora": {"dropout": 0.3}, "disable_dropout": False}},
}


@pytest.mark.slow  # about 30 s on 2 cores: make test-slow
def test_grpo_resumes_a_killed_run_on_the_same_curve(tmp_path, monkeypatch, tiny_reward_export):  # noqa: F811
    monkeypatch.chdir(ROOT)

    def write(path: Path, log: Path, kill_at: int | None = None) -> Path:
        return write_config(path, POLICY_SETTINGS, log, POLICY_KEYS, kill_at)

    base = ["--config", POLICY_CONFIG, f"--model.reward.init_args.path={tiny_reward_export}"]
    whole, broken, whole_log, broken_log = kill_and_resume(tmp_path, base, write, kill_at=2)
    assert_same_steps(whole_log, broken_log, POLICY_KEYS, resumed_from=2, total=4)
    assert_same_weights(whole, broken, step=4)
