"""HFGenerateEngine on a policy sharded with FSDP2 over two CPU processes (tests/policy_sharded_generate.py):
the ranks stop generating at different steps and still finish (``synced_gpus``), the rollouts are the
unsharded model's, and so are the eval-mode log-probabilities with the LoRA adapter on and off."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
import torch

from tests.conftest import ROOT
from tests.policy_sharded_generate import MAX_NEW_TOKENS, PROMPTS, G

pytestmark = [pytest.mark.distributed, pytest.mark.slow]  # two processes, about 15 s: make test-slow


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("sharded_generate")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    done = subprocess.run(
        [*launch, str(ROOT / "tests" / "policy_sharded_generate.py"), str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,  # a rank left waiting for an all-gather would hang until here
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


def test_ranks_that_stop_at_different_steps_both_finish(ranks: list[dict[str, Any]]) -> None:
    for rank, found in enumerate(ranks):
        assert found["is_sharded"] == (True, False) and found["synced"] == (True, False) and found["tied"]
        rollouts = found["sharded"]
        assert rollouts["completion_ids"].shape[0] == len(PROMPTS[rank]) * G
        assert int(rollouts["completion_mask"].sum(1).max()) <= MAX_NEW_TOKENS[rank]
    assert ranks[0]["sharded"]["completion_ids"].shape[1] <= 2 < ranks[1]["sharded"]["completion_ids"].shape[1]


def test_sharded_rollouts_are_the_unsharded_models(ranks: list[dict[str, Any]]) -> None:
    for found in ranks:
        for field in ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "truncated"):
            assert torch.equal(found["sharded"][field], found["unsharded"][field]), field


def test_eval_logprobs_with_the_adapter_on_and_off_match_the_unsharded_model(ranks: list[dict[str, Any]]) -> None:
    for found in ranks:
        mask = found["sharded"]["completion_mask"]
        sharded, unsharded = found["logp_sharded"], found["logp_unsharded"]
        for key in ("on", "off"):
            torch.testing.assert_close(sharded[key][mask], unsharded[key][mask], rtol=0, atol=1e-5)
        assert float((sharded["on"] - sharded["off"])[mask].abs().max()) > 1e-2  # disable_adapter took effect


def test_a_mismatched_number_of_generate_calls_is_refused_on_every_rank(ranks: list[dict[str, Any]]) -> None:
    for rank, found in enumerate(ranks):
        assert found["mismatch"].startswith("sharded generate: the ranks make 1 to 3 generate calls"), found["mismatch"]
        assert f"(this rank {1 if rank == 0 else 3})" in found["mismatch"]
