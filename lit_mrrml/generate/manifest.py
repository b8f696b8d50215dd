"""The end of every generation run: train/val/test files split by prompt, and ``manifest.json``.

Both are rebuilt from the output logs (all runs into the folder, not only this one) and replaced
in one step each, so they are never half-written and always agree with the logs.

The manifest's ``complete`` is true only when the logs on disk finish every planned unit key of
the run's selection (kept, dropped, or on a slot out of prompt attempts) and no request of this
run failed: a repaired log (a cut last line, named under ``this_run.repaired``) leaves it false
until a run makes the lost records again. A run's start sets an earlier manifest's ``complete``
to false before any work (``mark_incomplete``), so that a run killed where it cannot rewrite the
manifest (SIGKILL, power loss) never leaves an earlier ``complete: true`` behind.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lit_mrrml import __version__
from lit_mrrml.appendlog import write_jsonl_atomic, write_text_atomic
from lit_mrrml.backends.base import Usage
from lit_mrrml.backends.cache import CachedBackend
from lit_mrrml.generate.cells import Cell
from lit_mrrml.generate.options import SplitOptions
from lit_mrrml.generate.run import unfinished_units
from lit_mrrml.generate.store import GenerationStore, ResumeState
from lit_mrrml.jsonio import dumps

if TYPE_CHECKING:
    from lit_mrrml.generate.pipeline import DataGenerator
    from lit_mrrml.generate.run import RunCounters

SPLITS = ("train", "val", "test")


def split_of(prompt: list[dict[str, str]], shares: SplitOptions, seed: int) -> str:
    """The split of a prompt: a hash of its messages against the cumulative shares (stable as data grows)."""
    digest = hashlib.sha256(json.dumps([seed, prompt], ensure_ascii=False).encode("utf-8")).digest()
    draw = int.from_bytes(digest[:8], "little") / 2**64
    if draw < shares.train:
        return "train"
    return "val" if draw < shares.train + shares.val else "test"


@dataclass(frozen=True)
class Logs:
    """The three output logs of a folder, read once."""

    prompts: list[dict[str, Any]]
    units: list[dict[str, Any]]
    drops: list[dict[str, Any]]

    @classmethod
    def read(cls, store: GenerationStore) -> Logs:
        return cls(list(store.prompts), list(store.units), list(store.drops))

    def state(self) -> ResumeState:
        """What these records finish."""
        return ResumeState.of(self.prompts, self.units, self.drops)


def write_splits(root: Path, units: list[dict[str, Any]], shares: SplitOptions, seed: int) -> dict[str, int]:
    """Write ``train/val/test.jsonl`` from the kept units, in key order (the same files however
    often the run was interrupted); returns the units in each."""
    parts: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    for unit in sorted(units, key=lambda u: u["meta"]["key"]):
        parts[split_of(unit["prompt"], shares, seed)].append(unit)
    return {split: write_jsonl_atomic(root / f"{split}.jsonl", part) for split, part in parts.items()}


def _per_cell(logs: Logs) -> dict[str, dict[str, int]]:
    cells: dict[str, Counter[str]] = defaultdict(Counter)

    def key(record: dict[str, Any]) -> str:
        return Cell(**record["cell"]).key

    for record in logs.prompts:
        cells[key(record)]["prompts"] += 1
    for record in logs.units:
        cells[key(record["meta"])]["units"] += 1
    for record in logs.drops:
        cells[key(record)][f"dropped_{record['stage']}s"] += 1
    return {cell: dict(counts) for cell, counts in sorted(cells.items())}


def _judge(logs: Logs) -> dict[str, Any] | None:
    kept = sum(1 for u in logs.units if u["meta"]["judge"] is not None)
    disagreed = sum(1 for d in logs.drops if d["reason"] == "judge_disagrees")
    bad = sum(1 for d in logs.drops if d["reason"] == "judge_bad_reply")
    judged = kept + disagreed
    if judged + bad == 0:
        return None
    rate = kept / judged if judged else None
    return {"judged": judged, "agreed": kept, "agreement_rate": rate, "unusable_verdicts": bad}


def build_manifest(
    job: DataGenerator,
    logs: Logs,
    backends: list[CachedBackend | None],
    counters: RunCounters,
    repaired: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Everything a reader of the data needs to know where it came from and what was left out.

    ``repaired``: log file name -> bytes of a cut last line that this run's start removed.
    """
    drops: dict[str, Counter[str]] = {"prompt": Counter(), "unit": Counter()}
    for record in logs.drops:
        drops[record["stage"]][record["reason"]] += 1
    tokens = {name: b.tokens_used() for name, b in zip(("generator", "judge"), backends, strict=True) if b is not None}
    total = Usage()
    for usage in tokens.values():
        total.add(usage)
    return {
        "lit_mrrml": __version__,
        "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "complete": counters.complete,
        "matrix": {"path": job.matrix_path, "name": job.matrix.name, "version": job.matrix.version},
        "matrix_hash": job.matrix.content_hash(),
        "templates": job.templates.describe(),
        "generator": job.generator.id,
        "judge": job.judge.id if job.judge is not None else None,
        "seed": job.seed,
        "settings": job.settings(),
        "cells": asdict(job.cells),
        "counts": {
            "planned_units": job.planned_units,
            "unfinished_units": counters.unfinished,
            "prompts": len(logs.prompts),
            "units": len(logs.units),
            "per_cell": _per_cell(logs),
        },
        "drops": {stage: dict(sorted(counts.items())) for stage, counts in drops.items()},
        "contamination_drops": drops["prompt"]["contamination"],
        "judge_agreement": _judge(logs),
        "tokens": {**{k: v.as_dict() for k, v in tokens.items()}, "total": total.as_dict()},
        "this_run": {
            "prompts": counters.prompts,
            "units": counters.units,
            "drops": dict(counters.drops),
            "failed_requests": counters.failed,
            "last_error": counters.last_error,
            "repaired": [{"file": name, "bytes_dropped": n} for name, n in sorted((repaired or {}).items())],
        },
    }


def write_outputs(
    job: DataGenerator, store: GenerationStore, backends: list[CachedBackend | None], counters: RunCounters
) -> Path:
    """Write the split files and the manifest; returns the manifest's path.

    ``counters.unfinished`` and ``counters.complete`` are settled here, from the logs on disk.
    """
    logs = Logs.read(store)
    counters.unfinished = unfinished_units(job, logs.state())
    counters.complete = counters.failed == 0 and counters.unfinished == 0
    manifest = build_manifest(job, logs, backends, counters, store.repaired)
    manifest["splits"] = write_splits(store.root, logs.units, job.split, job.seed)
    path = store.root / "manifest.json"
    write_text_atomic(path, dumps(manifest, str(path), indent=2, ensure_ascii=False))
    return path


def mark_incomplete(path: Path) -> None:
    """Set an existing manifest's ``complete`` to false (a run starts: the folder is changing).

    A manifest that cannot be read is removed: it is rebuilt at the end of the run, and until
    then nothing in the folder may say that the data is complete.
    """
    if not path.is_file():
        return
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        manifest = None
    if not isinstance(manifest, dict):
        path.unlink()
    elif manifest.get("complete") is not False:
        manifest["complete"] = False
        write_text_atomic(path, dumps(manifest, str(path), indent=2, ensure_ascii=False))
