"""The output folder of a generation run, and what a rerun resumes from.

- ``prompts.jsonl``: accepted prompts, one per slot (``<dimension>/<scenario>/<discipline>/<n>``);
- ``units.jsonl``: kept ranked units (the reward model's format, plus ``meta``);
- ``drops.jsonl``: every dropped prompt attempt and unit, with its stage and reason;
- ``cache/``: every reply of the generator and the judge (``CachedBackend``);
- ``run.json``: the settings that fix the data; a rerun with other settings is refused;
- ``train/val/test.jsonl`` and ``manifest.json``: rewritten whole at the end of every run.

The three logs are ``AppendLog``s written once a batch: a kill loses only the requests in flight,
and a rerun skips every slot that has its prompt and every (slot, dimension) unit key that was
kept or dropped.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lit_mrrml.appendlog import AppendLog, write_text_atomic

LOGS = ("prompts", "units", "drops")
REWRITTEN = ("run.json", "manifest.json", "config.yaml", "train.jsonl", "val.jsonl", "test.jsonl")


class ConfigMismatchError(ValueError):
    """The output folder holds a run made with settings that change the data."""


@dataclass
class ResumeState:
    """What earlier runs into the same folder finished."""

    prompts: dict[str, dict[str, Any]] = field(default_factory=dict)  # slot key -> accepted prompt record
    attempts: Counter[str] = field(default_factory=Counter)  # slot key -> prompt attempts dropped
    done: set[str] = field(default_factory=set)  # unit keys kept or dropped


class GenerationStore:
    """The files of one output folder."""

    def __init__(self, root: str | Path, fsync: bool = True) -> None:
        self.root = Path(root)
        self.prompts, self.units, self.drops = (AppendLog(self.root / f"{name}.jsonl", fsync) for name in LOGS)
        self.cache_dir = self.root / "cache"

    def prepare(self, fingerprint: dict[str, Any], overwrite: bool = False) -> bool:
        """Claim the folder for a run with this fingerprint; returns whether earlier work is resumed."""
        run = self.root / "run.json"
        if overwrite:
            self.clear()
        if run.is_file():
            earlier = json.loads(run.read_text(encoding="utf-8"))["fingerprint"]
            changed = sorted(k for k in {*earlier, *fingerprint} if earlier.get(k) != fingerprint.get(k))
            if changed:
                raise ConfigMismatchError(
                    f"{self.root} holds a run made with other settings ({', '.join(changed)} differ): "
                    "use another output_dir, or set overwrite: true to start again from nothing"
                )
            return True
        self.root.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run, json.dumps({"fingerprint": fingerprint}, indent=2, sort_keys=True))
        return False

    def clear(self) -> None:
        """Remove the files this store writes (nothing else in the folder)."""
        for path in [*(log.path for log in self.logs), *(self.root / name for name in REWRITTEN)]:
            path.unlink(missing_ok=True)
        if self.cache_dir.is_dir():
            for path in self.cache_dir.glob("*.jsonl"):
                path.unlink()

    @property
    def logs(self) -> tuple[AppendLog, AppendLog, AppendLog]:
        return self.prompts, self.units, self.drops

    def state(self) -> ResumeState:
        """Read what is finished from the logs."""
        state = ResumeState()
        for record in self.prompts:
            state.prompts.setdefault(record["slot"], record)
        for record in self.drops:
            if record["stage"] == "prompt":
                state.attempts[record["slot"]] += 1
            else:
                state.done.add(record["key"])
        state.done.update(record["meta"]["key"] for record in self.units)
        return state

    def write(
        self,
        prompts: list[dict[str, Any]] | None = None,
        drops: list[dict[str, Any]] | None = None,
        units: list[dict[str, Any]] | None = None,
    ) -> None:
        """Append one batch: prompts first, so that a unit never refers to a prompt not on disk."""
        self.prompts.append(prompts or [])
        self.drops.append(drops or [])
        self.units.append(units or [])

    def close(self) -> None:
        for log in self.logs:
            log.close()
