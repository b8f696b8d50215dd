"""The command line: every shipped YAML parses; fit/test/predict run once in a subprocess."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from lit_mrrml import GRPOPolicy, RewardModel, SFTPolicy
from lit_mrrml.cli import input_error, main
from lit_mrrml.trainer_cli import MRRMLCLI
from tests.conftest import ROOT, csv_logger

CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))
TRAINING_CONFIGS = [  # configs/trainer/*.yaml only complete a task config: tests/test_trainer_configs.py
    p
    for p in CONFIGS
    if ("trainer" in yaml.safe_load(p.read_text()) or "model" in yaml.safe_load(p.read_text()))
    and p.parent.name not in ("trainer", "paper")  # paper: GPU configs, parsed by tests/test_paper_configs.py
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
    assert cli.datamodule.backbone == cli.model.spec  # linked from model.backbone
    if isinstance(cli.model, RewardModel):
        assert cli.model.num_dimensions == len(cli.datamodule.matrix.dimensions)
        assert cli.model.dimension_names == list(cli.datamodule.matrix.dimension_ids)
    elif isinstance(cli.model, GRPOPolicy):  # the scenario weights and the reward model's dimension check
        assert cli.model.matrix_snapshot == cli.datamodule.matrix.to_dict()
    else:
        assert isinstance(cli.model, SFTPolicy)


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
    saved = yaml.safe_load((version / "config.yaml").read_text())  # the run's resolved config
    assert saved["model"]["class_path"] == "lit_mrrml.RewardModel"
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.ckpt"))  # one folder for every run
    assert names == ["best-epoch=0.ckpt", "last.ckpt"]
    checkpoint = tmp_path / "checkpoints" / "best-epoch=0.ckpt"

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


TINY = "configs/reward/tiny.yaml"
LIMITS = ["--trainer.limit_train_batches=3", "--trainer.limit_val_batches=1", "--trainer.limit_predict_batches=1"]


@pytest.mark.parametrize("config", TRAINING_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_training_config_saves_last_beside_the_best_in_one_folder(config, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cli = MRRMLCLI(args=["--config", str(config), f"--trainer.default_root_dir={tmp_path}"], run=False)
    (callback,) = cli.trainer.checkpoint_callbacks
    assert callback.save_last is True and callback.save_top_k == 1
    assert callback.dirpath == str(tmp_path / "checkpoints")  # not the logger's version_N: stable across runs


def test_fit_says_when_it_does_not_resume_an_earlier_run(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(ROOT)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    cli = MRRMLCLI(args=["--config", TINY, f"--trainer.default_root_dir={tmp_path}"], run=False)
    with caplog.at_level(logging.WARNING, logger="lit_mrrml"):
        cli.before_fit()
    assert [r.getMessage() for r in caplog.records if r.name.startswith("lit_mrrml")] == [
        f"{tmp_path / 'checkpoints'} already holds last.ckpt from an earlier run: this run starts from scratch and "
        "saves beside it (add --ckpt_path last to resume that run instead)"
    ]


def last_checkpoint(root: Path) -> dict:
    """The epoch and step of ``root``'s last.ckpt, once it exists and is whole."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            checkpoint = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
            return {"epoch": checkpoint["epoch"], "global_step": checkpoint["global_step"]}
        except (FileNotFoundError, RuntimeError, EOFError):  # not written yet
            time.sleep(0.2)
    raise AssertionError("no last.ckpt after 300 s")


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory) -> tuple[Path, dict]:
    """A tiny run killed with SIGKILL after at least two epochs: its folder and its last.ckpt's position."""
    root = tmp_path_factory.mktemp("killed")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "lit_mrrml", "fit", "--config", TINY, f"--trainer.default_root_dir={root}"]
    process = subprocess.Popen(
        [*command, "--trainer.max_epochs=1000", *LIMITS],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        while last_checkpoint(root)["epoch"] < 1:
            assert process.poll() is None, process.stderr.read().decode()[-3000:] if process.stderr else ""
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    return root, last_checkpoint(root)


def test_fit_resumes_from_last_after_a_kill(killed_run):
    root, killed = killed_run
    steps = 3  # limit_train_batches
    assert killed["global_step"] == steps * (killed["epoch"] + 1)  # saved at the end of an epoch
    stop = killed["epoch"] + 2
    out = run_cli(
        "fit",
        "--config",
        TINY,
        f"--trainer.default_root_dir={root}",
        "--ckpt_path=last",
        f"--trainer.max_epochs={stop}",
        *LIMITS,
        *csv_logger(root),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"Restored all states from the checkpoint at {root / 'checkpoints' / 'last.ckpt'}" in out.stderr
    assert last_checkpoint(root) == {"epoch": stop - 1, "global_step": steps * stop}  # one more epoch, not a restart
    resumed = max((root / "lightning_logs").iterdir(), key=lambda p: int(p.name.split("_")[1]))
    with (resumed / "metrics.csv").open() as handle:
        epochs = {row["epoch"] for row in csv.DictReader(handle)}
    assert epochs == {str(stop - 1)}


def test_fit_resumes_a_checkpoint_with_the_old_quantization_spelling(killed_run, tmp_path, monkeypatch):
    """A checkpoint written before backbone.quantization became an object (``quantization: none`` and
    a separate ``quant_type``) still resumes: LightningCLI re-parses its hyperparameters."""
    root, killed = killed_run
    monkeypatch.chdir(ROOT)
    checkpoint = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["backbone"] |= {"quantization": "none", "quant_type": "nf4"}
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    args = ["fit", "--config", TINY, f"--trainer.default_root_dir={tmp_path}", f"--ckpt_path={old}", *LIMITS]
    cli = MRRMLCLI(args=[*args, f"--trainer.max_epochs={killed['epoch'] + 2}"])
    assert cli.model.spec.quantization is None and cli.trainer.global_step == killed["global_step"] + 3


def test_predict_refuses_a_checkpoint_trained_on_another_dimension_order(killed_run, tmp_path, monkeypatch, capsys):
    root, _ = killed_run
    monkeypatch.chdir(ROOT)
    matrix = yaml.safe_load((ROOT / "configs/matrix/medical_dsd.yaml").read_text())
    ids = [d["id"] for d in matrix["dimensions"]]
    i, j = ids.index("accuracy"), ids.index("safety")
    matrix["dimensions"][i], matrix["dimensions"][j] = matrix["dimensions"][j], matrix["dimensions"][i]
    swapped = tmp_path / "swapped.yaml"
    swapped.write_text(yaml.safe_dump(matrix, sort_keys=False))
    checkpoint = root / "checkpoints" / "last.ckpt"
    args = ["predict", "--config", TINY, f"--trainer.default_root_dir={tmp_path}", f"--ckpt_path={checkpoint}"]
    assert main([*args, f"--data.init_args.matrix={swapped}"]) == 2
    err = capsys.readouterr().err
    trained, in_use = ids, [d["id"] for d in matrix["dimensions"]]
    assert (
        f"error: checkpoint {checkpoint} was trained with the dimensions {trained}, but the matrix in use has "
        f"{in_use} (the same names in another order)" in err
    )
    assert "Traceback" not in err and not list(tmp_path.rglob("predictions*.jsonl"))  # nothing written


def latin1_config(tmp_path: Path, text: str) -> tuple[Path, int]:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(text.encode("latin-1"))
    return path, path.read_bytes().index(b"\xe9")


@pytest.mark.parametrize("command", ["fit", "generate", "healthbench"])
def test_a_config_that_is_not_utf8_is_named_with_its_offset(command, tmp_path, capsys):
    path, offset = latin1_config(tmp_path, "# réglages\nseed_everything: 0\n")
    assert main([command, "--config", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"error: {path}: not UTF-8 text: byte 0xe9 at byte offset {offset} cannot be decoded (save the file as UTF-8)\n"
    )


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: d / "missing.ckpt", "does not exist"),
        (lambda d: ROOT / "README.md", "is not a Lightning checkpoint (not a torch.save archive)"),
        (
            lambda d: torch.save({"weight": torch.zeros(2)}, d / "plain.pt") or d / "plain.pt",
            "is a torch file but not a Lightning checkpoint (it has no 'state_dict' and 'pytorch-lightning_version')",
        ),
    ],
    ids=["missing", "text", "state-dict"],
)
def test_a_ckpt_path_that_is_not_a_checkpoint_gets_one_line(make, reason, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    path = make(tmp_path)
    assert main(["test", "--config", TINY, f"--trainer.default_root_dir={tmp_path}", f"--ckpt_path={path}"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: --ckpt_path: {path} {reason}")


def test_input_errors_show_the_traceback_only_when_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    args = ["fit", "--config", TINY, f"--trainer.default_root_dir={tmp_path}", "--data.init_args.matrix=nowhere.yaml"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.endswith("error: rubric matrix file not found: nowhere.yaml\n") and "Traceback" not in err
    with pytest.raises(Exception) as info:  # jsonargparse wraps what the data module raised
        main([*args, "--debug"])
    assert isinstance(input_error(info.value), FileNotFoundError)
    monkeypatch.setenv("LIT_MRRML_DEBUG", "1")
    with pytest.raises(Exception) as info:
        main(args)
    assert isinstance(input_error(info.value), FileNotFoundError)


def nan_matrix(tmp_path: Path) -> tuple[list[str], str]:
    matrix = yaml.safe_load((ROOT / "configs/matrix/medical_dsd.yaml").read_text())
    matrix["scenarios"][0]["weights"]["safety"] = float("nan")
    path = tmp_path / "nan.yaml"
    path.write_text(yaml.safe_dump(matrix, sort_keys=False))
    scenario = matrix["scenarios"][0]["id"]
    assert scenario == "emergency_referrals"
    return [f"--data.init_args.matrix={path}"], (
        f"error: {path}: 1 problem(s) in the rubric matrix:\n  - scenarios[0].weights.safety: must be a finite "
        "number, got nan"
    )


def latin1_units(tmp_path: Path) -> tuple[list[str], str]:
    path = tmp_path / "train.jsonl"
    path.write_bytes(
        (ROOT / "data/demo/train.jsonl").read_bytes() + '{"id": "x", "prompt": "Fièvre"}\n'.encode("latin-1")
    )
    offset = path.read_bytes().index(b"\xe8")
    line = path.read_bytes().count(b"\n")
    return [f"--data.init_args.train_files=[{path}]"], (
        f"error: {path}:{line}: not UTF-8 text: byte 0xe8 at byte offset {offset} cannot be decoded (save the file "
        "as UTF-8)"
    )


def leaking_val(tmp_path: Path) -> tuple[list[str], str]:
    first = json.loads((ROOT / "data/demo/train.jsonl").read_text().splitlines()[0])
    copy = {**first, "id": "leak", "prompt": [{**m, "content": m["content"] + " "} for m in first["prompt"]]}
    path = tmp_path / "val.jsonl"
    path.write_text((ROOT / "data/demo/val.jsonl").read_text() + json.dumps(copy) + "\n")
    return [f"--data.init_args.val_files=[{path}]"], (
        f"error: prompt of unit 'leak' (val) also appears in train (unit '{first['id']}'; prompts are compared "
        "ignoring case and whitespace): split ranked units by prompt so that no prompt is in two splits"
    )


@pytest.mark.parametrize("bad", [nan_matrix, latin1_units, leaking_val], ids=lambda f: f.__name__)
def test_bad_training_input_exits_2_with_one_message_and_writes_no_checkpoint(bad, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    flags, message = bad(tmp_path)
    root = tmp_path / "run"
    assert main(["fit", "--config", TINY, f"--trainer.default_root_dir={root}", *flags]) == 2
    err = capsys.readouterr().err
    assert err.endswith(message + "\n") and "Traceback" not in err
    assert not (root / "checkpoints").exists()


def test_predict_with_a_corrupt_checkpoint_names_the_units_and_exits_2(killed_run, tmp_path, monkeypatch, capsys):
    root, _ = killed_run
    monkeypatch.chdir(ROOT)
    state = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)
    state["state_dict"]["head.raw_scale"][0] = float("nan")
    bad = tmp_path / "bad.ckpt"
    torch.save(state, bad)
    args = ["predict", "--config", TINY, f"--trainer.default_root_dir={tmp_path}", f"--ckpt_path={bad}", *LIMITS]
    assert main(args) == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert line.startswith("error: predict: non-finite rewards (NaN or inf) for unit(s) ['demo-")
    assert line.endswith(
        "the model's weights may be corrupt (check the checkpoint or export, or train again), or "
        "the inputs overflow its dtype"
    )
    assert all(not p.read_text() for p in tmp_path.rglob("predictions*.jsonl"))  # no record written
