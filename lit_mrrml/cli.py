"""The command line: ``python -m lit_mrrml COMMAND ...`` (``--help`` lists the commands).

fit/validate/test/predict go through LightningCLI (``--config``, dotted overrides, ``--print_config``;
lit_mrrml.trainer_cli); ``matrix FILE`` validates a rubric matrix and prints its coverage; ``generate``
writes synthetic ranked units from it (lit_mrrml.generate); ``healthbench`` answers and grades
HealthBench rows (lit_mrrml.healthbench); ``convert`` reads preference data in other formats;
``export`` writes a reward model as a Hugging Face folder; ``serve`` answers reward requests over HTTP.

This module imports neither torch nor Lightning: each command imports what it needs when it runs, so
that ``matrix``, ``convert`` and ``--help`` start in well under a second.

Bad input (a matrix, units, config or checkpoint that must be fixed: an ``InputError``, or a missing
file) prints one message naming the file and line or the key path, and exits 2; ``--debug`` (or
``LIT_MRRML_DEBUG=1``) shows the traceback too.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lit_mrrml.errors import DEBUG_ENV, INPUT_ERROR, InputError
from lit_mrrml.textio import read_text

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
# command -> (where its entry point is, the line --help gives it); every entry takes the arguments after the command
COMMANDS: dict[str, tuple[str, str]] = {
    "fit": ("", "Train a reward model or a policy from a config (LightningCLI: --config, dotted overrides)."),
    "validate": ("", "Run the validation set through a trained model and write val_metrics.json."),
    "test": ("", "Run the test set through a trained model and write test_metrics.json."),
    "predict": ("", "Score ranked units with a trained reward model (per-dimension rewards and totals)."),
    "generate": ("lit_mrrml.generate.command:generate_command", "Write synthetic ranked units from a rubric matrix."),
    "healthbench": ("lit_mrrml.healthbench.command:healthbench_command", "Answer and grade HealthBench rows; report."),
    "matrix": ("lit_mrrml.cli:matrix_command", "Validate a rubric matrix file and print its coverage."),
    "convert": ("lit_mrrml.convert.command:convert_command", "Read TRL pairs, datasets or ranked lists; write units."),
    "export": ("lit_mrrml.export_command:export_command", "Write a reward model as a Hugging Face classifier folder."),
    "serve": ("lit_mrrml.serve.command:serve_command", "Serve per-dimension rewards over HTTP (OpenRLHF, verl)."),
}
# kept for scripts that read it: the commands, in --help order
SUBCOMMANDS = tuple(COMMANDS)


def __getattr__(name: str) -> Any:
    """``from lit_mrrml.cli import MRRMLCLI`` still works; it imports Lightning, on first use only."""
    if name == "MRRMLCLI":
        from lit_mrrml.trainer_cli import MRRMLCLI

        return MRRMLCLI
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def usage() -> str:
    """The top-level help: every command with its line."""
    width = max(len(name) for name in COMMANDS)
    lines = [
        "usage: python -m lit_mrrml COMMAND [ARGS ...]   (python -m lit_mrrml COMMAND --help for its options)",
        "",
        "commands:",
        *(f"  {name:<{width}}  {line}" for name, (_, line) in COMMANDS.items()),
        "",
        "--debug (or LIT_MRRML_DEBUG=1) shows the traceback of an input error.",
    ]
    return "\n".join(lines)


def matrix_command(argv: list[str]) -> int:
    """``python -m lit_mrrml matrix FILE``: validate a rubric matrix and print its coverage."""
    from jsonargparse import ArgumentParser

    from lit_mrrml.matrix import RubricMatrix
    from lit_mrrml.matrix.coverage import print_coverage

    parser = ArgumentParser(prog="python -m lit_mrrml matrix", description=matrix_command.__doc__)
    parser.add_argument("file", type=str, help="Rubric matrix YAML file.")
    args = parser.parse_args(argv)
    print_coverage(RubricMatrix.from_yaml(args.file))  # a MatrixError is an input error: main reports it
    return 0


def config_files(args: list[str]) -> list[str]:
    """The files given to ``--config`` (``--config FILE`` or ``--config=FILE``)."""
    found = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--config"]
    return found + [a.split("=", 1)[1] for a in args if a.startswith("--config=")]


def check_config_files(args: list[str]) -> None:
    """Every ``--config`` file must be UTF-8 text (jsonargparse would end in a bare UnicodeDecodeError)."""
    for path in config_files(args):
        if Path(path).is_file():
            read_text(path)


def entry_point(command: str) -> Callable[[list[str]], int]:
    """The function that runs ``command`` (imported now, not before)."""
    module, _, function = COMMANDS[command][0].partition(":")
    return getattr(importlib.import_module(module), function)


def dispatch(args: list[str], argv: list[str] | None) -> int:
    """Run the command ``args`` names; ``argv`` is what LightningCLI gets (None: the process's)."""
    command = args[0] if args else None
    if command is None or command in ("-h", "--help"):
        print(usage(), file=sys.stdout if command else sys.stderr)  # no command: an error, on stderr
        return 0 if command else INPUT_ERROR
    if command in LIGHTNING_COMMANDS:
        from lit_mrrml.trainer_cli import MRRMLCLI

        MRRMLCLI(args=argv)
        return 0
    if command not in COMMANDS:
        from lit_mrrml.matrix.suggest import did_you_mean

        raise InputError(f"unknown command {command!r}{did_you_mean(command, list(COMMANDS))}; run --help for the list")
    return entry_point(command)(args[1:])


def main(argv: list[str] | None = None) -> int:
    """Entry point; ``argv`` defaults to the process's command line."""
    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    if "--debug" in args:
        args = [a for a in args if a != "--debug"]
        if argv is None:
            sys.argv = [sys.argv[0], *args]  # LightningCLI reads the process's command line
        else:
            argv = args
    try:
        check_config_files(args)
        return dispatch(args, argv)
    except Exception as err:
        cause = input_error(err)
        if debug or cause is None:
            raise
        print(f"error: {cause}", file=sys.stderr)
        return INPUT_ERROR


def input_error(err: BaseException) -> BaseException | None:
    """The InputError or missing file behind ``err``, if any: jsonargparse wraps the errors of the
    classes it builds (a data module refusing its matrix) in a ValueError of its own."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, (InputError, FileNotFoundError)):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
