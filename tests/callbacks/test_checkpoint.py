"""ResumableCheckpoint: last.ckpt is the latest state even when the monitored metric got worse."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from callbacks import ResumableCheckpoint


class Worsening(L.LightningModule):
    """A linear model whose logged validation score gets worse at every validation."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.validations = 0

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.log("val/score", -float(self.validations))  # 0, -1, -2: never better than the first

    def on_validation_epoch_end(self) -> None:
        self.validations += 1

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader() -> DataLoader:
    return DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=2)


def test_last_is_the_latest_step_while_best_stays_the_first(tmp_path):
    checkpoint = ResumableCheckpoint(dirpath=tmp_path, monitor="val/score", mode="max", save_last=True)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=3,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[checkpoint],
    )
    trainer.fit(Worsening(), loader(), loader())
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 12  # 3 epochs of 4 steps
    assert torch.load(checkpoint.best_model_path, weights_only=True)["global_step"] == 4  # the first validation
