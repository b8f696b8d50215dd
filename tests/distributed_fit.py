"""Run by tests/test_distributed.py: a few steps of the tiny reward model, FSDP2 on 2 CPU processes or 1.

    python tests/distributed_fit.py fsdp2|single|single0 OUT.pt DATA_DIR   (single0: no step at all)
Writes the full (gathered) trainable parameters after training to OUT.pt on rank 0.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from torch.utils.data import DataLoader, DistributedSampler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lit_mrrml import RewardModel, RubricDataModule
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.models.backbone import BackboneSpec
from lit_mrrml.models.tiny import TINY_QWEN2
from tests.conftest import MATRIX_PATH, TINY_TOKENIZER


def same_batches_as_two_ranks(data: RubricDataModule) -> DataLoader:
    """Batches of 4 made of what each of two ranks gets from Lightning's DistributedSampler (seed 0)."""
    n = len(data.datasets["train"])
    ranks = [list(DistributedSampler(range(n), num_replicas=2, rank=r, shuffle=True, seed=0)) for r in (0, 1)]
    order = [i for step in range(len(ranks[0]) // 2) for r in (0, 1) for i in ranks[r][2 * step : 2 * step + 2]]
    return DataLoader(data.datasets["train"], batch_size=4, sampler=order, collate_fn=data.collator)


def main(mode: str, out: str, data_dir: str) -> None:
    L.seed_everything(0)
    spec = BackboneSpec(config=dict(TINY_QWEN2), tokenizer=str(TINY_TOKENIZER))
    matrix = RubricMatrix.from_yaml(MATRIX_PATH)
    processes = 2 if mode == "fsdp2" else 1
    data = RubricDataModule(
        matrix=str(MATRIX_PATH),
        train_files=[f"{data_dir}/train.jsonl"],
        backbone=spec,
        max_length=64,
        batch_size=4 // processes,
        shuffle=False,
    )
    model = RewardModel(  # SGD: Adam's first steps are sign(g), ill-conditioned for near-zero gradients
        backbone=spec,
        training_mode="full",
        embedding_dim=16,
        matrix=matrix.to_dict(),
        optimizer=lambda params: torch.optim.SGD(params, lr=0.5),
    )
    strategy = ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1) if mode == "fsdp2" else "auto"
    trainer = L.Trainer(
        accelerator="cpu",
        devices=processes,
        strategy=strategy,
        max_steps=0 if mode == "single0" else 3,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    if processes == 1:
        data.train_dataloader = lambda: same_batches_as_two_ranks(data)  # type: ignore[method-assign]
    trainer.fit(model, datamodule=data)
    params = {}
    for name, p in model.named_parameters():
        full = p.full_tensor() if hasattr(p, "full_tensor") else p
        params[name] = full.detach().clone()
    sharded = sum(hasattr(p, "full_tensor") for p in model.parameters())
    if trainer.is_global_zero:
        torch.save({"params": params, "sharded": sharded, "world_size": trainer.world_size}, out)


if __name__ == "__main__":
    main(*sys.argv[1:4])
