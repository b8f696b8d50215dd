"""SFTPolicy under FSDP2 (ModelParallelStrategy, two CPU processes, LoRA with gradient checkpointing):
CausalLMModule.configure_model shards the policy, two steps train it, and they make the update one
process makes on the same batches with their gradients accumulated (tests/sft_distributed_fit.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import run_script
from tests.sft_distributed_fit import STEPS, WORLD

pytestmark = [pytest.mark.distributed, pytest.mark.slow]  # about 35 s on 2 cores: make test-slow


def run(mode: str, out: Path) -> None:
    run_script("sft_distributed_fit.py", mode, str(out), timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("sft_fsdp2")
    run("fsdp2", out)
    run("single", out)  # replays the fsdp2 run's batches
    load = lambda name: torch.load(out / name, weights_only=False)  # noqa: E731
    return {"fsdp2": [load(f"fsdp2_rank{r}.pt") for r in range(WORLD)], "single": [load("single_rank0.pt")]}


def adapter(names: Any) -> list[str]:
    return [n for n in names if ".lora_A." in n or ".lora_B." in n]


def test_the_policy_is_sharded_and_trains(runs: dict[str, list[dict[str, Any]]]) -> None:
    ranks = runs["fsdp2"]
    for found in ranks:
        assert found["world_size"] == WORLD and found["sharded"] > 0 and found["checkpointing"]
        assert len(found["losses"]) == STEPS and all(torch.isfinite(torch.tensor(found["losses"])))
        before, after = found["before"], found["after"]
        lora = adapter(before)
        assert lora and all(not torch.equal(before[n], after[n]) for n in lora)  # B in step 1, then A too
        assert all(torch.equal(before[n], after[n]) for n in before if n not in lora)  # the base stays
    assert not torch.equal(ranks[0]["batches"][0]["input_ids"], ranks[1]["batches"][0]["input_ids"])  # own batches


def test_the_sharded_update_is_the_accumulated_update_of_one_process(runs: dict[str, list[dict[str, Any]]]) -> None:
    sharded, single = runs["fsdp2"][0], runs["single"][0]
    assert single["world_size"] == 1 and single["sharded"] == 0 and len(single["losses"]) == WORLD * STEPS
    assert single["before"].keys() == sharded["before"].keys()
    assert all(torch.equal(single["before"][n], v) for n, v in sharded["before"].items())  # the same start
    names = adapter(sharded["before"])
    moved_sharded = torch.cat([(sharded["after"][n] - sharded["before"][n]).flatten() for n in names])
    moved_single = torch.cat([(single["after"][n] - single["before"][n]).flatten() for n in names])
    assert float(moved_single.norm()) > 1e-3
    error = float((moved_sharded - moved_single).norm() / moved_single.norm())
    assert error < 1e-4, error  # no gradient averaging over the ranks would leave each rank its own update
