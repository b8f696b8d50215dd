"""The run's on-disk caches: answers, verdicts and reward scores, each an append-only keyed log.

Every record is appended (one whole line, AppendLog) the moment its reply arrives, so ctrl-C or a
kill leaves complete records only, and the next run takes every one of them instead of paying
again. A key is a tuple of record fields; when a key repeats, the last record wins.

- answers: (``policy``, ``prompt_id``): the policy's identity covers its weights and settings;
  a record whose ``prompt_hash`` no longer matches the row's prompt is asked again.
- verdicts: (``judge``, ``grader``, ``conversation``, ``criterion``): the judge model, the grader
  prompt and settings, the hash of the graded conversation, and the rubric item.
- rewards: (``reward_model``, ``conversation``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lit_mrrml.appendlog import AppendLog

ANSWER_KEY = ("policy", "prompt_id")
VERDICT_KEY = ("judge", "grader", "conversation", "criterion")
REWARD_KEY = ("reward_model", "conversation")


class KeyedLog:
    """An AppendLog of records, indexed in memory by a tuple of their fields."""

    def __init__(self, path: str | Path, key_fields: Sequence[str]) -> None:
        self.log, self.key_fields = AppendLog(path), tuple(key_fields)
        self._records: dict[tuple[Any, ...], dict[str, Any]] = {}
        for record in self.log:
            self._records[self.key(record)] = record

    def key(self, record: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(record[f] for f in self.key_fields)

    def get(self, *key: Any) -> dict[str, Any] | None:
        return self._records.get(tuple(key))

    def put(self, record: dict[str, Any]) -> None:
        """Append ``record`` to the file and index it."""
        self.log.append([record])
        self._records[self.key(record)] = record

    def close(self) -> None:
        self.log.close()


class RunStore:
    """The three caches of one output folder (``cache/answers|verdicts|rewards.jsonl``)."""

    def __init__(self, cache_dir: Path) -> None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.answers = KeyedLog(cache_dir / "answers.jsonl", ANSWER_KEY)
        self.verdicts = KeyedLog(cache_dir / "verdicts.jsonl", VERDICT_KEY)
        self.rewards = KeyedLog(cache_dir / "rewards.jsonl", REWARD_KEY)

    def close(self) -> None:
        for log in (self.answers, self.verdicts, self.rewards):
            log.close()
