"""The HealthBench progress bar: one line per stage (answers, verdicts, rewards) with ETA and rate."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from lit_mrrml.backends.base import ChatReply


class StageProgress:
    """A rich progress display with a task per stage; failures are counted next to each bar."""

    def __init__(self, enabled: bool = True, console: Console | None = None) -> None:
        self.bar = Progress(  # fits 80 columns
            TextColumn("{task.description:<8}"),
            BarColumn(bar_width=16),
            MofNCompleteColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[failed]} failed"),
            disable=not enabled,
            console=console,
        )
        self.tasks: dict[str, TaskID] = {}
        self.failed: dict[str, int] = {}

    def stage(self, name: str, total: int) -> None:
        """Start a stage's bar (only work still to do counts, so the ETA is about this run)."""
        self.tasks[name] = self.bar.add_task(name, total=total, failed=0)
        self.failed[name] = 0

    def advance(self, name: str, n: int = 1) -> None:
        self.bar.update(self.tasks[name], advance=n)

    def reply(self, name: str, reply: ChatReply) -> None:
        """Count one final reply of a stage, and its failure."""
        self.failed[name] += not reply.ok
        self.bar.update(self.tasks[name], advance=1, failed=self.failed[name])

    def note(self, text: str) -> None:
        """Print one line above the bars (shown even when the bars are disabled)."""
        self.bar.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def __enter__(self) -> StageProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()
