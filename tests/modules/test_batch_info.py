"""The effective batch: hand-computed products, the line and hyperparameters logged at the start of
fit, GRPO's refusal of Lightning's accumulation, and accumulation 2 x batch 2 = batch 4 (same update)."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from lit_mrrml.errors import InputError
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.models.backbone import BackboneSpec
from lit_mrrml.modules.batch_info import EffectiveBatch, check_accumulation, micro_batch_note
from tests.conftest import make_unit, write_jsonl
from tests.modules.test_reward_model import make_data, make_model, snapshot, trainer


def test_the_global_batch_multiplies_every_factor() -> None:
    batch = EffectiveBatch(per_device=8, devices=2, nodes=3, accumulation=4, unit="units")
    assert batch.global_batch == 192  # 8 x 2 x 3 x 4
    assert batch.describe() == (
        "effective batch: 8 units per device x 2 device(s) x 3 nodes x 4 accumulated = 192 units per optimizer step"
    )
    assert batch.hparams() == {
        "batch/per_device": 8,
        "batch/devices": 2,
        "batch/nodes": 3,
        "batch/accumulation": 4,
        "batch/global": 192,
    }


def test_grpo_counts_prompts_and_their_rollouts() -> None:
    note = micro_batch_note(rows=2 * 4, micro_batch_size=3, num_iterations=2)
    batch = EffectiveBatch(per_device=2, devices=2, unit="prompts", group=4, group_unit="rollouts", note=note)
    assert batch.global_batch == 4 and batch.hparams()["batch/global_rollouts"] == 16  # 2 x 2 prompts, x 4
    line = batch.describe()
    assert line.startswith(
        "effective batch: 2 prompts x 4 rollouts per device x 2 device(s) x 1 node x 1 accumulated "
        "= 4 prompts x 4 rollouts = 16 rollouts per optimizer step; "
    )
    assert "3 micro-batch(es) of up to 3 rollouts a device" in line  # ceil(8 / 3)
    assert "2 optimizer step(s) a rollout batch" in line


def test_tensor_parallel_ranks_share_their_batches() -> None:
    batch = EffectiveBatch(per_device=4, devices=4, nodes=2, accumulation=2, replicas=2)
    assert batch.global_batch == 16  # 4 x 2 replicas x 2, not 4 x 8 x 2
    assert "(2 data-parallel replicas: tensor-parallel ranks share batches)" in batch.describe()


class Manual(L.LightningModule):
    def __init__(self, micro: bool) -> None:
        super().__init__()
        self.automatic_optimization = False
        if micro:
            self.micro_batch_size = 4


def test_manual_optimisation_refuses_lightnings_accumulation_saying_what_instead() -> None:
    check_accumulation(Manual(micro=True), 1)
    check_accumulation(L.LightningModule(), 4)  # automatic optimisation: Lightning accumulates
    with pytest.raises(InputError, match=r"^trainer\.accumulate_grad_batches=2: Manual optimises manually") as err:
        check_accumulation(Manual(micro=True), 2)
    assert "model.init_args.micro_batch_size" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputError, match=r"leave it at 1$"):
        check_accumulation(Manual(micro=False), 3)


@pytest.fixture
def four_units(tmp_path: Path) -> dict[str, Path]:
    """4 training units of K = 3 (every GPRC term is then a plain mean over units), 2 val, 2 test."""
    units = [make_unit(i, k=3, dimension=("safety", "accuracy")[i % 2]) for i in range(8)]
    return {
        "train": write_jsonl(tmp_path / "train.jsonl", units[:4]),
        "val": write_jsonl(tmp_path / "val.jsonl", units[4:6]),
        "test": write_jsonl(tmp_path / "test.jsonl", units[6:]),
    }


def one_step(spec: BackboneSpec, files, matrix, start, root: Path, batch_size: int, accumulate: int):
    """One SGD step of the full tiny reward model from the weights ``start``; (model, its logger's hparams)."""
    model = make_model(spec, matrix, training_mode="full", optimizer=lambda params: torch.optim.SGD(params, lr=0.5))
    model.configure_model()
    model.load_state_dict(start)
    data = make_data(spec, files, shuffle=False)
    data.batch_size = batch_size
    logger = CSVLogger(str(root), name="", version="")
    run = trainer(root, max_steps=1, limit_val_batches=0, accumulate_grad_batches=accumulate, logger=logger)
    run.fit(model, datamodule=data)
    return model, logger.experiment.hparams


def test_accumulating_2_batches_of_2_is_one_batch_of_4(tiny_spec, four_units, matrix: RubricMatrix, tmp_path, caplog):
    L.seed_everything(0)
    first = make_model(tiny_spec, matrix, training_mode="full")
    first.configure_model()
    start = {k: v.clone() for k, v in first.state_dict().items()}
    with caplog.at_level(logging.INFO):
        accumulated, hparams = one_step(tiny_spec, four_units, matrix, start, tmp_path / "a", 2, 2)
    assert "effective batch: 2 units per device x 1 device(s) x 1 node x 2 accumulated = 4 units" in caplog.text
    assert hparams["batch/global"] == 4 and hparams["batch/accumulation"] == 2 and hparams["batch/per_device"] == 2
    whole, _ = one_step(tiny_spec, four_units, matrix, start, tmp_path / "b", 4, 1)
    after_a, after_b = snapshot(accumulated), snapshot(whole)
    moved = [n for n in after_b if not torch.allclose(after_b[n], start[n], atol=1e-5)]
    assert any(n.startswith("head.") for n in moved) and any(n.startswith("backbone.layers") for n in moved)
    for name, value in after_b.items():
        torch.testing.assert_close(after_a[name], value, rtol=1e-4, atol=1e-6, msg=name)
