"""``python -m lit_mrrml convert``: preference data in, checked ranked units (or TRL pairs) out.

    python -m lit_mrrml convert --matrix configs/matrix/medical_dsd.yaml --input pairs.jsonl \\
        --output units.jsonl --dimension safety --scenario emergency_referrals --discipline cardiology

Every input record is recognised on its own (lit_mrrml.data.formats: native units, TRL pairs with
or without a prompt, ``responses`` best first, ``completions`` with ``ranks`` or ``scores``) from
JSONL, a ``.json`` array, ``.parquet`` or a ``datasets`` folder, given the ids it lacks from
``--dimension/--scenario/--discipline``, and checked against the matrix. ``--to units`` writes native
ranked units; ``--to trl`` writes each unit's K(K-1)/2 TRL preference pairs. The output is written
whole or not at all. Exit status: 0 done, 2 bad input (one ``file:line: reason`` line, via the CLI).

No torch, transformers or Lightning here (tests/test_convert.py checks it in a fresh process).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lit_mrrml.convert.output import AtomicJSONL
from lit_mrrml.data.formats import PromptFormat, UnitDefaults, unit_pairs
from lit_mrrml.data.sources import count_records
from lit_mrrml.data.units import OnBadRecord, iter_parsed, unit_parser
from lit_mrrml.matrix import RubricMatrix

PROG = "python -m lit_mrrml convert"
SKIP_HINT = "add --on-bad-record skip to skip such records"
SHOWN_SKIPS = 20  # skipped records listed one a line; the rest are counted
Target = Literal["units", "trl"]


@dataclass
class ConvertResult:
    """What one conversion read and wrote."""

    output: Path
    units: int = 0  # valid units read (each is one output line with --to units)
    lines: int = 0  # lines written: units, or TRL pairs
    skipped: list[str] = field(default_factory=list)  # ``file:line: reason`` of each record left out

    @property
    def records(self) -> int:
        """Input records read: the units and the skipped ones."""
        return self.units + len(self.skipped)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Read preference data (TRL prompt/chosen/rejected, an implicit prompt, ranked or scored "
        "lists, native units) from JSONL, .json, .parquet or datasets folders; check it against the rubric "
        "matrix; write ranked units or TRL pairs as JSONL.",
    )
    parser.add_argument("--matrix", required=True, help="Rubric matrix YAML every unit is checked against.")
    parser.add_argument(
        "--input", required=True, nargs="+", metavar="FILE", help="Input files or datasets folders, read in order."
    )
    parser.add_argument("--output", required=True, metavar="OUT.jsonl", help="JSONL file to write (replaced whole).")
    parser.add_argument(
        "--to",
        choices=("units", "trl"),
        default="units",
        help="units: native ranked units, best first (default); trl: every unit's K(K-1)/2 TRL preference "
        "pairs, the better-ranked response as chosen, with the unit's id, dimension, scenario and discipline.",
    )
    for key in ("dimension", "scenario", "discipline"):
        parser.add_argument(f"--{key}", help=f"Matrix {key} id of every record that has no '{key}'.")
    parser.add_argument(
        "--prompt-format",
        choices=("conversational", "string"),
        default="conversational",
        help="With --to trl: conversational (prompt, chosen and rejected as messages; default) or string "
        "(plain strings; every prompt must be one user turn).",
    )
    parser.add_argument(
        "--on-bad-record",
        choices=("fail", "skip"),
        default="fail",
        help="fail: stop at the first bad record (default); skip: leave bad records out and list them.",
    )
    parser.add_argument("--no-progress", action="store_true", help="No progress bar (it shows on a terminal only).")
    return parser


def convert(
    inputs: list[Path],
    output: Path,
    matrix: RubricMatrix,
    defaults: UnitDefaults | None = None,
    to: Target = "units",
    prompt_format: PromptFormat = "conversational",
    on_bad_record: OnBadRecord = "fail",
    console: Console | None = None,
) -> ConvertResult:
    """Convert ``inputs`` into ``output`` (written whole or not at all); raises BadRecordError on the
    first bad record under ``on_bad_record`` "fail". A progress bar shows on ``console`` if given."""
    result = ConvertResult(output)
    parse = unit_parser(matrix, set(), defaults)

    def rows(path: Path, number: int, record: Any) -> list[dict[str, Any]]:
        unit = parse(path, number, record)
        return [unit.to_record()] if to == "units" else unit_pairs(unit, prompt_format)

    with AtomicJSONL(output) as out, _progress(console, inputs) as advance:
        for lines in iter_parsed(inputs, rows, on_bad_record, "input", result.skipped, SKIP_HINT):
            result.units += 1
            for line in lines:
                out.write(line)
            advance(result.records)
    result.lines = out.count
    return result


@contextmanager
def _progress(console: Console | None, inputs: list[Path]) -> Iterator[Any]:
    """A function that sets the records done, drawing a bar on ``console`` (no-op without one)."""
    if console is None or not console.is_terminal:
        yield lambda done: None
        return
    counts = [count_records(path) for path in inputs]
    total = None if None in counts else sum(c for c in counts if c is not None)
    columns = (TextColumn("records"), BarColumn(bar_width=24), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("convert", total=total)
        yield lambda done: bar.update(task, completed=done)


def summary(result: ConvertResult, to: Target) -> str:
    """The line printed at the end: records in, units (and pairs) out, skipped."""
    out = f"{result.units} units" if to == "units" else f"{result.lines} TRL pairs (from {result.units} units)"
    return f"convert: {result.records} records in, {out} out to {result.output}, {len(result.skipped)} skipped"


def convert_command(argv: list[str]) -> int:
    """``python -m lit_mrrml convert ...`` (``--help``); bad input raises InputError for the CLI to report."""
    args = build_parser().parse_args(argv)
    matrix = RubricMatrix.from_yaml(args.matrix)
    defaults = UnitDefaults(args.dimension, args.scenario, args.discipline)
    defaults.check(matrix, "--{key}")
    console = Console(stderr=True, emoji=False, highlight=False, soft_wrap=True)
    inputs, output = [Path(p) for p in args.input], Path(args.output)
    result = convert(
        inputs,
        output,
        matrix,
        defaults,
        args.to,
        args.prompt_format,
        args.on_bad_record,
        None if args.no_progress else console,
    )
    for message in result.skipped[:SHOWN_SKIPS]:
        console.print(f"[yellow]skipped[/] {escape(message)}")
    if len(result.skipped) > SHOWN_SKIPS:
        console.print(f"[yellow]skipped[/] {len(result.skipped) - SHOWN_SKIPS} more bad records")
    print(summary(result, args.to))
    return 0


if __name__ == "__main__":
    sys.exit(convert_command(sys.argv[1:]))
