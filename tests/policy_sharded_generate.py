"""Run by tests/policy/test_sharded_generate.py under ``torchrun --nproc-per-node 2``: rollouts and
log-probabilities of a tiny LoRA policy sharded with FSDP2, against an unsharded copy of it.

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/policy_sharded_generate.py OUT_DIR

The ranks sample with different ``max_new_tokens`` (2 and 6), so rank 0 is done after 2 forwards
while rank 1 still needs its all-gathers: without ``synced_gpus`` it would wait forever. Each rank
writes ``OUT_DIR/rank<r>.pt``: its sharded and unsharded rollouts, their log-probabilities with the
adapter on and off (eval mode, no gradients), and the error a mismatched number of generate calls gave.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed.device_mesh import init_device_mesh

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lit_mrrml.models.backbone import BackboneSpec
from lit_mrrml.models.lora import LoraSpec
from lit_mrrml.models.policy_model import build_policy_model
from lit_mrrml.models.sharding import is_sharded, shard_causal_lm, transformers_model
from lit_mrrml.models.tiny import TINY_QWEN2
from lit_mrrml.policy.logprobs import sequence_logprobs
from lit_mrrml.policy.rollout import HFGenerateEngine, Rollouts, SamplingSettings, synced_forwards
from tests.conftest import TINY_TOKENIZER

G, PAD, STOP = 3, 0, [2]
PROMPTS = {0: [[5, 17, 300], [42, 7]], 1: [[99, 250, 3, 8], [11, 12]]}  # each rank's own prompts
MAX_NEW_TOKENS = {0: 2, 1: 6}


@torch.no_grad()
def logprobs(model: nn.Module, rollouts: Rollouts) -> Tensor:
    """(N, T) log-probabilities of the rollouts' completions, in eval mode."""
    model.eval()
    logp, _ = sequence_logprobs(
        model, rollouts.prompt_ids, rollouts.prompt_mask, rollouts.completion_ids, rollouts.completion_mask
    )
    return logp


def both_ways(model: Any, rollouts: Rollouts) -> dict[str, Tensor]:
    """The log-probabilities with the adapter on and off (the LoRA reference)."""
    on = logprobs(model, rollouts)
    with model.disable_adapter():
        off = logprobs(model, rollouts)
    return {"on": on, "off": off}


def mismatched_calls(model: nn.Module, rank: int) -> str:
    """The error of ranks that would make 1 and 3 generate calls of 2 sequences."""
    engine, prompts = HFGenerateEngine(batch_size=2), [[5, 6]] * (1 if rank == 0 else 3)
    try:
        engine.generate(model, prompts, 2, SamplingSettings(2), STOP, PAD, seed=0)
    except RuntimeError as err:
        return str(err)
    return ""


def main(out: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)  # the same weights on every rank
    spec = BackboneSpec(config=dict(TINY_QWEN2), tokenizer=str(TINY_TOKENIZER))
    model: Any = build_policy_model(spec, "lora", LoraSpec(dropout=0.0))
    with torch.no_grad():  # a fresh adapter's B is 0: give it weight, so that on and off differ
        for name, p in model.named_parameters():
            if ".lora_B." in name:
                p.normal_(0, 0.5)
    plain = copy.deepcopy(model)
    shard_causal_lm(model, init_device_mesh("cpu", (world,), mesh_dim_names=("data_parallel",)))
    inner = transformers_model(model)
    sampling = SamplingSettings(MAX_NEW_TOKENS[rank], temperature=1.0)
    engine = HFGenerateEngine()
    sharded = engine.generate(model, PROMPTS[rank], G, sampling, STOP, PAD, seed=rank)  # collectives: both ranks
    unsharded = engine.generate(plain, PROMPTS[rank], G, sampling, STOP, PAD, seed=rank)  # no collectives
    result = {
        "sharded": vars(sharded),
        "unsharded": vars(unsharded),
        "logp_sharded": both_ways(model, sharded),
        "logp_unsharded": both_ways(plain, sharded),
        "is_sharded": (is_sharded(model), is_sharded(plain)),
        "synced": (synced_forwards(model, 1), synced_forwards(plain, 1)),
        "tied": inner.get_input_embeddings().weight is inner.get_output_embeddings().weight,
        "mismatch": mismatched_calls(model, rank),
    }
    torch.save(result, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
