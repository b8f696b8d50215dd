"""The loggers a user picks with ``--trainer.logger``: TensorBoard, Weights & Biases (offline) and
MLflow (a local file store) each get the metrics, the loss settings as hyperparameters and, from
GeometryMonitor, the figures (a CSV logger gets no figures); the PNGs are written either way."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger, WandbLogger

from callbacks import GeometryMonitor
from lit_mrrml import GPRCLoss
from lit_mrrml.cli import main
from tests.conftest import ROOT
from tests.modules.test_reward_model import make_data, make_model, trainer

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")
pytest.importorskip("wandb")

LOSS = {"alpha": 0.25, "beta": 0.125, "gamma": 0.5, "margin": 0.75}


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory, matrix) -> dict:
    """One epoch of the tiny reward model with GeometryMonitor and all four loggers at once."""
    from lit_mrrml.models.backbone import BackboneSpec
    from tests.conftest import TINY_QWEN2, TINY_TOKENIZER, make_unit, write_jsonl

    root = tmp_path_factory.mktemp("loggers")
    spec = BackboneSpec(config=dict(TINY_QWEN2), tokenizer=str(TINY_TOKENIZER))
    files = {
        split: write_jsonl(root / f"{split}.jsonl", [make_unit(i + offset, dimension=d) for i, d in enumerate(dims)])
        for split, offset, dims in (
            ("train", 0, ["safety", "accuracy"] * 4),
            ("val", 100, ["safety", "accuracy"] * 2),
            ("test", 200, ["safety"]),
        )
    }
    os.environ["WANDB_SILENT"] = "true"
    loggers = [
        CSVLogger(root / "csv"),
        TensorBoardLogger(root / "tb"),
        MLFlowLogger(
            experiment_name="lit_mrrml",
            tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
            artifact_location=str(root / "mlartifacts"),
        ),
        WandbLogger(save_dir=str(root / "wandb"), offline=True, project="lit_mrrml"),
    ]
    monitor = GeometryMonitor()
    model = make_model(spec, matrix, loss=GPRCLoss(**LOSS))
    run = trainer(root, max_steps=-1, max_epochs=1, limit_val_batches=None, callbacks=[monitor], logger=loggers)
    run.fit(model, datamodule=make_data(spec, files))
    for logger in loggers:
        logger.finalize("success")
    import wandb

    wandb.finish()
    return {"root": root, "monitor": monitor, "loggers": loggers, "dimensions": ["safety", "accuracy"]}


def tensorboard_events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = folder.rglob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def test_the_figures_reach_tensorboard_wandb_and_mlflow_but_not_csv(logged_run):
    monitor, dims = logged_run["monitor"], logged_run["dimensions"]
    assert sorted(p.stem for p in monitor.saved) == sorted(dims)  # the PNGs, as before
    expected = {
        (f"geometry/epoch=0/{d}", kind) for d in dims for kind in ("TensorBoardLogger", "WandbLogger", "MLFlowLogger")
    }
    assert set(monitor.sent) == expected
    root = logged_run["root"]
    images = tensorboard_events(root / "tb").Tags()["images"]
    assert sorted(images) == sorted(f"geometry/epoch=0/{d}" for d in dims)
    mlflow_pngs = sorted(p.name for p in (root / "mlartifacts").rglob("geometry/epoch=0/*.png"))
    assert mlflow_pngs == sorted(f"{d}.png" for d in dims)
    wandb_pngs = list((root / "wandb").rglob("media/images/geometry/epoch=0/*.png"))
    assert len(wandb_pngs) == len(dims)
    assert all((root / "csv") in p.parents for p in monitor.saved)  # the first logger's folder: trainer.log_dir


def test_the_loss_settings_are_hyperparameters_in_every_logger(logged_run):
    root = logged_run["root"]
    (hparams,) = (root / "csv").rglob("hparams.yaml")
    saved = yaml.unsafe_load(hparams.read_text())  # the module's own hparams hold a BackboneSpec object
    assert {k: saved[f"loss/{k}"] for k in LOSS} == LOSS and saved["loss/class"] == "GPRCLoss"
    mlflow = logged_run["loggers"][2]
    params = mlflow.experiment.get_run(mlflow.run_id).data.params
    assert {k: float(params[f"loss/{k}"]) for k in LOSS} == LOSS
    scalars = tensorboard_events(root / "tb").Tags()["scalars"]
    assert {"val/loss", "val/pair_acc", "geometry/safety/axis_cos"} <= set(scalars)


def test_the_shipped_configs_say_how_to_pick_a_logger():
    for config in sorted((ROOT / "configs" / "trainer").glob("*.yaml")):
        text = config.read_text()
        for logger in ("TensorBoardLogger", "WandbLogger", "MLFlowLogger"):
            assert f"--trainer.logger={logger}" in text, (config, logger)


def test_the_command_line_logs_to_tensorboard(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    args = ["fit", "--config", "configs/reward/tiny.yaml", f"--trainer.default_root_dir={tmp_path}"]
    args += ["--trainer.logger=TensorBoardLogger", f"--trainer.logger.init_args.save_dir={tmp_path}"]
    args += ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]
    assert main(args) == 0
    events = tensorboard_events(tmp_path / "lightning_logs")
    assert any(tag.startswith("geometry/epoch=0/") for tag in events.Tags()["images"])


def test_loss_settings_read_back_the_constructor_arguments():
    from lit_mrrml import GRPOLoss
    from lit_mrrml.modules.loss_settings import loss_settings

    assert loss_settings(GPRCLoss(**LOSS)) == {f"loss/{k}": v for k, v in LOSS.items()} | {
        "loss/eps": 1e-8,
        "loss/class": "GPRCLoss",
    }
    grpo = loss_settings(GRPOLoss(beta=0.04, tis_cap=2.0))
    assert grpo == {
        "loss/eps_low": 0.2,
        "loss/eps_high": 0.2,
        "loss/beta": 0.04,
        "loss/loss_type": "token_mean",
        "loss/tis_cap": 2.0,
        "loss/class": "GRPOLoss",
    }
