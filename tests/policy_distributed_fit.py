"""Run by tests/policy/test_distributed_grpo.py: two rollout batches of GDPO on a tiny random policy.

    python tests/policy_distributed_fit.py ddp OUT_DIR [full|lora]     two CPU processes (DDP, gloo), B = 2 a rank
    python tests/policy_distributed_fit.py fsdp2 OUT_DIR [full|lora]   two CPU processes, FSDP2 (ModelParallelStrategy)
    python tests/policy_distributed_fit.py replay-ddp|replay-fsdp2 OUT_DIR [full|lora]
                                                    one process, B = 4, replaying the rollouts of ddp or fsdp2

Each rank writes ``OUT_DIR/<mode>_rank<r>.json`` (what it saw in every rollout batch: prompt ids, the
prompt of every rollout, rewards, scenario weights, advantages) and ``OUT_DIR/<mode>_rank<r>.pt`` (its
rollouts, the policy's full parameters at the start and after every rollout batch, gathered from the
shards under FSDP2, and its logits on a fixed batch after training). ``replay-<source>`` draws no
rollouts: its engine hands out the source run's rollouts of both ranks, rank 0's first, which is the
order of the global batch, so that the one-process gradient of the whole batch can be compared with
the distributed run's. A two-process run also saves a checkpoint, ``OUT_DIR/<mode>.ckpt`` (fsdp2: a folder).
SGD without gradient clipping, so that a parameter update is -lr times the gradient itself (a wrong
token_mean denominator would show up as a scaled update; Adam's first steps would hide it).
"""

from __future__ import annotations

import json
import sys
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lit_mrrml import GRPOLoss, GRPOPolicy, PromptDataModule
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.models.backbone import BackboneSpec
from lit_mrrml.models.tiny import TINY_QWEN2
from lit_mrrml.policy.rewards import CallableReward
from lit_mrrml.policy.rollout import RolloutEngine, Rollouts, SamplingSettings, left_pad
from tests.conftest import DEMO, MATRIX_PATH, TINY_TOKENIZER

G, B, WORLD = 4, 2, 2  # generations, prompts a rank, ranks
STEPS = 2  # rollout batches; each is num_iterations optimizer steps
NUM_ITERATIONS = 2
LR = 0.1
ROLLOUT_FIELDS = ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "truncated")
DIMENSIONS = list(RubricMatrix.from_yaml(MATRIX_PATH).dimension_ids)  # the rule reward scores the matrix's dimensions
PROBE = [[5, 17, 300, 42, 7, 99, 250, 3], [11, 12, 13, 14, 15, 16, 17, 18]]  # (2, 8) token ids: the logits checked


def full(p: Tensor) -> Tensor:
    """The whole tensor: gathered from the shards of an FSDP2 (DTensor) parameter."""
    return p.full_tensor() if hasattr(p, "full_tensor") else p


@torch.no_grad()
def probe_logits(model: nn.Module) -> Tensor:
    """(2, 8, V) logits of the fixed PROBE batch, in eval mode (every rank runs it: all-gathers)."""
    was_training = model.training
    model.eval()
    logits = model(input_ids=torch.tensor(PROBE)).logits.float().clone()
    model.train(was_training)
    return logits


def dense_rule(prompts: Sequence[Sequence[Mapping[str, str]]], completions: Sequence[str]) -> list[list[float]]:
    """One value in [0, 1] per matrix dimension, from a CRC of the text: every dimension varies
    across completions (none falls under GDPO's std floor), and it is the same in every process."""
    return [[zlib.crc32(f"{d}|{text}".encode()) % 1001 / 1000 for d in DIMENSIONS] for text in completions]


def real_tokens(ids: Tensor, mask: Tensor) -> list[list[int]]:
    """Each row's tokens where the mask is set (a left-padded prompt without its padding)."""
    return [row[m.bool()].tolist() for row, m in zip(ids, mask, strict=True)]


class ReplayEngine(RolloutEngine):
    """Hands out the recorded rollouts of every rank of the ddp run, concatenated in rank order and
    padded again (prompts to the left, completions to the right), one rollout batch per call."""

    def __init__(self, recorded: list[list[dict[str, Tensor]]]) -> None:
        self.recorded, self.calls = recorded, 0  # recorded[rank][step]

    def generate(
        self,
        model: nn.Module,
        prompt_ids: list[list[int]],
        num_generations: int,
        sampling: SamplingSettings,
        stop_ids: list[int],
        pad_id: int,
        seed: int,
    ) -> Rollouts:
        parts = [rank[self.calls] for rank in self.recorded]
        self.calls += 1
        prompts = [p for part in parts for p in real_tokens(part["prompt_ids"], part["prompt_mask"])]
        expected = [ids for ids in prompt_ids for _ in range(num_generations)]
        if prompts != expected:
            raise AssertionError("replay: the one-process batch is not the ddp ranks' prompts in rank order")
        ids, mask = left_pad(prompts, pad_id)
        width = max(part["completion_ids"].shape[1] for part in parts)

        def right(x: Tensor, value: int | bool) -> Tensor:
            return nn.functional.pad(x, (0, width - x.shape[1]), value=value)

        completion_ids = torch.cat([right(part["completion_ids"], pad_id) for part in parts])
        completion_mask = torch.cat([right(part["completion_mask"], False) for part in parts])
        truncated = torch.cat([part["truncated"] for part in parts])
        return Rollouts(ids, mask, completion_ids, completion_mask, truncated, num_generations)


