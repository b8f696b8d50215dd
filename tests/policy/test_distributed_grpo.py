"""GRPOPolicy on two CPU processes (DDP, gloo): whole groups per rank, GDPO's batch standardisation
over both ranks, identical parameters on both ranks, and the gradient of the whole batch.

tests/policy_distributed_fit.py runs two rollout batches of GDPO (G = 4, B = 2 prompts a rank,
micro-batches of 3 rows, 2 passes each, beta = 0.04) with DDP, then once more in one process on
the same 4 prompts a batch, replaying the DDP ranks' rollouts: with SGD and no clipping, the one-
process run's parameter updates are the whole batch's token_mean gradient, which DDP must match.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from lit_mrrml.losses.grpo import group_advantages
from tests.conftest import ROOT

pytestmark = pytest.mark.distributed

G, B, WORLD, STEPS, NUM_ITERATIONS = 4, 2, 2, 2, 2  # as in tests/policy_distributed_fit.py


def run(mode: str, out: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "policy_distributed_fit.py"), mode, str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What each rank of the DDP run and the one-process replay saw and ended with."""
    out = tmp_path_factory.mktemp("policy_ddp")
    run("ddp", out)
    run("replay", out)  # reads the ddp run's rollouts
    found: dict[str, Any] = {}
    for mode, ranks in (("ddp", WORLD), ("replay", 1)):
        found[mode] = [json.loads((out / f"{mode}_rank{r}.json").read_text()) for r in range(ranks)]
        found[f"{mode}_tensors"] = [torch.load(out / f"{mode}_rank{r}.pt") for r in range(ranks)]
    return found


def test_each_rank_keeps_its_prompts_groups_whole(runs: dict[str, Any]) -> None:
    ranks, replay = runs["ddp"], runs["replay"][0]
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
    ranks, replay = runs["ddp"], runs["replay"][0]
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
    snapshots = [t["snapshots"] for t in runs["ddp_tensors"]]  # [rank][0: start, k: after rollout batch k]
    assert [len(s) for s in snapshots] == [STEPS + 1] * WORLD
    for k in range(STEPS + 1):
        assert snapshots[0][k].keys() == snapshots[1][k].keys()
        for name, value in snapshots[0][k].items():
            assert torch.equal(value, snapshots[1][k][name]), (k, name)
    start, end = snapshots[0][0], snapshots[0][STEPS]
    policy = [n for n in start if n.startswith("policy.")]
    reference = [n for n in start if n.startswith("reference.")]
    assert policy and reference  # full fine-tuning with beta > 0: a frozen copy
    assert all(not torch.equal(start[n], end[n]) for n in policy)  # every trainable weight moved
    assert all(torch.equal(start[n], end[n]) for n in reference)  # the reference did not


def test_ddp_update_is_the_whole_batch_gradient(runs: dict[str, Any]) -> None:
    """token_mean over both ranks: the one-process run over the same 2*B prompts and rollouts makes
    the same SGD updates (to float rounding: micro-batches and padding differ)."""
    ddp, single = runs["ddp_tensors"][0]["snapshots"], runs["replay_tensors"][0]["snapshots"]
    names = [n for n in ddp[0] if n.startswith("policy.")]
    for name in ddp[0]:
        assert torch.equal(ddp[0][name], single[0][name]), name  # the same initial weights
    for k in range(1, STEPS + 1):
        moved_ddp = torch.cat([(ddp[k][n] - ddp[0][n]).flatten() for n in names])
        moved_single = torch.cat([(single[k][n] - single[0][n]).flatten() for n in names])
        assert float(moved_single.norm()) > 1e-2
        error = float((moved_ddp - moved_single).norm() / moved_single.norm())
        assert error < 1e-4, (k, error)  # a token_mean denominator off by the world size gives about 0.5
