"""Shared fixtures: the shipped matrix, a tiny random-init backbone, small ranked-unit files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.models.backbone import BackboneSpec
from lit_mrrml.models.tiny import TINY_QWEN2

ROOT = Path(__file__).resolve().parents[1]
MATRIX_PATH = ROOT / "configs" / "matrix" / "medical_dsd.yaml"
TINY_TOKENIZER = ROOT / "configs" / "tokenizers" / "tiny"
DEMO = ROOT / "data" / "demo"


@pytest.fixture(scope="session")
def matrix() -> RubricMatrix:
    return RubricMatrix.from_yaml(MATRIX_PATH)


@pytest.fixture
def tiny_spec() -> BackboneSpec:
    """A 2-layer Qwen2 of hidden size 64 with random weights and the shipped tiny tokenizer."""
    return BackboneSpec(config=dict(TINY_QWEN2), tokenizer=str(TINY_TOKENIZER))


def make_unit(index: int, k: int = 3, dimension: str = "safety", prompt: str | None = None, **extra: Any) -> dict:
    """A valid ranked unit with distinct responses."""
    unit = {
        "id": f"u{index}",
        "prompt": [{"role": "user", "content": prompt or f"Question number {index} about chest pain?"}],
        "dimension": dimension,
        "scenario": "emergency_referrals",
        "discipline": "cardiology",
        "responses": [f"Answer {index} of quality {q}: call for help if the pain spreads." for q in range(k)],
    }
    unit.update(extra)
    return unit


def write_jsonl(path: Path, records: list[Any]) -> Path:
    """Write records (dicts, or raw strings written as they are) one a line."""
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def unit_files(tmp_path: Path) -> dict[str, Path]:
    """Small train/val/test files with distinct prompts, mixed K and every dimension."""
    dims = ["accuracy", "completeness", "communication_quality", "context_awareness", "instruction_following", "safety"]
    files = {}
    for offset, split in ((0, "train"), (100, "val"), (200, "test")):
        n = 12 if split == "train" else 6
        units = [make_unit(offset + i, k=2 + (i % 2), dimension=dims[i % 6]) for i in range(n)]
        files[split] = write_jsonl(tmp_path / f"{split}.jsonl", units)
    return files


def dead_url() -> str:
    """The base URL of a loopback port where nothing listens (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def assert_stopped_early_saying_why_once(err: str, url: str) -> None:
    """A command's stderr after it met an unreachable service: one warning, one final error line."""
    assert f"{url}/chat/completions" in err and err.count("WARNING") == 1
    assert err.count("Cannot connect to host") == 2  # the warning, and the final error naming the first one
    (final,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert final.startswith(f"error: cannot reach {url}/chat/completions: 20 attempts in a row got no response")
    assert final.endswith("finished work is saved: rerun the same command once the service answers")


def run_script(script: str, *args: str, timeout: int = 600) -> None:
    """Run ``tests/<script>`` with ``args`` in a fresh Python process (offline, the repo on the
    path), asserting that it succeeds; its stderr's tail is the failure message."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "tests" / script), *args]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]


def csv_logger(root: Path) -> list[str]:
    """Command-line arguments that log to ``root/lightning_logs/version_N/metrics.csv``, whichever
    loggers are installed (Lightning's default is TensorBoard's when the package is there)."""
    return ["--trainer.logger=CSVLogger", f"--trainer.logger.init_args.save_dir={root}"]


HEAVY = ("torch", "lightning", "pytorch_lightning", "transformers", "peft", "bitsandbytes")


@dataclass(frozen=True)
class FreshRun:
    """What ``statement`` printed, and which of the watched packages it imported, in a fresh process."""

    output: str
    imported: set[str]


def run_fresh(statement: str, watched: Iterable[str] = HEAVY) -> FreshRun:
    """Run ``statement`` in a fresh interpreter (repository root on the path) and read its
    ``sys.modules`` afterwards: the import checks of the light layers, not timings."""
    names = sorted(watched)
    code = f"import sys\n{statement}\nprint('\\nIMPORTED', *(n for n in {names!r} if n in sys.modules))"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    output, _, last = done.stdout.rstrip("\n").rpartition("\n")
    assert last.startswith("IMPORTED"), done.stdout[-2000:]
    return FreshRun(output, set(last.split()[1:]))
