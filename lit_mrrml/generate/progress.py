"""The generation progress bar: units finished of planned, ETA, requests per second, drops, failures."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

Stats = Callable[[], tuple[float, int, int]]  # () -> (requests/s, drops, failures) of this run


class GenerationProgress:
    """A rich progress bar over unit keys; fields refresh twice a second while requests run."""

    def __init__(self, total: int, done: int, stats: Stats, enabled: bool = True) -> None:
        self.stats = stats
        self.bar = Progress(  # fits 80 columns
            BarColumn(bar_width=16),
            MofNCompleteColumn(),
            TextColumn("units eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[rps]:.0f} req/s, {task.fields[drops]} dropped, {task.fields[failed]} failed"),
            disable=not enabled,
        )
        self.task = self.bar.add_task("generate", total=total, completed=done, rps=0.0, drops=0, failed=0)

    def advance(self, n: int = 1) -> None:
        self.bar.update(self.task, advance=n)
        self.refresh()

    def refresh(self) -> None:
        rps, drops, failed = self.stats()
        self.bar.update(self.task, rps=rps, drops=drops, failed=failed)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[GenerationProgress]:
        """Show the bar, refreshing its fields in the background until the block ends."""

        async def tick() -> None:
            while True:
                self.refresh()
                await asyncio.sleep(0.5)

        with self.bar:
            ticker = asyncio.create_task(tick())
            try:
                yield self
            finally:
                ticker.cancel()
                self.refresh()
