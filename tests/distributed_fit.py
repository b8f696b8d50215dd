"""Run by tests/test_distributed.py: a few steps of the tiny reward model, on 2 CPU processes or 1.

    python tests/distributed_fit.py ddp|fsdp2|single|single0 OUT_DIR DATA_DIR

``ddp``: DDP (gloo); ``fsdp2``: FSDP2 through ModelParallelStrategy (RewardModel.configure_model
shards); both with 2 units a rank. ``single``: one process, batches of 4 units made of what the two
ranks of the fsdp2 run trained on at each step (rank 0's, then rank 1's: read from its
``OUT_DIR/fsdp2_rank<r>.json``), so that it takes the same global batches whatever the sampler;
``single0``: the same model before any step. Every rank writes the unit ids of each of its batches to
``OUT_DIR/<mode>_rank<r>.json``; rank 0 writes the full (gathered) parameters after training to
``OUT_DIR/<mode>.pt``. The fsdp2 run also saves a sharded checkpoint, ``OUT_DIR/fsdp2.ckpt`` (a folder),
and the rewards of SCORED rows computed by the sharded model just before it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lit_mrrml import RewardModel, RubricDataModule
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.models.backbone import BackboneSpec
from lit_mrrml.models.tiny import TINY_QWEN2
from tests.conftest import MATRIX_PATH, TINY_TOKENIZER

WORLD = 2
SCORED = (  # (prompt, response, scenario): the rewards the sharded checkpoint must give back
    ([{"role": "user", "content": "Crushing chest pain for an hour, what now?"}], "Call emergency services now.", None),
    ([{"role": "user", "content": "Is ibuprofen fine with food?"}], "Yes, take it with food.", "emergency_referrals"),
)


class BatchRecorder(L.Callback):
    """Keeps the unit ids of every training batch this rank trains on."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.batches.append(list(batch["unit_ids"]))


def global_batches(data: RubricDataModule, recorded: list[list[list[str]]]) -> DataLoader:
    """Batches of 4 units: at each step, rank 0's batch of the recorded run, then rank 1's."""
    index = {unit.id: i for i, unit in enumerate(data.units["train"])}
    order = [index[u] for step in zip(*recorded, strict=True) for rank in step for u in rank]
    return DataLoader(data.datasets["train"], batch_size=2 * WORLD, sampler=order, collate_fn=data.collator)


def full(p: torch.Tensor) -> torch.Tensor:
    """The whole tensor: gathered from the shards of an FSDP2 (DTensor) parameter."""
    return p.full_tensor() if hasattr(p, "full_tensor") else p


def strategy(mode: str) -> Any:
    if mode == "fsdp2":
        return ModelParallelStrategy(data_parallel_size=WORLD, tensor_parallel_size=1)
    return "ddp" if mode == "ddp" else "auto"


def main(mode: str, out_dir: str, data_dir: str) -> None:
    out = Path(out_dir)
    L.seed_everything(0)
    spec = BackboneSpec(config=dict(TINY_QWEN2), tokenizer=str(TINY_TOKENIZER))
    matrix = RubricMatrix.from_yaml(MATRIX_PATH)
    processes = WORLD if mode in ("ddp", "fsdp2") else 1
    data = RubricDataModule(
        matrix=str(MATRIX_PATH),
        train_files=[f"{data_dir}/train.jsonl"],
        backbone=spec,
        max_length=64,
        batch_size=2 * WORLD // processes,
        shuffle=False,
    )
    model = RewardModel(  # SGD: Adam's first steps are sign(g), ill-conditioned for near-zero gradients
        backbone=spec,
        training_mode="full",
        embedding_dim=16,
        matrix=matrix.to_dict(),
        optimizer=lambda params: torch.optim.SGD(params, lr=0.5),
    )
    recorder = BatchRecorder()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=processes,
        strategy=strategy(mode),
        max_steps=0 if mode == "single0" else 3,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[recorder],
    )
    if processes == 1:
        recorded = [json.loads((out / f"fsdp2_rank{r}.json").read_text())["batches"] for r in range(WORLD)]
        data.setup("fit")
        data.train_dataloader = lambda: global_batches(data, recorded)  # type: ignore[method-assign]
    trainer.fit(model, datamodule=data)
    result: dict[str, Any] = {"world_size": trainer.world_size}
    result["params"] = {n: full(p.detach()).clone() for n, p in model.named_parameters()}
    result["sharded"] = sum(hasattr(p, "full_tensor") for p in model.parameters())
    if mode == "fsdp2":
        prompts, responses, scenarios = (list(column) for column in zip(*SCORED, strict=True))
        result["scores"] = model.score(prompts, responses, scenarios)  # every rank runs it: all-gathers
        trainer.save_checkpoint(out / "fsdp2.ckpt")  # a folder: one .distcp shard a rank, and meta.pt
    rank = trainer.global_rank
    (out / f"{mode}_rank{rank}.json").write_text(json.dumps({"batches": recorder.batches}), encoding="utf-8")
    if trainer.is_global_zero:
        torch.save(result, out / f"{mode}.pt")


if __name__ == "__main__":
    main(*sys.argv[1:4])
