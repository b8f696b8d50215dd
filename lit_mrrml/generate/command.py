"""``python -m lit_mrrml generate --config FILE [--field=value ...]``: synthetic data from the matrix.

Every field of ``DataGenerator`` is a config key (``--help`` documents them all; ``--generator.help
OpenAIChatBackend`` those of a backend). Exit status: 0 when everything planned is finished; 1 when
requests failed or the run was aborted (what is finished is saved: rerun the same command); 2 for
a bad config; 130 when interrupted (ctrl-C or SIGTERM).
"""

from __future__ import annotations

import json
import sys

from jsonargparse import ArgumentParser
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lit_mrrml.backends.base import BackendError
from lit_mrrml.generate.pipeline import DataGenerator
from lit_mrrml.generate.run import GenerationAborted, RunCounters
from lit_mrrml.generate.store import ConfigMismatchError
from lit_mrrml.generate.templates import TemplateError
from lit_mrrml.jobcommand import INTERRUPTED, build_job, error, job_parser, running, stderr_console
from lit_mrrml.matrix import MatrixError


def build_parser() -> ArgumentParser:
    return job_parser(
        DataGenerator,
        "python -m lit_mrrml generate",
        "Synthetic ranked units from the rubric matrix (prompts, graded answers, a blind judge).",
        "A generation config (configs/generate/*.yaml).",
    )


def print_summary(console: Console, counters: RunCounters) -> None:
    """A table of what the folder holds now, from its manifest."""
    assert counters.manifest is not None
    manifest = json.loads(counters.manifest.read_text(encoding="utf-8"))
    table = Table(title=escape(f"generated data: {counters.manifest.parent}"), show_header=False)
    counts, agreement = manifest["counts"], manifest["judge_agreement"]
    table.add_row("generator / judge", escape(f"{manifest['generator']} / {manifest['judge'] or '-'}"))
    table.add_row("units kept / planned", f"{counts['units']} / {counts['planned_units']}")
    table.add_row("prompts kept", str(counts["prompts"]))
    for stage, reasons in manifest["drops"].items():
        for reason, n in reasons.items():
            table.add_row(f"dropped {stage}s: {reason}", str(n))
    if agreement is not None and agreement["agreement_rate"] is not None:
        table.add_row(
            "judge agreement", f"{agreement['agreement_rate']:.3f} ({agreement['agreed']}/{agreement['judged']})"
        )
    tokens = manifest["tokens"]["total"]
    table.add_row("tokens (prompt / completion)", f"{tokens['prompt']} / {tokens['completion']}")
    table.add_row("splits", ", ".join(f"{k} {v}" for k, v in manifest["splits"].items()))
    table.add_row("this run", f"{counters.units} units, {sum(counters.drops.values())} drops, {counters.failed} failed")
    console.print(table)


def generate_command(argv: list[str]) -> int:
    parser, console = build_parser(), stderr_console()
    built = build_job(parser, DataGenerator, argv, (ValueError, FileNotFoundError, MatrixError, TemplateError), console)
    if built is None:
        return 2
    job, config = built
    job.config_yaml = parser.dump(config, skip_none=False)
    try:
        with running(console):
            counters = job.run()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted:[/] finished work is saved; rerun the same command to resume")
        return INTERRUPTED
    except (GenerationAborted, BackendError, ConfigMismatchError) as err:
        error(console, err)
        return 1
    print_summary(Console(emoji=False, highlight=False), counters)
    if counters.failed:
        console.print(
            f"[red]error:[/] {counters.failed} request(s) failed after every attempt "
            f"(last: {escape(str(counters.last_error))}); "
            "the rest is saved: rerun the same command to retry them"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(generate_command(sys.argv[1:]))
