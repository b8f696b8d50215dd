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


class LastStepProbe(L.Callback):
    """At every training batch start: the global step saved in last.ckpt so far (None: no file yet)."""

    def __init__(self, path) -> None:
        self.path = path
        self.seen: list[int | None] = []

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        last = self.path / "last.ckpt"
        self.seen.append(torch.load(last, weights_only=True)["global_step"] if last.exists() else None)


def trainer(callbacks: list, **kwargs: object) -> L.Trainer:
    settings = {"max_epochs": 1, "num_sanity_val_steps": 0} | kwargs
    return L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        **settings,
    )


def test_last_is_written_every_n_train_steps_before_the_monitored_metric_exists(tmp_path):
    checkpoint = ResumableCheckpoint(
        dirpath=tmp_path, monitor="val/score", mode="max", save_last=True, every_n_train_steps=2
    )
    probe = LastStepProbe(tmp_path)
    trainer([checkpoint, probe]).fit(Worsening(), loader(), loader())  # validation only at the epoch's end
    assert probe.seen == [None, None, 2, 2]  # Lightning alone defers both saves until val/score exists


def test_a_top_k_save_waiting_for_validation_still_happens(tmp_path):
    # val/score first exists at the validation after step 2: the top-k save deferred at step 2 happens then
    checkpoint = ResumableCheckpoint(
        dirpath=tmp_path, monitor="val/score", mode="max", save_last=True, every_n_train_steps=2, save_top_k=1
    )
    trainer([checkpoint], val_check_interval=2).fit(Worsening(), loader(), loader())
    assert torch.load(checkpoint.best_model_path, weights_only=True)["global_step"] == 2
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 4


class Noisy(L.LightningModule):
    """Records a global-RNG draw at every training step; validation draws from the global RNG too."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.noise: list[float] = []

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.noise.append(torch.rand(()).item())  # dropout-like
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        torch.rand(5)  # e.g. a loader's base seed: drawn in the uninterrupted run only
        self.log("val/score", 0.0)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def noisy_fit(root, max_steps: int, ckpt_path: str | None = None) -> list[float]:
    model = Noisy()
    checkpoint = ResumableCheckpoint(dirpath=root, save_last=True, every_n_train_steps=1, save_top_k=0)
    trainer([checkpoint], max_epochs=-1, max_steps=max_steps, val_check_interval=3).fit(
        model, loader(), loader(), ckpt_path=ckpt_path
    )
    return model.noise


def test_a_resumed_run_draws_the_random_numbers_of_the_uninterrupted_run(tmp_path):
    torch.manual_seed(0)
    uninterrupted = noisy_fit(tmp_path / "a", 7)
    torch.manual_seed(0)
    first = noisy_fit(tmp_path / "b", 3)  # stops right after the validation at step 3
    torch.manual_seed(123)  # the resumed process starts from another state
    resumed = noisy_fit(tmp_path / "b", 7, str(tmp_path / "b" / "last.ckpt"))
    assert first == uninterrupted[:3]
    assert resumed == uninterrupted[3:]
    assert len(set(uninterrupted)) == 7


def test_the_random_states_load_with_weights_only(tmp_path):
    noisy_fit(tmp_path, 2)
    states = next(
        v["rng"]
        for k, v in torch.load(tmp_path / "last.ckpt", weights_only=True)["callbacks"].items()
        if k.startswith("ResumableCheckpoint")
    )
    assert len(states) == 1 and states[0]["torch"].dtype == torch.uint8


def test_a_run_stopped_by_max_steps_mid_epoch_keeps_its_mid_epoch_last(tmp_path):
    # the monitored metric does not exist yet at step 3, and Lightning still runs on_train_epoch_end
    # when max_steps stops an epoch: last.ckpt must stay the mid-epoch one (1 batch of 4 left)
    checkpoint = ResumableCheckpoint(
        dirpath=tmp_path, monitor="val/score", mode="max", save_last=True, every_n_train_steps=3
    )
    trainer([checkpoint], max_steps=3).fit(Worsening(), loader(), loader())
    last = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert last["global_step"] == 3
    assert last["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"] == 0  # epoch 0 not done
