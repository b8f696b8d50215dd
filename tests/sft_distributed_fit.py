"""Run by tests/policy/test_distributed_sft.py: two steps of SFT of a tiny LoRA policy with gradient
checkpointing, FSDP2 (ModelParallelStrategy) on two CPU processes, or one process replaying them.

    python tests/sft_distributed_fit.py fsdp2 OUT_DIR    two processes, 2 conversations a rank and step
    python tests/sft_distributed_fit.py single OUT_DIR   one process: at each step rank 0's batch of the
                                                         fsdp2 run, then rank 1's, gradients accumulated

FSDP2 averages the gradients of the ranks' mean losses; accumulating over the same two batches does
the same in one process (Lightning divides each loss by 2), so with SGD the parameters must agree.
Each rank writes ``OUT_DIR/<mode>_rank<r>.pt``: the world size, its batches and step losses, how
many parameters are sharded, and the full (gathered) parameters before and after training.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from torch import Tensor
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lit_mrrml import SFTDataModule, SFTPolicy
from lit_mrrml.models.backbone import BackboneSpec
from lit_mrrml.models.tiny import TINY_QWEN2
from tests.conftest import DEMO, MATRIX_PATH, TINY_TOKENIZER

WORLD, STEPS, LR = 2, 2, 0.5


def full_parameters(module: torch.nn.Module) -> dict[str, Tensor]:
    """Every parameter whole: gathered from the shards of FSDP2 (DTensor) parameters."""
    return {
        n: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().clone() for n, p in module.named_parameters()
    }


class Recorder(L.Callback):
    """The parameters at the start, and every batch and its loss."""

    def __init__(self) -> None:
        self.before: dict[str, Tensor] = {}
        self.batches: list[dict[str, Tensor]] = []
        self.losses: list[float] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.before = full_parameters(pl_module)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        self.batches.append({k: v.detach().cpu().clone() for k, v in batch.items()})
        self.losses.append(float(outputs["loss"]))


def replayed(out: Path) -> DataLoader:
    """The fsdp2 run's batches, step by step, rank 0's first (batch_size=None: as they are)."""
    ranks = [torch.load(out / f"fsdp2_rank{r}.pt", weights_only=False)["batches"] for r in range(WORLD)]
    return DataLoader([b for step in zip(*ranks, strict=True) for b in step], batch_size=None)  # type: ignore[arg-type]


def main(mode: str, out: str) -> None:
    L.seed_everything(0)
    spec = BackboneSpec(config=dict(TINY_QWEN2), tokenizer=str(TINY_TOKENIZER))
    model = SFTPolicy(  # SGD: an update is -lr times the gradient (Adam's first steps are about its sign)
        spec,
        training_mode="lora",
        gradient_checkpointing=True,
        disable_dropout=True,  # LoRA dropout draws differ between runs
        optimizer=lambda ps: torch.optim.SGD(ps, lr=LR),
    )
    data = SFTDataModule(
        matrix=str(MATRIX_PATH), train_files=[str(DEMO / "train.jsonl")], backbone=spec, max_length=256, batch_size=2
    )
    recorder = Recorder()
    sharded = mode == "fsdp2"
    trainer = L.Trainer(
        accelerator="cpu",
        devices=WORLD if sharded else 1,
        strategy=ModelParallelStrategy(data_parallel_size=WORLD, tensor_parallel_size=1) if sharded else "auto",
        accumulate_grad_batches=1 if sharded else WORLD,
        precision="32-true",
        max_steps=STEPS,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[recorder],
    )
    if sharded:
        trainer.fit(model, datamodule=data)
    else:
        trainer.fit(model, train_dataloaders=replayed(Path(out)))
    result = {
        "world_size": trainer.world_size,
        "batches": recorder.batches,
        "losses": recorder.losses,
        "sharded": sum(hasattr(p, "full_tensor") for p in model.parameters()),
        "before": recorder.before,
        "after": full_parameters(model),
        "checkpointing": bool(getattr(model.policy, "is_gradient_checkpointing", False)),
    }
    torch.save(result, Path(out) / f"{mode}_rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(*sys.argv[1:3])
