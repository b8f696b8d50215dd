"""The generated files are ready for ``fit``: they train the tiny reward model for two steps."""

from __future__ import annotations

import torch

from lit_mrrml.trainer_cli import MRRMLCLI
from tests.conftest import ROOT
from tests.generate.conftest import make_job


def test_generated_units_train_the_tiny_reward_model(tmp_path, server, monkeypatch):
    data = tmp_path / "data"
    assert make_job(data, server).run().units == 40
    monkeypatch.chdir(ROOT)
    cli = MRRMLCLI(
        args=[
            "--config",
            "configs/reward/tiny.yaml",
            f"--trainer.default_root_dir={tmp_path / 'fit'}",
            "--trainer.max_steps=2",
            "--trainer.limit_val_batches=1",
            f"--data.train_files=[{data / 'train.jsonl'}]",
            f"--data.val_files=[{data / 'val.jsonl'}]",
            f"--data.test_files=[{data / 'test.jsonl'}]",
        ],
        run=False,
    )
    cli.model.configure_model()
    before = {n: p.detach().clone() for n, p in cli.model.named_parameters()}
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 2 and torch.isfinite(cli.trainer.callback_metrics["train/loss"])
    assert len(cli.datamodule.units["train"]) > 20 and cli.datamodule.units["val"]
    changed = [n for n, p in cli.model.named_parameters() if not torch.equal(before[n], p.detach())]
    assert any(n.startswith("head.") for n in changed) and any(n.startswith("backbone.") for n in changed)
