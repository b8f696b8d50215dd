"""The GPU checks in one go: ``pytest -m gpu tests/gpu``, then a Markdown table of what they measured.

Runs, on one CUDA GPU (about 5 minutes on an H200, most of it vLLM's start-up and the first
download-free load of SmolLM2):

- tests/gpu/test_fsdp_smollm2.py: configs/trainer/fsdp.yaml (BlockFSDPStrategy) training the
  reward model with LoRA on SmolLM2-135M-Instruct, in bf16-mixed and on 4-bit NF4 weights stored
  in bf16 (bf16-true), a sharded checkpoint each;
- tests/gpu/test_vllm_grpo.py: three GRPO steps with vLLM rollouts (skipped without the ``vllm``
  extra), logging rollout/logp_gap.

Each test writes ``<name>.json`` (peak ``torch.cuda.max_memory_allocated`` and reserved memory,
median step time after the first, the logged metrics) into the results folder: $OUT/gpu when
$OUT is set (the device machine's output folder), else runs/gpu/results. This script adds
``pytest.txt``, ``junit.xml``, ``nvidia-smi.txt`` and ``summary.md`` (the rows for
benchmarks/README.md) there.

    python benchmarks/gpu_check.py                 # everything, at most --timeout seconds
    python benchmarks/gpu_check.py -k fsdp         # pytest's -k: a subset
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def results_dir() -> Path:
    if os.environ.get("LIT_MRRML_GPU_RESULTS"):
        return Path(os.environ["LIT_MRRML_GPU_RESULTS"])
    return Path(os.environ["OUT"]) / "gpu" if os.environ.get("OUT") else ROOT / "runs" / "gpu" / "results"


def summary(folder: Path) -> str:
    """A Markdown table of every ``*.json`` record in ``folder``."""
    rows = [
        "| run | device | steps | peak allocated | peak reserved | step time (median) | first step | logp_gap |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for path in sorted(folder.glob("*.json")):
        r = json.loads(path.read_text())
        gaps = r.get("metrics", {}).get("rollout/logp_gap")
        gap = f"{statistics.mean(gaps):.4f}" if gaps else "-"
        step = f"{r['step_time_s']:.3f} s" if r.get("step_time_s") is not None else "-"
        first = f"{r['first_step_s']:.2f} s" if r.get("first_step_s") is not None else "-"
        rows.append(
            f"| {r['name']} | {r['device']} | {r['steps']} | {r['peak_allocated_gib']:.2f} GiB "
            f"| {r['peak_reserved_gib']:.2f} GiB | {step} | {first} | {gap} |"
        )
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default=None, help="pytest -k expression (a subset of the gpu tests)")
    parser.add_argument("--timeout", type=int, default=480, help="seconds for the whole pytest run")
    args = parser.parse_args(argv)
    folder = results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LIT_MRRML_GPU_RESULTS": str(folder), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, check=False) if _has("nvidia-smi") else None
    (folder / "nvidia-smi.txt").write_text(smi.stdout if smi else "nvidia-smi not found\n")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "-rs", "tests/gpu"]
    command += ["--junitxml", str(folder / "junit.xml")] + (["-k", args.k] if args.k else [])
    try:
        run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=args.timeout)
        output, code = run.stdout + run.stderr, run.returncode
    except subprocess.TimeoutExpired as err:
        output, code = f"{err.stdout or ''}{err.stderr or ''}\ntimed out after {args.timeout} s\n", 124
    (folder / "pytest.txt").write_text(output if isinstance(output, str) else str(output))
    table = summary(folder)
    (folder / "summary.md").write_text(table)
    print(output[-4000:] if isinstance(output, str) else output)
    print(table)
    return code


def _has(program: str) -> bool:
    return any((Path(p) / program).is_file() for p in os.environ.get("PATH", "").split(os.pathsep))


if __name__ == "__main__":
    raise SystemExit(main())
