"""GRPOPolicy on two CPU processes, DDP (gloo) and FSDP2 (ModelParallelStrategy, full and LoRA): whole
groups per rank, GDPO's batch standardisation over both ranks, identical parameters on both ranks,
the gradient of the whole batch, and a checkpoint (FSDP2: sharded) that reloads in one process.

tests/policy_distributed_fit.py runs two rollout batches of GDPO (G = 4, B = 2 prompts a rank,
micro-batches of 3 rows, 2 passes each, beta = 0.04) on two processes, then once more in one process
on the same 4 prompts a batch, replaying the two ranks' rollouts: with SGD and no clipping, the one-
process run's parameter updates are the whole batch's token_mean gradient, which the two-process
run must match. Under FSDP2 the rollouts are drawn by the sharded policy itself (``generate`` with
``synced_gpus``), the full-mode reference is sharded in units of its own, and the LoRA reference is
the sharded policy with its adapter disabled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from lit_mrrml import GRPOLoss, GRPOPolicy
from lit_mrrml.losses.grpo import group_advantages
from lit_mrrml.modules.sharded_checkpoint import consolidate_checkpoint
from lit_mrrml.policy.rewards import CallableReward
from tests.conftest import run_script
from tests.policy_distributed_fit import DIMENSIONS, PROBE, dense_rule, probe_logits

pytestmark = pytest.mark.distributed

G, B, WORLD, STEPS, NUM_ITERATIONS = 4, 2, 2, 2, 2  # as in tests/policy_distributed_fit.py
SETUPS = [("ddp", "full"), ("fsdp2", "full"), ("fsdp2", "lora")]  # (strategy, training_mode)
# about 30 s each on 2 cores: fsdp2-lora in the default suite, the other two with make test-slow
PARAMS = [pytest.param(s, id="-".join(s), marks=() if s == ("fsdp2", "lora") else pytest.mark.slow) for s in SETUPS]


def run(mode: str, out: Path, training_mode: str) -> None:
    run_script("policy_distributed_fit.py", mode, str(out), training_mode, timeout=300)


@pytest.fixture(scope="module", params=PARAMS)
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What each rank of the two-process run ("dist") and the one-process replay saw and ended with."""
    strategy, training_mode = request.param
    out = tmp_path_factory.mktemp(f"policy_{strategy}_{training_mode}")
    run(strategy, out, training_mode)
    run(f"replay-{strategy}", out, training_mode)  # reads the two-process run's rollouts
    found: dict[str, Any] = {"strategy": strategy, "training_mode": training_mode, "out": out}
    for key, mode, ranks in (("dist", strategy, WORLD), ("replay", f"replay-{strategy}", 1)):
        found[key] = [json.loads((out / f"{mode}_rank{r}.json").read_text()) for r in range(ranks)]
        found[f"{key}_tensors"] = [torch.load(out / f"{mode}_rank{r}.pt") for r in range(ranks)]
    return found


def test_each_rank_keeps_its_prompts_groups_whole(runs: dict[str, Any]) -> None:
    ranks, replay = runs["dist"], runs["replay"][0]
    assert [r["world_size"] for r in ranks] == [WORLD, WORLD] and [r["rank"] for r in ranks] == [0, 1]
    assert all(len(r["steps"]) == STEPS and r["global_step"] == STEPS * NUM_ITERATIONS for r in ranks)
    seen: list[str] = []
    for k in range(STEPS):
        steps = [r["steps"][k] for r in ranks]
        for step in steps:
            assert len(step["ids"]) == B and len(step["rollout_prompts"]) == B * G
            # prompt-major: rollouts b*G .. b*G+G-1 continue this rank's prompt b, so a group never leaves its rank
            assert step["rollout_prompts"] == [p for p in step["prompt_ids"] for _ in range(G)]
            assert len(step["rewards"]) == len(step["advantages"]) == B * G and len(step["weights"]) == B
        assert not set(steps[0]["ids"]) & set(steps[1]["ids"])  # the ranks' prompts are disjoint
        assert not {tuple(p) for p in steps[0]["prompt_ids"]} & {tuple(p) for p in steps[1]["prompt_ids"]}
        # the global batch is rank 0's prompts then rank 1's: what one process draws with 2*B prompts
        assert replay["steps"][k]["ids"] == steps[0]["ids"] + steps[1]["ids"]
        seen += steps[0]["ids"] + steps[1]["ids"]
    assert len(set(seen)) == len(seen) == STEPS * WORLD * B  # no prompt twice within the epoch


