"""A rollout engine that records what it drew, for the resume and CLI tests of GRPOPolicy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lit_mrrml.policy.rollout import HFGenerateEngine, Rollouts


class RecordingEngine(HFGenerateEngine):
    """HFGenerateEngine that appends every draw to a JSONL file.

    Args:
        path: JSONL file; one line per ``generate`` call: the seed, G and the completion token ids.
    """

    def __init__(self, path: str, batch_size: int | None = None) -> None:
        super().__init__(batch_size)
        self.path = Path(path)

    def generate(self, model: Any, prompt_ids: list[list[int]], num_generations: int, *args: Any) -> Rollouts:
        rollouts = super().generate(model, prompt_ids, num_generations, *args)
        completions = [
            ids[mask].tolist() for ids, mask in zip(rollouts.completion_ids, rollouts.completion_mask, strict=True)
        ]
        record = {"seed": args[-1], "g": num_generations, "prompts": prompt_ids, "completions": completions}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        return rollouts


def read_draws(path: Path, g: int) -> list[dict[str, Any]]:
    """The recorded draws with ``g`` generations a prompt (training: G; validation: 1)."""
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["g"] == g]
