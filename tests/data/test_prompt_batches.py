"""PromptBatches: sharding by whole prompts, seeded epochs, state, and an exact Trainer resume."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lit_mrrml.data.prompt_batches import EncodedPrompt, PromptBatches
from lit_mrrml.data.prompt_records import PromptRecord
from lit_mrrml.data.prompts import PromptDataModule
from lit_mrrml.errors import InputError
from lit_mrrml.models.backbone import BackboneSpec
from tests.conftest import MATRIX_PATH, write_jsonl


def prompts(n: int) -> list[EncodedPrompt]:
    return [EncodedPrompt(PromptRecord(f"p{i}", (("user", f"q{i}"),)), (i, i + 1), -1, False) for i in range(n)]


def flatten(batches: list[list[str]]) -> list[str]:
    return [p for batch in batches for p in batch]


def ids(batches: PromptBatches) -> list[list[str]]:
    return [batch["ids"] for batch in batches]


def test_two_ranks_get_disjoint_whole_prompts_and_equal_batch_counts() -> None:
    ranks = [PromptBatches(prompts(11), batch_size=2, seed=5, rank=r, world_size=2) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 2  # 11 prompts, global batches of 4: the tail of 3 is dropped
    seen = [ids(r) for r in ranks]
    assert [len(b) for b in seen[0] + seen[1]] == [2, 2, 2, 2]
    flat = [flatten(rank) for rank in seen]
    assert not set(flat[0]) & set(flat[1]) and len(set(flat[0] + flat[1])) == 8
    order = [f"p{i}" for i in ranks[0].order(0)]
    assert seen[0] == [order[0:2], order[4:6]] and seen[1] == [order[2:4], order[6:8]]  # rank r: [r*B, (r+1)*B)


def test_without_drop_last_the_tail_is_padded_and_split_evenly() -> None:
    ranks = [PromptBatches(prompts(11), 2, shuffle=False, drop_last=False, rank=r, world_size=2) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 3
    assert ids(ranks[0]) == [["p0", "p1"], ["p4", "p5"], ["p8", "p9"]]
    assert ids(ranks[1]) == [["p2", "p3"], ["p6", "p7"], ["p10", "p0"]]  # 3 left: padded to 4 from the start
    single = PromptBatches(prompts(5), 2, shuffle=False, drop_last=False, rank=0, world_size=1)
    assert ids(single) == [["p0", "p1"], ["p2", "p3"], ["p4"]]


def test_epochs_reshuffle_with_the_seed() -> None:
    batches = PromptBatches(prompts(8), batch_size=4, seed=1, rank=0, world_size=1)
    first, second = ids(batches), ids(batches)
    assert batches.state_dict() == {"epoch": 2, "batches_done": 0}
    assert first != second and sorted(flatten(first)) == sorted(flatten(second))
    expected = torch.randperm(8, generator=torch.Generator().manual_seed(1 + 1)).tolist()
    assert flatten(second) == [f"p{i}" for i in expected]  # epoch e draws with seed + e
    assert ids(PromptBatches(prompts(8), batch_size=4, seed=1, rank=0, world_size=1)) == first
    assert ids(PromptBatches(prompts(8), 4, shuffle=False, rank=0, world_size=1)) == [
        ["p0", "p1", "p2", "p3"],
        ["p4", "p5", "p6", "p7"],
    ]


def test_state_dict_continues_from_the_next_batch() -> None:
    reference = PromptBatches(prompts(12), batch_size=2, seed=3, rank=0, world_size=1)
    run = ids(reference) + ids(reference)  # two epochs, 12 batches
    interrupted = PromptBatches(prompts(12), batch_size=2, seed=3, rank=0, world_size=1)
    iterator = iter(interrupted)
    seen = [next(iterator)["ids"] for _ in range(4)]
    state = interrupted.state_dict()
    assert state == {"epoch": 0, "batches_done": 4}
    resumed = PromptBatches(prompts(12), batch_size=2, seed=3, rank=0, world_size=1)
    resumed.load_state_dict(state)
    assert seen + ids(resumed) + ids(resumed) == run
    restarted = PromptBatches(prompts(12), batch_size=2, seed=3, rank=0, world_size=1)
    restarted.load_state_dict({"epoch": 0, "batches_done": 6})  # stopped after the last batch of epoch 0
    assert ids(restarted) == run[6:]


def test_too_few_prompts_for_one_global_batch_are_refused() -> None:
    batches = PromptBatches(prompts(7), batch_size=4, rank=0, world_size=2)
    message = re.escape(
        "7 training prompt(s) cannot fill one rollout batch of data.batch_size=4 prompts on each of 2 rank(s)"
    )
    with pytest.raises(InputError, match=message):
        len(batches)
    with pytest.raises(InputError, match=message):
        iter(batches)


class Recorder(L.LightningModule):
    """Records the prompt ids of every training batch; one parameter so that steps happen."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[list[str]] = []

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        self.seen.append(list(batch["ids"]))
        return (self.weight - 1.0).pow(2).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(root: Path, data: Any, ckpt_path: str | None = None, every_step: bool = True, **limits: Any) -> list[list[str]]:
    """The batches a fresh model sees in a run that saves ``last.ckpt`` after every step (or every epoch)."""
    model = Recorder()
    checkpoint = ModelCheckpoint(dirpath=root / "ckpt", save_last=True, every_n_train_steps=1 if every_step else None)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        callbacks=[checkpoint],
        **limits,
    )
    if isinstance(data, L.LightningDataModule):
        trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    else:
        trainer.fit(model, train_dataloaders=data, ckpt_path=ckpt_path)
    return model.seen