def test_gdpo_standardises_over_both_ranks(runs: dict[str, Any]) -> None:
    ranks, replay = runs["dist"], runs["replay"][0]
    rank_alone_differs = []
    for k in range(STEPS):
        rewards = [torch.tensor(r["steps"][k]["rewards"]).view(B, G, -1) for r in ranks]  # (B, G, L) each
        weights = [torch.tensor(r["steps"][k]["weights"]) for r in ranks]  # (B, L) each
        advantages = [torch.tensor(r["steps"][k]["advantages"]) for r in ranks]  # (B*G,) each
        assert rewards[0].shape[2] == 6 and (rewards[0].std(1) > 1e-3).all()  # dense: no dimension under the floor
        assert not torch.allclose(weights[0], weights[0].new_full(weights[0].shape, 1 / 6))  # the matrix's weights
        both = torch.cat(advantages)
        expected = group_advantages(torch.cat(rewards), torch.cat(weights), "gdpo", std_floor=1e-3).flatten()
        torch.testing.assert_close(both, expected, rtol=0, atol=1e-6)
        # over the 2*B*G values together: mean 0, sample std s / (s + eps) with eps = 1e-4
        assert abs(float(both.mean())) < 1e-6 and abs(float(both.std()) - 1) < 1e-3
        torch.testing.assert_close(torch.tensor(replay["steps"][k]["advantages"]), both, rtol=0, atol=1e-6)
        for r in range(WORLD):
            alone = group_advantages(rewards[r], weights[r], "gdpo", std_floor=1e-3).flatten()
            rank_alone_differs.append(float((alone - advantages[r]).abs().max()) > 1e-3)
            rank_alone_differs.append(abs(float(advantages[r].std()) - 1) > 1e-3)
    assert any(rank_alone_differs)  # standardising one rank's batch alone would have given other advantages


def test_parameters_stay_identical_on_both_ranks(runs: dict[str, Any]) -> None:
    snapshots = [t["snapshots"] for t in runs["dist_tensors"]]  # [rank][0: start, k: after rollout batch k]
    assert [len(s) for s in snapshots] == [STEPS + 1] * WORLD
    for k in range(STEPS + 1):
        assert snapshots[0][k].keys() == snapshots[1][k].keys()
        for name, value in snapshots[0][k].items():
            assert torch.equal(value, snapshots[1][k][name]), (k, name)
    start, end = snapshots[0][0], snapshots[0][STEPS]
    sharded = [r["sharded_parameters"] for r in runs["dist"]]
    assert sharded[0] == sharded[1] and (sharded[0] > 0) == (runs["strategy"] == "fsdp2")
    if runs["training_mode"] == "full":  # beta > 0: a frozen copy
        trained = [n for n in start if n.startswith("policy.")]
        frozen = [n for n in start if n.startswith("reference.")]
        assert len(trained) == len(frozen)  # a whole second model, sharded on its own under FSDP2
    else:  # the LoRA reference is the same weights with the adapter off
        trained = [n for n in start if ".lora_A." in n or ".lora_B." in n]
        frozen = [n for n in start if n not in trained]
        assert not any(n.startswith("reference.") for n in start)
    assert trained and frozen
    assert all(not torch.equal(start[n], end[n]) for n in trained)  # every trainable weight moved
    assert all(torch.equal(start[n], end[n]) for n in frozen)  # the reference (or the LoRA base) did not


def test_the_update_is_the_whole_batch_gradient(runs: dict[str, Any]) -> None:
    """token_mean over both ranks: the one-process run over the same 2*B prompts and rollouts makes
    the same SGD updates (to float rounding: micro-batches and padding differ)."""
    dist, single = runs["dist_tensors"][0]["snapshots"], runs["replay_tensors"][0]["snapshots"]
    names = [n for n in dist[0] if n.startswith("policy.") and not torch.equal(dist[0][n], dist[STEPS][n])]
    assert names  # the trained weights: all of them in full mode, the adapter with LoRA
    for name in dist[0]:
        assert torch.equal(dist[0][name], single[0][name]), name  # the same initial weights
    for k in range(1, STEPS + 1):
        moved_dist = torch.cat([(dist[k][n] - dist[0][n]).flatten() for n in names])
        moved_single = torch.cat([(single[k][n] - single[0][n]).flatten() for n in names])
        assert float(moved_single.norm()) > 1e-2
        error = float((moved_dist - moved_single).norm() / moved_single.norm())
        assert error < 1e-4, (k, error)  # a token_mean denominator off by the world size gives about 0.5


def test_the_checkpoint_reloads_in_one_process_with_the_same_logits(runs: dict[str, Any]) -> None:
    saved = runs["out"] / f"{runs['strategy']}.ckpt"
    assert saved.is_dir() == (runs["strategy"] == "fsdp2")  # FSDP2: a folder of shards, to consolidate
    single_file = consolidate_checkpoint(saved) if saved.is_dir() else saved
    policy = GRPOPolicy.load_from_checkpoint(  # the reward and the loss are not hyperparameters
        single_file, map_location="cpu", reward=CallableReward(dense_rule, DIMENSIONS), loss=GRPOLoss(beta=0.04)
    )
    params, trained = dict(policy.named_parameters()), runs["dist_tensors"][0]["snapshots"][STEPS]
    assert params.keys() == trained.keys() and not any(hasattr(p, "full_tensor") for p in params.values())
    assert all(torch.equal(params[n], v) for n, v in trained.items())  # the weights after the last step
    assert policy.rollout_step == STEPS  # the module's own checkpoint state travels in meta.pt
    logits = probe_logits(policy.policy)  # (2, 8, V)
    sharded = runs["dist_tensors"][0]["logits"]  # of the (sharded) policy, just before saving
    assert logits.shape == (len(PROBE), len(PROBE[0]), 1024)
    torch.testing.assert_close(logits, sharded, rtol=0, atol=1e-5)
    torch.testing.assert_close(runs["dist_tensors"][1]["logits"], sharded, rtol=0, atol=0)  # both ranks
