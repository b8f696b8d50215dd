"""``python -m lit_mrrml healthbench --config FILE [--field=value ...]``: answer, grade, report.

Every field of ``HealthBenchEval`` is a config key (``--help`` documents them all; ``--judge.help
OpenAIChatBackend`` those of a backend). Exit status: 0 when every selected row was answered and
graded; 1 when rows were left out (answers or verdicts failed after their attempts: the report is
written without them; rerun the same command to fill them in) or a backend failed for good; 2 for
a bad config, rows file or reward model; 130 when interrupted (ctrl-C or SIGTERM), with the caches consistent.
"""

from __future__ import annotations

import sys

import yaml
from jsonargparse import ArgumentParser
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lit_mrrml.backends.base import BackendError
from lit_mrrml.errors import INPUT_ERROR, InputError
from lit_mrrml.healthbench.evaluate import HealthBenchEval, RunOutcome
from lit_mrrml.healthbench.report import correlation_text, grader_label, grouped, judge_label
from lit_mrrml.jobcommand import INTERRUPTED, build_job, error, job_parser, running, stderr_console

WIDTH = 200  # columns of the score table: each score line whole, judge and grader text included


def build_parser() -> ArgumentParser:
    return job_parser(
        HealthBenchEval,
        "python -m lit_mrrml healthbench",
        "Answer HealthBench rows with a policy, grade them with a judge, and report the scores.",
        "A HealthBench config (configs/eval/*.yaml).",
    )


def print_scores(console: Console, outcome: RunOutcome) -> None:
    """Overall, axis and theme scores, each with its bootstrap std, count, the judge and the grader text."""
    results = outcome.results
    scores, judge, text = results["scores"], escape(judge_label(results)), escape(grader_label(results))
    table = Table(title=escape(f"HealthBench: {results['policy']['id']}"), caption=f"report: {outcome.report_dir}")
    for column in ("score", "value", "± std", "n", "judge", "grader text"):
        table.add_column(column, justify="right" if column in ("value", "± std", "n") else "left")
    for title, keys in grouped(scores):
        if title == "Other tags":
            continue
        for key in keys:
            s = scores[key]
            table.add_row(escape(key), f"{s['score']:.4f}", f"{s['bootstrap_std']:.4f}", str(s["n"]), judge, text)
    check = results.get("reward_check")
    for key, entry in check["axes"].items() if check else []:
        rho = correlation_text(entry)
        table.add_row(escape(f"spearman {key} ~ {entry['dimension']}"), rho, "", str(entry["n"]), judge, text)
    console.print(table)


def healthbench_command(argv: list[str]) -> int:
    parser, console = build_parser(), stderr_console()
    built = build_job(parser, HealthBenchEval, argv, (ValueError, FileNotFoundError), console)
    if built is None:
        return 2
    job, config = built
    job.config = yaml.safe_load(parser.dump(config, skip_none=False))
    try:
        with running(console):
            outcome = job.run()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted:[/] what was answered and graded is cached; rerun the command to resume")
        return INTERRUPTED
    except InputError as err:  # found while running: a reward model that does not fit the matrix, say
        error(console, err)
        return INPUT_ERROR
    except (BackendError, FileNotFoundError, ValueError) as err:
        error(console, err)
        return 1
    print_scores(Console(emoji=False, highlight=False, width=WIDTH), outcome)
    if not outcome.complete:
        error(
            console,
            f"{outcome.unanswered} row(s) unanswered and {outcome.ungraded} row(s) with ungraded criteria were "
            "left out of the scores (listed in summary.md); rerun the same command to retry them",
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(healthbench_command(sys.argv[1:]))
