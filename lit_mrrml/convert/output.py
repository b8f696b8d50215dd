"""A JSONL file written whole or not at all: lines go to a temporary file beside it, renamed over
the target only when everything is written (a crash, an error or ctrl-C leaves no half file)."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any

from lit_mrrml.jsonio import dumps


class AtomicJSONL:
    """``with AtomicJSONL(path) as out: out.write(record)``: ``path`` appears (or is replaced) on a
    clean exit, fsynced; on an exception the temporary file is removed and ``path`` is untouched."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.count = 0  # records written so far

    def __enter__(self) -> AtomicJSONL:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = self.tmp.open("w", encoding="utf-8")
        return self

    def write(self, record: dict[str, Any]) -> None:
        """One record as one line of standard JSON (UTF-8, not ASCII-escaped)."""
        self.handle.write(dumps(record, str(self.path), ensure_ascii=False) + "\n")
        self.count += 1

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            if kind is None:
                self.handle.flush()
                os.fsync(self.handle.fileno())
        finally:
            self.handle.close()
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
