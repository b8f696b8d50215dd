"""The command line: every shipped YAML parses; fit/test/predict run once in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lit_mrrml.cli import MRRMLCLI
from tests.conftest import ROOT

CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))
TRAINING_CONFIGS = [
    p for p in CONFIGS if "trainer" in yaml.safe_load(p.read_text()) or "model" in yaml.safe_load(p.read_text())
]


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "lit_mrrml", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_every_shipped_yaml_is_valid_yaml():
    assert CONFIGS, "no configs shipped"
    for path in CONFIGS:
        assert yaml.safe_load(path.read_text()) is not None, path


@pytest.mark.parametrize("config", TRAINING_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_training_config_parses_and_instantiates_its_data_links(config, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cli = MRRMLCLI(args=["--config", str(config), f"--trainer.default_root_dir={tmp_path}"], run=False)
    assert cli.model.num_dimensions == len(cli.datamodule.matrix.dimensions)
    assert cli.model.dimension_names == list(cli.datamodule.matrix.dimension_ids)
    assert cli.datamodule.backbone == cli.model.spec  # linked from model.backbone


def test_print_config_shows_the_resolved_config():
    out = run_cli(
        "fit", "--config", "configs/reward/tiny.yaml", "--model.init_args.loss.init_args.alpha=0.3", "--print_config"
    )
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    assert config["model"]["init_args"]["loss"]["init_args"]["alpha"] == 0.3
    assert config["data"]["init_args"]["matrix"] == "configs/matrix/medical_dsd.yaml"


def test_fit_test_predict_from_the_command_line(tmp_path):
    flags = [
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=3",
        "--trainer.limit_val_batches=2",
        "--trainer.limit_test_batches=2",
        "--trainer.limit_predict_batches=2",
    ]
    fit = run_cli("fit", "--config", "configs/reward/tiny.yaml", *flags)
    assert fit.returncode == 0, fit.stderr[-3000:]
    version = tmp_path / "lightning_logs" / "version_0"
    saved = yaml.safe_load((version / "config.yaml").read_text())  # beside the checkpoints
    assert saved["model"]["class_path"] == "lit_mrrml.RewardModel"
    (checkpoint,) = (version / "checkpoints").glob("*.ckpt")

    test = run_cli("test", "--config", "configs/reward/tiny.yaml", *flags, f"--ckpt_path={checkpoint}")
    assert test.returncode == 0, test.stderr[-3000:]
    metrics = json.loads((tmp_path / "lightning_logs" / "version_1" / "test_metrics.json").read_text())
    assert 0.0 <= metrics["test/pair_acc"] <= 1.0 and "test/pair_acc/safety" in metrics

    validate = run_cli("validate", "--config", "configs/reward/tiny.yaml", *flags, f"--ckpt_path={checkpoint}")
    assert validate.returncode == 0, validate.stderr[-3000:]
    val = json.loads((tmp_path / "lightning_logs" / "version_2" / "val_metrics.json").read_text())
    assert "val/pair_acc/accuracy" in val and "val/loss" in val

    predict = run_cli("predict", "--config", "configs/reward/tiny.yaml", *flags, f"--ckpt_path={checkpoint}")
    assert predict.returncode == 0, predict.stderr[-3000:]
    written = tmp_path / "lightning_logs" / "version_3" / "predictions.jsonl"  # the config's RewardPredictionWriter
    record = json.loads(written.read_text().splitlines()[0])
    assert set(record) == {"id", "response", "rewards", "total"} and len(record["rewards"]) == 6


def test_bad_config_value_fails_with_a_message():
    out = run_cli("fit", "--config", "configs/reward/tiny.yaml", "--model.init_args.training_mode=half")
    assert out.returncode != 0
    assert "training_mode" in out.stderr
