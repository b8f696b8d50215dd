"""The tiny reward model on 2 CPU processes, DDP (gloo) and FSDP2 (ModelParallelStrategy), trains the
same parameters as one process on the same global batches; the FSDP2 run's sharded checkpoint,
consolidated into one file, loads in one process and gives the rewards the sharded model gave."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from lit_mrrml import RewardModel
from lit_mrrml.modules.loading import load_reward_model
from lit_mrrml.modules.sharded_checkpoint import consolidate_checkpoint
from tests.conftest import make_unit, run_script, write_jsonl
from tests.distributed_fit import SCORED, WORLD

pytestmark = pytest.mark.distributed


def run(mode: str, out: Path, data_dir: Path) -> None:
    run_script("distributed_fit.py", mode, str(out), str(data_dir))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each run's result (rank 0) and the batches each rank trained on, and the output folder."""
    out = tmp_path_factory.mktemp("reward_distributed")
    dims = ["accuracy", "safety", "completeness", "context_awareness"]
    write_jsonl(out / "train.jsonl", [make_unit(i, k=3, dimension=dims[i % 4]) for i in range(12)])
    found: dict[str, Any] = {"out": out}
    for mode in ("fsdp2", "ddp", "single", "single0"):  # single replays the fsdp2 run's global batches
        run(mode, out, out)
        found[mode] = torch.load(out / f"{mode}.pt", weights_only=False)
        ranks = WORLD if mode in ("fsdp2", "ddp") else 1
        files = [out / f"{mode}_rank{r}.json" for r in range(ranks)]
        found[f"{mode}_batches"] = [json.loads(f.read_text())["batches"] for f in files]
    return found


def assert_same_parameters(found: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert found.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(found[name], value, rtol=1e-3, atol=1e-4, msg=name)  # float sums in another order


def test_the_runs_train_on_the_same_global_batches(runs: dict[str, Any]) -> None:
    fsdp2, ddp, single = runs["fsdp2_batches"], runs["ddp_batches"], runs["single_batches"][0]
    assert ddp == fsdp2 and len(fsdp2[0]) == len(fsdp2[1]) == 3  # the sampler does not depend on the strategy
    assert all(len(batch) == 2 for rank in fsdp2 for batch in rank)
    assert not set(fsdp2[0][0]) & set(fsdp2[1][0])  # the ranks' units are disjoint
    assert single == [a + b for a, b in zip(fsdp2[0], fsdp2[1], strict=True)]


@pytest.mark.parametrize("mode", ["fsdp2", "ddp"])
def test_two_processes_match_a_single_process(runs: dict[str, Any], mode: str) -> None:
    distributed, single = runs[mode], runs["single"]
    assert distributed["world_size"] == WORLD and single["world_size"] == 1 and single["sharded"] == 0
    assert (distributed["sharded"] > 0) == (mode == "fsdp2")  # DDP keeps whole parameters
    assert_same_parameters(distributed["params"], single["params"])
    initial = runs["single0"]["params"]  # the same model before any step
    moved = [n for n, v in single["params"].items() if not torch.allclose(v, initial[n], atol=1e-4)]
    assert any(n.startswith("head.") for n in moved) and any(n.startswith("backbone.layers") for n in moved)


def test_the_sharded_checkpoint_reloads_in_one_process_with_the_same_rewards(runs: dict[str, Any]) -> None:
    folder = runs["out"] / "fsdp2.ckpt"
    assert folder.is_dir() and sorted(p.name for p in folder.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    single_file = consolidate_checkpoint(folder)
    assert single_file == runs["out"] / "fsdp2.consolidated.ckpt"
    model = RewardModel.load_from_checkpoint(single_file, map_location="cpu")
    assert not any(hasattr(p, "full_tensor") for p in model.parameters())  # plain tensors again
    params = dict(model.named_parameters())
    assert params.keys() == runs["fsdp2"]["params"].keys()
    assert all(torch.equal(params[n], v) for n, v in runs["fsdp2"]["params"].items())  # the trained weights
    prompts, responses, scenarios = (list(column) for column in zip(*SCORED, strict=True))
    scores, expected = model.score(prompts, responses, scenarios), runs["fsdp2"]["scores"]
    assert scores.dimension_names == expected.dimension_names
    torch.testing.assert_close(scores.rewards, expected.rewards, rtol=0, atol=1e-6)
    torch.testing.assert_close(scores.totals, expected.totals, rtol=0, atol=1e-6)
    assert not torch.allclose(scores.rewards[0], scores.rewards[1])  # two rows, two different answers
    direct = load_reward_model(str(folder), what="RewardModelReward.path")  # the folder itself, gathered in memory
    torch.testing.assert_close(direct.score(prompts, responses, scenarios).rewards, expected.rewards, rtol=0, atol=1e-6)
