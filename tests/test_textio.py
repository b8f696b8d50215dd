"""UTF-8 text files: a file in another encoding is named with its line and the byte offset."""

from __future__ import annotations

import pytest

from lit_mrrml.errors import InputError
from lit_mrrml.textio import NotUTF8Error, decode_utf8, read_lines, read_text


def test_decode_names_the_source_and_the_offset_in_the_file():
    with pytest.raises(NotUTF8Error) as info:
        decode_utf8(b"ab\xffc", "f.txt", offset=100, line=7)
    assert str(info.value) == (
        "f.txt:7: not UTF-8 text: byte 0xff at byte offset 102 cannot be decoded (save the file as UTF-8)"
    )
    assert isinstance(info.value, InputError)


def test_read_lines_counts_offsets_across_lines(tmp_path):
    path = tmp_path / "units.jsonl"
    path.write_bytes('{"a": "é"}\n\n'.encode() + b'{"b": "\xe9"}\n')  # line 3 is Latin-1
    lines = read_lines(path)
    assert next(lines) == (1, '{"a": "é"}\n')
    assert next(lines) == (2, "\n")
    with pytest.raises(NotUTF8Error, match=rf"^{path}:3: not UTF-8 text: byte 0xe9 at byte offset 20 "):
        next(lines)  # 12 bytes of line 1 (é is two), 1 of line 2, then 7 into line 3


def test_a_byte_order_mark_is_not_part_of_the_text(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfname: x\nversion: 1\n")
    assert read_text(path) == "name: x\nversion: 1\n"
    assert [text for _, text in read_lines(path)] == ["name: x\n", "version: 1\n"]


def test_utf16_is_not_utf8(tmp_path):
    path = tmp_path / "utf16.yaml"
    path.write_bytes("name: x\n".encode("utf-16"))
    with pytest.raises(NotUTF8Error, match=r"byte 0xff at byte offset 0 "):
        read_text(path)
