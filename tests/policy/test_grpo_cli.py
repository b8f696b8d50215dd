"""GRPOPolicy through the command line on configs/policy/tiny.yaml: a two-step run, the real
command in a subprocess, and resume from last.ckpt drawing the rollouts an uninterrupted run draws."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

from lit_mrrml.modules.grpo import GRPOPolicy
from lit_mrrml.trainer_cli import MRRMLCLI
from tests.conftest import ROOT, csv_logger
from tests.policy.recording import read_draws
from tests.test_cli import run_cli

CONFIG = "configs/policy/tiny.yaml"


def cli_args(root: Path, reward: Path, *extra: str, record: Path | None = None) -> list[str]:
    args = ["--config", CONFIG, f"--trainer.default_root_dir={root}", f"--model.reward.init_args.path={reward}"]
    if record is not None:
        args += ["--model.engine=tests.policy.recording.RecordingEngine", f"--model.engine.path={record}"]
    return [*args, *extra]


def test_two_steps_change_the_policy_and_keep_the_reference(tiny_reward_export, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    record = tmp_path / "draws.jsonl"
    args = cli_args(tmp_path, tiny_reward_export, "--trainer.max_steps=2", record=record)
    cli = MRRMLCLI(args=args, run=False)
    model = cli.model
    assert isinstance(model, GRPOPolicy)
    model.configure_model()
    start = {k: v.clone() for k, v in model.policy.state_dict().items()}
    reference = {k: v.clone() for k, v in model.reference.state_dict().items()}
    cli.trainer.fit(model, datamodule=cli.datamodule)
    assert model.trainer.global_step == 2
    assert math.isfinite(float(cli.trainer.callback_metrics["policy/loss"]))
    assert any(not torch.equal(start[k], v) for k, v in model.policy.state_dict().items())
    assert all(torch.equal(reference[k], v) for k, v in model.reference.state_dict().items())
    draws = read_draws(record, g=4)
    assert len(draws) == 2 and all(len(c) <= 16 for d in draws for c in d["completions"])  # max_new_tokens
    assert len(read_draws(record, g=1)) >= 1  # validation before the first step


def test_the_command_runs_and_logs_every_metric(tiny_reward_export, tmp_path):
    out = run_cli("fit", *cli_args(tmp_path, tiny_reward_export), *csv_logger(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    (metrics_file,) = tmp_path.glob("lightning_logs/version_0/metrics.csv")
    rows = list(csv.DictReader(metrics_file.open()))
    logged = {k for row in rows for k, v in row.items() if v}
    for key in (
        "policy/loss",
        "policy/kl",
        "policy/clip_frac/low",
        "policy/clip_frac/high",
        "policy/entropy",
        "policy/grad_norm",
        "completions/mean_length",
        "completions/truncated_frac",
        "reward/safety/mean",
        "reward/safety/std",
        "reward/total/mean",
        "advantage/mean",
        "advantage/std",
        "frac_zero_std/safety",
        "val/reward/safety",
        "val/reward/total",
        "val/length",
    ):
        assert key in logged, key
    values = [float(v) for row in rows for k, v in row.items() if v and k != "epoch"]
    assert all(math.isfinite(v) for v in values)
    first_val = next(row for row in rows if row.get("val/reward/total"))
    assert first_val["step"] == "0"  # validated before the first step
    samples = (tmp_path / "lightning_logs/version_0/rollout_samples.jsonl").read_text().splitlines()
    assert len(samples) >= 4  # 2 samples per validation, three validations
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


@pytest.fixture(scope="module")
def uninterrupted(tiny_reward_export, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("whole")
    record = root / "draws.jsonl"
    MRRMLCLI(args=["fit", *cli_args(root, tiny_reward_export, record=record)])
    return root, record


def test_resume_from_last_draws_the_same_rollouts(uninterrupted, tiny_reward_export, tmp_path, monkeypatch):
    """Stop after 2 of 4 steps, resume with --ckpt_path last: steps 3 and 4 draw the uninterrupted
    run's rollouts, and the final weights and optimizer state are the same."""
    monkeypatch.chdir(ROOT)
    whole_root, whole_record = uninterrupted
    record = tmp_path / "draws.jsonl"
    MRRMLCLI(args=["fit", *cli_args(tmp_path, tiny_reward_export, "--trainer.max_steps=2", record=record)])
    first_half = len(read_draws(record, g=4))
    MRRMLCLI(args=["fit", *cli_args(tmp_path, tiny_reward_export, "--ckpt_path=last", record=record)])
    resumed, whole = read_draws(record, g=4), read_draws(whole_record, g=4)
    assert first_half == 2 and len(resumed) == len(whole) == 4
    assert resumed[2:] == whole[2:]  # the same prompts, seeds and completions after the resume
    a = torch.load(whole_root / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 4
    assert a["lit_mrrml_policy"] == b["lit_mrrml_policy"]
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=0, atol=1e-6)
    (opt_a,), (opt_b,) = a["optimizer_states"], b["optimizer_states"]
    for index, state in opt_a["state"].items():
        for name, value in state.items():
            torch.testing.assert_close(opt_b["state"][index][name], value, rtol=0, atol=1e-6)
