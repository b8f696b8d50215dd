"""Reading text files as UTF-8, with the file and the byte offset named when they are not.

A matrix, a units file, a config, a HealthBench file or a template saved in another encoding
(Latin-1, UTF-16) would otherwise end in a ``UnicodeDecodeError`` traceback that names neither
the file nor where in it the bad byte is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from lit_mrrml.errors import InputError


class NotUTF8Error(InputError):
    """A text file that is not valid UTF-8."""


def decode_utf8(data: bytes, source: str | Path, offset: int = 0, line: int | None = None) -> str:
    """``data`` decoded as UTF-8; raises NotUTF8Error naming ``source`` (its line) and the byte offset
    in the file (``offset`` is where ``data`` starts in it)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        where = f"{source}:{line}" if line is not None else str(source)
        position = offset + err.start
        raise NotUTF8Error(
            f"{where}: not UTF-8 text: byte 0x{data[err.start]:02x} at byte offset {position} cannot be decoded "
            "(save the file as UTF-8)"
        ) from None


def read_text(path: str | Path) -> str:
    """The whole file as text (UTF-8; a leading byte-order mark is dropped)."""
    return decode_utf8(Path(path).read_bytes(), path).removeprefix("\ufeff")


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line of a UTF-8 file, newline included; a bad byte raises
    NotUTF8Error with the line and the byte offset in the file."""
    offset = 0
    with Path(path).open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            text = decode_utf8(raw, path, offset, number)
            yield number, text.removeprefix("\ufeff") if number == 1 else text
            offset += len(raw)
