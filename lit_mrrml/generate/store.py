"""The output folder of a generation run, and what a rerun resumes from.

- ``prompts.jsonl``: accepted prompts, one per slot (``<dimension>/<scenario>/<discipline>/<n>``);
- ``units.jsonl``: kept ranked units (the reward model's format, plus ``meta``);
- ``drops.jsonl``: every dropped prompt attempt and unit, with its stage and reason;
- ``cache/``: every reply of the generator and the judge (``CachedBackend``);
- ``run.json``: the settings that fix the data; a rerun with other settings is refused;
- ``train/val/test.jsonl`` and ``manifest.json``: rewritten whole at the end of every run.

The three logs are ``AppendLog``s written once a batch: a kill loses only the requests in flight,
and a rerun skips every slot that has its prompt and every (slot, dimension) unit key that was
kept or dropped. A kill during a write can leave a log's last line cut short: ``prepare`` cuts it
(``AppendLog.repair_tail``, which warns naming the file) and keeps the bytes dropped per file in
``repaired`` for the manifest; the records lost with it are not finished, so the run does them again.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lit_mrrml.appendlog import AppendLog, write_text_atomic
from lit_mrrml.errors import InputError
from lit_mrrml.jsonio import dumps

LOGS = ("prompts", "units", "drops")
REWRITTEN = ("run.json", "manifest.json", "config.yaml", "train.jsonl", "val.jsonl", "test.jsonl")


class ConfigMismatchError(InputError):
    """The output folder holds a run made with settings that change the data."""


@dataclass
class ResumeState:
    """What earlier runs into the same folder finished."""

    prompts: dict[str, dict[str, Any]] = field(default_factory=dict)  # slot key -> accepted prompt record
    attempts: Counter[str] = field(default_factory=Counter)  # slot key -> prompt attempts dropped
    done: set[str] = field(default_factory=set)  # unit keys kept or dropped

    @classmethod
    def of(
        cls, prompts: Iterable[dict[str, Any]], units: Iterable[dict[str, Any]], drops: Iterable[dict[str, Any]]
    ) -> ResumeState:
        """What the records of the three logs finished (the first prompt of a slot counts)."""
        state = cls()
        for record in prompts:
            state.prompts.setdefault(record["slot"], record)
        for record in drops:
            if record["stage"] == "prompt":
                state.attempts[record["slot"]] += 1
            else:
                state.done.add(record["key"])
        state.done.update(record["meta"]["key"] for record in units)
        return state


class GenerationStore:
    """The files of one output folder."""

    def __init__(self, root: str | Path, fsync: bool = True) -> None:
        self.root = Path(root)
        self.prompts, self.units, self.drops = (AppendLog(self.root / f"{name}.jsonl", fsync) for name in LOGS)
        self.cache_dir = self.root / "cache"
        self.repaired: dict[str, int] = {}  # log file name -> bytes of a cut last line that prepare removed

    def prepare(self, fingerprint: dict[str, Any], overwrite: bool = False) -> bool:
        """Claim the folder for a run with this fingerprint; returns whether earlier work is resumed."""
        run = self.root / "run.json"
        if overwrite:
            self.clear()
        resumed = run.is_file()
        if resumed:
            earlier = json.loads(run.read_text(encoding="utf-8"))["fingerprint"]
            changed = sorted(k for k in {*earlier, *fingerprint} if earlier.get(k) != fingerprint.get(k))
            if changed:  # refused before anything in the folder is touched
                raise ConfigMismatchError(
                    f"{self.root} holds a run made with other settings ({', '.join(changed)} differ): "
                    "use another output_dir, or set overwrite: true to start again from nothing"
                )
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            write_text_atomic(run, dumps({"fingerprint": fingerprint}, str(run), indent=2, sort_keys=True))
        self.repair()
        return resumed

    def repair(self) -> dict[str, int]:
        """Cut the logs' unfinished last lines (kills during a write); file name -> bytes dropped, kept in ``repaired``.

        ``prepare`` calls it before anything reads the logs, so that the manifest can say what the
        run found cut; the lost records' keys are unfinished, and the run makes them again.
        """
        for log in self.logs:
            dropped = log.repair_tail()
            if dropped:
                self.repaired[log.path.name] = self.repaired.get(log.path.name, 0) + dropped
        return dict(self.repaired)

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
        return ResumeState.of(self.prompts, self.units, self.drops)

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
