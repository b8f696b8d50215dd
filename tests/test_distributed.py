"""FSDP2 (ModelParallelStrategy, 2 CPU processes) trains the same model as one process on the same data."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT, make_unit, write_jsonl

pytestmark = pytest.mark.distributed


def run(mode: str, out, data_dir) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "distributed_fit.py"), mode, str(out), str(data_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]


def test_fsdp2_matches_a_single_process(tmp_path):
    dims = ["accuracy", "safety", "completeness", "context_awareness"]
    write_jsonl(tmp_path / "train.jsonl", [make_unit(i, k=3, dimension=dims[i % 4]) for i in range(12)])
    run("fsdp2", tmp_path / "fsdp2.pt", tmp_path)
    run("single", tmp_path / "single.pt", tmp_path)
    sharded = torch.load(tmp_path / "fsdp2.pt")
    single = torch.load(tmp_path / "single.pt")
    assert sharded["world_size"] == 2 and sharded["sharded"] > 0 and single["sharded"] == 0
    assert sharded["params"].keys() == single["params"].keys()
    for name, value in single["params"].items():
        torch.testing.assert_close(
            sharded["params"][name], value, rtol=1e-3, atol=1e-4, msg=name
        )  # float sums in another order
    run("single0", tmp_path / "initial.pt", tmp_path)  # the same model before any step
    initial = torch.load(tmp_path / "initial.pt")["params"]
    moved = [n for n, v in single["params"].items() if not torch.allclose(v, initial[n], atol=1e-4)]
    assert any(n.startswith("head.") for n in moved) and any(n.startswith("backbone.layers") for n in moved)
