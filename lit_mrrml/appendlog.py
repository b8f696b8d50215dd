"""AppendLog: an append-only JSONL file that survives being killed at any moment.

Each ``append`` writes its whole batch of lines with one ``write`` on an ``O_APPEND`` descriptor,
so lines from one process never interleave and a kill can cut at most the batch being written.
A line counts only once its newline is on disk: readers ignore a last line without one (a write
in progress or cut short), and opening the log for appending truncates such a tail first
(``repair_tail``, which a writer may call earlier to learn what was cut, and which logs a warning
naming the file). With ``fsync`` each batch is also forced to the disk, for power loss as well as
kills.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from lit_mrrml.jsonio import dumps

log = logging.getLogger(__name__)


class AppendLog:
    """An append-only JSONL file of records (JSON objects), one a line."""

    def __init__(self, path: str | Path, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._fd: int | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The complete records in the file, in order (none when it does not exist)."""
        if not self.path.is_file():
            return
        with self.path.open("rb") as handle:
            for number, line in enumerate(handle, 1):
                if not line.endswith(b"\n"):
                    return  # a write in progress or cut short: not a record yet
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{self.path}:{number}: corrupt record ({err.msg}); the log was edited") from None
                if not isinstance(record, dict):
                    raise ValueError(f"{self.path}:{number}: a record must be a JSON object")
                yield record

    def repair_tail(self) -> int:
        """Cut an unfinished last line (a kill during a write) now; returns the bytes cut (0: the file ends cleanly).

        Opening the log for appending does it anyway; a writer that must report what it took over
        calls it first (``GenerationStore.prepare``). The warning names the file.
        """
        dropped = truncate_partial_tail(self.path)
        if dropped:
            log.warning("%s: dropped %d bytes of an unfinished last line (a killed write)", self.path, dropped)
        return dropped

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.repair_tail()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self._fd

    def append(self, records: Iterable[dict[str, Any]]) -> int:
        """Write records as complete lines in one write; returns how many."""
        lines = [dumps(r, str(self.path), ensure_ascii=False, separators=(",", ":")) + "\n" for r in records]
        if not lines:
            return 0
        data, fd = "".join(lines).encode("utf-8"), self._open()
        while data:
            written = os.write(fd, data)
            data = data[written:]
        if self.fsync:
            os.fsync(fd)
        return len(lines)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> AppendLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def truncate_partial_tail(path: Path) -> int:
    """Cut a last line that has no newline; returns the bytes removed (0 when the file ends cleanly)."""
    if not path.is_file():
        return 0
    with path.open("r+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        end = size
        while end > 0:
            step = min(65536, end)
            handle.seek(end - step)
            chunk = handle.read(step)
            newline = chunk.rfind(b"\n")
            if newline != -1:
                end = end - step + newline + 1
                break
            end -= step
        if end < size:
            handle.truncate(end)
        return size - end


def write_text_atomic(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (a temporary file, fsynced, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_jsonl_atomic(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Replace ``path`` with these records, one a line, in one step; returns how many."""
    lines = [dumps(record, str(path), ensure_ascii=False) + "\n" for record in records]
    write_text_atomic(path, "".join(lines))
    return len(lines)
