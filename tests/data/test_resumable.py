"""ResumableLoader: its state is (epoch, batches done); a loaded state resumes at the next batch."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import pytest
import torch
from lightning.fabric.utilities.types import _Stateful
from lightning.pytorch.callbacks import ModelCheckpoint

from lit_mrrml.data.datamodule import RubricDataModule
from lit_mrrml.data.resumable import ResumableLoader
from lit_mrrml.data.sampler import EpochSampler
from lit_mrrml.models.backbone import BackboneSpec
from tests.conftest import MATRIX_PATH


def loader(sampler: EpochSampler, num_workers: int = 0) -> ResumableLoader:
    """Batches of 3 indices of range(10), as lists."""
    return ResumableLoader(list(range(10)), sampler, batch_size=3, collate_fn=list, num_workers=num_workers)


def test_lightning_sees_a_stateful_loader() -> None:
    assert isinstance(loader(EpochSampler(10)), _Stateful)  # what Lightning checks before saving its state


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_loaded_state_resumes_at_the_next_batch(num_workers: int) -> None:
    first = loader(EpochSampler(10, shuffle=False), num_workers)
    batches = iter(first)
    assert [next(batches), next(batches)] == [[0, 1, 2], [3, 4, 5]]
    state = first.state_dict()
    assert state == {"epoch": 0, "batches_done": 2}
    resumed = loader(EpochSampler(10, shuffle=False), num_workers)
    resumed.load_state_dict(state)
    assert list(resumed) == [[6, 7, 8], [9]]  # indices 0-5 skipped without loading them
    assert resumed.state_dict() == {"epoch": 0, "batches_done": 4}
    assert list(resumed) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]  # the next iteration is whole


def test_a_shuffled_epoch_resumes_mid_epoch_and_the_next_epoch_is_whole() -> None:
    uninterrupted = loader(EpochSampler(10, seed=3))
    epoch0 = list(uninterrupted)
    uninterrupted.sampler.set_epoch(1)
    epoch1 = list(uninterrupted)
    assert epoch0 != epoch1
    resumed = loader(EpochSampler(10, seed=3))
    resumed.load_state_dict({"epoch": 0, "batches_done": 1})
    resumed.sampler.set_epoch(0)  # Lightning sets the epoch it resumes in again
    assert list(resumed) == epoch0[1:]
    resumed.sampler.set_epoch(1)
    assert list(resumed) == epoch1


def test_a_state_saved_after_the_last_batch_resumes_at_the_next_epoch() -> None:
    resumed = loader(EpochSampler(10, seed=3))
    resumed.load_state_dict({"epoch": 0, "batches_done": 4})
    resumed.sampler.set_epoch(1)  # Lightning starts the next epoch
    other = loader(EpochSampler(10, seed=3))
    other.sampler.set_epoch(1)
    assert list(resumed) == list(other) and len(list(other)) == 4


@pytest.mark.parametrize("num_workers", [0, 2])
def test_iterating_leaves_the_global_rng_alone(num_workers: int) -> None:
    before = torch.get_rng_state()
    assert len(list(loader(EpochSampler(10, seed=1), num_workers))) == 4
    assert torch.equal(torch.get_rng_state(), before)


class Recorder(L.LightningModule):
    """Records the units of every training batch."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[list[int]] = []

    def training_step(self, batch: list[int], batch_idx: int) -> torch.Tensor:
        self.seen.append(list(batch))
        return (self.weight - 1.0).pow(2).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(root: Path, ckpt_path: str | None = None, **trainer: Any) -> list[list[int]]:
    """The batches a fresh model sees in a run that saves last.ckpt after every step."""
    model = Recorder()
    L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[ModelCheckpoint(dirpath=root, save_last=True, every_n_train_steps=1)],
        **trainer,
    ).fit(model, loader(EpochSampler(10, seed=7)), ckpt_path=ckpt_path)
    return model.seen


@pytest.mark.parametrize(
    "trainer", [{"max_epochs": 3}, {"max_steps": 11}, {"max_epochs": 3, "limit_train_batches": 3}], ids=str
)
def test_a_trainer_resumed_mid_epoch_sees_the_batches_of_the_uninterrupted_run(tmp_path: Path, trainer: dict) -> None:
    uninterrupted = fit(tmp_path / "a", **trainer)
    first = fit(tmp_path / "b", **(trainer | {"max_steps": 5}))  # stopped in epoch 1 (of 4 or 3 batches)
    resumed = fit(tmp_path / "b", str(tmp_path / "b" / "last.ckpt"), **trainer)
    assert first == uninterrupted[:5]
    assert resumed == uninterrupted[5:]
    per_epoch = trainer.get("limit_train_batches", 4)
    assert uninterrupted[:per_epoch] != uninterrupted[per_epoch : 2 * per_epoch]  # epoch 1 reshuffled


def test_the_datamodule_shards_training_units_over_the_trainers_ranks(
    unit_files: dict[str, Path], tiny_spec: BackboneSpec
) -> None:
    ids = []
    for rank in (0, 1):
        data = RubricDataModule(
            str(MATRIX_PATH), train_files=[str(unit_files["train"])], backbone=tiny_spec, batch_size=2, seed=0
        )
        data.setup("fit")
        data.trainer = SimpleNamespace(distributed_sampler_kwargs={"num_replicas": 2, "rank": rank})  # type: ignore[assignment]
        loader = data.train_dataloader()
        assert isinstance(loader, ResumableLoader) and loader.sampler.rank == rank
        ids.append([u for batch in loader for u in batch["unit_ids"]])
    units = len(data.datasets["train"])
    assert len(ids[0]) == len(ids[1]) == -(-units // 2)
    assert set(ids[0]) | set(ids[1]) == {u.id for u in data.units["train"]}
