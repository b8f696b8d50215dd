"""Record sources: every record of a data file as (number, location, record), whatever the file is.

- JSONL (any other name): one JSON value a non-blank line; number = the line (from 1), location
  ``file:line``; a line that is not JSON comes as a ``BadRecordError`` in place of its record.
- ``.json`` holding one JSON array (``[{...}, {...}]``): number = the item (from 0), ``file:row N``;
  a ``.json`` file that does not start with ``[`` is read as JSONL (``datasets``' ``to_json`` writes JSONL).
- ``.parquet``: number = the row (from 0, as ``dataset[N]``), ``file:row N``; read with pyarrow.
- a folder written by ``datasets.Dataset.save_to_disk``: ``folder:row N``; read with ``datasets``.

pyarrow and ``datasets`` are imported only for those files: they are the optional extra
``pip install lit_mrrml[datasets]``, and a missing one says so. No torch here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lit_mrrml.errors import InputError
from lit_mrrml.textio import read_lines, read_text

EXTRA = "pip install lit_mrrml[datasets]"
BATCH_ROWS = 1024  # parquet rows decoded at a time: memory stays flat on large files
Source = Iterator[tuple[int, str, Any]]  # (number, location, record or BadRecordError)


class BadRecordError(InputError):
    """A record that cannot be used; read_records adds the file and line (or row) to its message."""


def iter_records(path: Path) -> Source:
    """Every record of ``path`` (a JSONL, JSON-array or parquet file, or a ``datasets`` folder) in order.

    A record that cannot be decoded comes as a BadRecordError (the caller's ``on_bad_record``
    decides); a file that cannot be read at all raises InputError naming it.
    """
    if path.is_dir():
        return iter_dataset_folder(path)
    if path.suffix == ".parquet":
        return iter_parquet(path)
    if path.suffix == ".json" and _starts_with_array(path):
        return iter_json_array(path)
    return iter_jsonl(path)


def iter_jsonl(path: Path) -> Source:
    """The decoded record (or the decoding error) of each non-blank line; a line that is not UTF-8
    raises NotUTF8Error (the whole file is in another encoding, not one bad record)."""
    for number, line in read_lines(path):
        if not line.strip():
            continue
        try:
            yield number, f"{path}:{number}", json.loads(line)
        except json.JSONDecodeError as err:
            yield number, f"{path}:{number}", BadRecordError(f"invalid JSON: {err.msg} at column {err.colno}")


def _starts_with_array(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"[")


def iter_json_array(path: Path) -> Source:
    """The items of a file holding one JSON array; invalid JSON raises InputError at its line."""
    try:
        items = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}:{err.lineno}: invalid JSON: {err.msg} at column {err.colno}") from None
    if not isinstance(items, list):
        raise InputError(f"{path}: a .json data file must hold one JSON array of records (or be JSONL)")
    for row, item in enumerate(items):
        yield row, f"{path}:row {row}", item


def iter_parquet(path: Path) -> Source:
    """The rows of a parquet file as dicts (list columns as lists, struct columns as dicts)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"{path}: reading parquet files needs pyarrow: {EXTRA}") from None
    try:
        table = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises ArrowInvalid (a ValueError) or OSError for a damaged file
        raise InputError(f"{path}: not a readable parquet file: {err}") from None
    row = 0
    for batch in table.iter_batches(batch_size=BATCH_ROWS):
        for record in batch.to_pylist():
            yield row, f"{path}:row {row}", record
            row += 1


def iter_dataset_folder(path: Path) -> Source:
    """The rows of a ``datasets.Dataset.save_to_disk`` folder; a DatasetDict folder names its splits."""
    if (path / "dataset_dict.json").is_file():
        splits = sorted(p.name for p in path.iterdir() if (p / "state.json").is_file())
        example = path / (splits[0] if splits else "train")
        raise InputError(
            f"{path}: a DatasetDict folder (splits: {', '.join(splits) or 'none'}): give one split's folder, "
            f"such as {example}"
        )
    if not (path / "state.json").is_file():
        raise InputError(
            f"{path}: a folder must be one written by datasets' save_to_disk (it has no state.json); "
            "give a .jsonl, .json or .parquet file, or such a folder"
        )
    try:
        import datasets
    except ImportError:
        raise InputError(f"{path}: reading a datasets folder needs the datasets package: {EXTRA}") from None
    dataset = datasets.load_from_disk(str(path))
    for row, record in enumerate(dataset):
        yield row, f"{path}:row {row}", record


def count_records(path: Path) -> int | None:
    """How many records ``path`` holds when the file says so cheaply (parquet, datasets folder), else None."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        if path.is_dir() and (path / "state.json").is_file():
            import datasets

            return len(datasets.load_from_disk(str(path)))
    except Exception:  # the count is for a progress bar only: reading reports the real error
        return None
    return None