class RecordingPolicy(GRPOPolicy):
    """GRPOPolicy that keeps what each rollout batch was made of and the parameters after it."""

    steps: list[dict[str, Any]]
    rollouts_seen: list[dict[str, Tensor]]
    snapshots: list[dict[str, Tensor]]

    def params(self) -> dict[str, Tensor]:
        return {name: full(p.detach()).clone() for name, p in self.named_parameters()}

    def on_train_start(self) -> None:
        super().on_train_start()
        self.steps, self.rollouts_seen, self.snapshots = [], [], [self.params()]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.steps.append({"ids": list(batch["ids"]), "prompt_ids": batch["prompt_ids"]})
        super().training_step(batch, batch_idx)

    def rollout(self, batch: dict[str, Any], sampling: SamplingSettings, num_generations: int, seed: int) -> Rollouts:
        rollouts = super().rollout(batch, sampling, num_generations, seed)
        self.rollouts_seen.append({f: getattr(rollouts, f).detach().cpu().clone() for f in ROLLOUT_FIELDS})
        prompts = real_tokens(rollouts.prompt_ids, rollouts.prompt_mask)
        self.steps[-1] |= {"rollout_prompts": prompts, "completion_mask": rollouts.completion_mask.int().tolist()}
        return rollouts

    def advantages(self, rewards: Tensor, weights: Tensor, lengths: Tensor) -> Tensor:
        adv = super().advantages(rewards, weights, lengths)
        self.steps[-1] |= {"rewards": rewards.tolist(), "weights": weights.tolist(), "advantages": adv.tolist()}
        return adv

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.snapshots.append(self.params())


def main(mode: str, out: str, training_mode: str = "full") -> None:
    L.seed_everything(0)
    torch.use_deterministic_algorithms(True)
    spec = BackboneSpec(config=dict(TINY_QWEN2), tokenizer=str(TINY_TOKENIZER))
    matrix = RubricMatrix.from_yaml(MATRIX_PATH)
    replay = mode.startswith("replay-")
    processes = 1 if replay else WORLD
    engine = None
    if replay:
        source = mode.removeprefix("replay-")
        recorded = [torch.load(Path(out) / f"{source}_rank{r}.pt")["rollouts"] for r in range(WORLD)]
        engine = ReplayEngine(recorded)
    model = RecordingPolicy(
        backbone=spec,
        reward=CallableReward(dense_rule, DIMENSIONS),  # scenario weights from the matrix
        engine=engine,
        loss=GRPOLoss(beta=0.04),
        optimizer=lambda params: torch.optim.SGD(params, lr=LR),
        training_mode=training_mode,  # type: ignore[arg-type]
        num_generations=G,
        max_new_tokens=8,
        advantage="gdpo",
        num_iterations=NUM_ITERATIONS,
        micro_batch_size=3,  # micro-batches of 3 rows cut across the groups of 4
        max_grad_norm=None,
        matrix=matrix.to_dict(),
    )
    data = PromptDataModule(
        matrix=str(MATRIX_PATH),
        train_files=[str(DEMO / "train.jsonl")],
        backbone=spec,
        max_prompt_length=128,
        batch_size=B * WORLD // processes,
    )
    trainer = L.Trainer(
        accelerator="cpu",
        devices=processes,
        strategy=strategy(mode),
        precision="32-true",
        max_steps=STEPS * NUM_ITERATIONS,  # manual optimisation: global_step counts optimizer steps
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=data)
    logits = probe_logits(model.policy)
    if not replay:
        trainer.save_checkpoint(Path(out) / f"{mode}.ckpt")  # fsdp2: a folder of .distcp shards and meta.pt
    rank = trainer.global_rank
    stem = Path(out) / f"{mode}_rank{rank}"
    sharded = sum(hasattr(p, "full_tensor") for p in model.parameters())
    summary = {
        "world_size": trainer.world_size,
        "rank": rank,
        "global_step": trainer.global_step,
        "steps": model.steps,
        "sharded_parameters": sharded,
    }
    stem.with_suffix(".json").write_text(json.dumps(summary), encoding="utf-8")
    saved = {"rollouts": model.rollouts_seen, "snapshots": model.snapshots, "logits": logits}
    torch.save(saved, stem.with_suffix(".pt"))


def strategy(mode: str) -> Any:
    """DDP, FSDP2 over both processes (ModelParallelStrategy shards in configure_model), or one process."""
    if mode == "fsdp2":
        return ModelParallelStrategy(data_parallel_size=WORLD, tensor_parallel_size=1)
    return "ddp" if mode == "ddp" else "auto"


if __name__ == "__main__":
    main(*sys.argv[1:4])