@pytest.mark.parametrize("limit", [1.0, 4], ids=["whole_epochs", "limit_train_batches"])
def test_a_trainer_resumed_from_last_draws_the_batches_of_the_uninterrupted_run(tmp_path: Path, limit: Any) -> None:
    def loader() -> PromptBatches:
        return PromptBatches(prompts(10), batch_size=2, seed=7, rank=0, world_size=1)  # 5 batches an epoch

    uninterrupted = fit(tmp_path / "a", loader(), max_steps=8, limit_train_batches=limit)
    first = fit(tmp_path / "b", loader(), max_steps=3, limit_train_batches=limit)
    resumed = fit(
        tmp_path / "b", loader(), str(tmp_path / "b" / "ckpt" / "last.ckpt"), max_steps=8, limit_train_batches=limit
    )
    assert first == uninterrupted[:3]
    assert resumed == uninterrupted[3:]
    assert len(uninterrupted) == 8 and len({tuple(b) for b in uninterrupted}) > 5  # epoch 1 reshuffled


def test_the_datamodule_resumes_an_epoch_based_run_at_the_next_epoch(tmp_path: Path, tiny_spec: BackboneSpec) -> None:
    records = [{"id": f"p{i}", "messages": [{"role": "user", "content": f"Question {i}?"}]} for i in range(6)]
    train = str(write_jsonl(tmp_path / "train.jsonl", records))

    def dm() -> PromptDataModule:
        return PromptDataModule(str(MATRIX_PATH), [train], backbone=tiny_spec, batch_size=2, seed=2)

    # saved at the end of the epoch, the fit loop does not restore the loader: the data module does
    uninterrupted = fit(tmp_path / "a", dm(), every_step=False, max_epochs=3)
    first = fit(tmp_path / "b", dm(), every_step=False, max_epochs=1)
    resumed = fit(tmp_path / "b", dm(), str(tmp_path / "b" / "ckpt" / "last.ckpt"), every_step=False, max_epochs=3)
    assert first + resumed == uninterrupted and len(uninterrupted) == 9
    assert uninterrupted[:3] != uninterrupted[3:6]  # each epoch its own order
