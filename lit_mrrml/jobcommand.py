"""What the job commands (``generate``, ``healthbench``) share: a class-driven parser, building the
job with its config errors reported, and running it with logging and SIGTERM handled like ctrl-C.

Exit status convention: 0 done; 1 a run that failed or left work undone (rerun to finish); 2 a bad
config; 130 interrupted, with everything finished saved.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

INTERRUPTED = 130


def job_parser(job: type, prog: str, description: str, config_help: str) -> ArgumentParser:
    """A parser of every field of ``job``'s constructor, with ``--config`` files (documented for --help).

    The backends that need no model (OpenAIChatBackend, CachedBackend) are imported here, so that
    their short names work (``--judge.help OpenAIChatBackend``); HFLocalBackend, which imports torch,
    is found by its import path (``lit_mrrml.backends.HFLocalBackend``) and then by its short name."""
    import lit_mrrml.backends.cache
    import lit_mrrml.backends.openai  # noqa: F401 (subclasses of ChatBackend: jsonargparse resolves short names)

    parser = ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", action=ActionConfigFile, help=config_help)
    parser.add_class_arguments(job, None, fail_untyped=True)
    return parser


def stderr_console() -> Console:
    return Console(stderr=True, emoji=False, highlight=False, soft_wrap=True)


def error(console: Console, err: BaseException | str) -> None:
    console.print(f"[red]error:[/] {escape(str(err))}")


def build_job(
    parser: ArgumentParser, job: type, argv: list[str], errors: tuple[type[Exception], ...], console: Console
) -> tuple[Any, Namespace] | None:
    """(the job, its parsed config), or None after printing the config error."""
    config = parser.parse_args(argv)
    try:
        init = parser.instantiate(config)
        return job(**{k: v for k, v in vars(init).items() if k != "config"}), config
    except errors as err:
        error(console, err)
        return None


@contextlib.contextmanager
def running(console: Console) -> Iterator[None]:
    """The package's log records on ``console``; SIGTERM raises KeyboardInterrupt (a scheduler's stop
    works like ctrl-C) until the block ends."""
    handler, package_log = RichHandler(console=console, show_path=False), logging.getLogger("lit_mrrml")
    package_log.addHandler(handler)
    package_log.setLevel(logging.INFO)
    sigterm = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, sigterm)
        package_log.removeHandler(handler)
