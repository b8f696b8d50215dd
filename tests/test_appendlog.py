"""AppendLog: whole lines only, a cut tail ignored by readers and repaired by writers."""

from __future__ import annotations

import json

import pytest

from lit_mrrml.appendlog import AppendLog, truncate_partial_tail, write_jsonl_atomic


def test_batches_append_as_complete_lines(tmp_path):
    log = AppendLog(tmp_path / "a.jsonl")
    assert log.append([{"n": 1}, {"n": 2}]) == 2 and log.append([]) == 0
    log.append([{"text": "ünïcode\nnewline"}])
    log.close()
    assert [r for r in log] == [{"n": 1}, {"n": 2}, {"text": "ünïcode\nnewline"}]
    assert tmp_path.joinpath("a.jsonl").read_text(encoding="utf-8").count("\n") == 3


def test_a_partial_last_line_is_invisible_then_truncated_on_the_next_append(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"n": 1}\n{"n": 2', encoding="utf-8")  # a write cut by a kill
    log = AppendLog(path)
    assert list(log) == [{"n": 1}]
    log.append([{"n": 3}])
    log.close()
    assert path.read_text() == '{"n": 1}\n{"n":3}\n'


def test_truncate_handles_files_without_any_newline_and_clean_files(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_bytes(b'{"n": 1' * 20000)  # longer than one read chunk, no newline at all
    assert truncate_partial_tail(path) == 7 * 20000 and path.read_bytes() == b""
    path.write_bytes(b'{"n": 1}\n')
    assert truncate_partial_tail(path) == 0 and path.read_bytes() == b'{"n": 1}\n'
    assert truncate_partial_tail(tmp_path / "missing.jsonl") == 0


def test_a_corrupt_complete_line_is_an_error_with_its_place(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"n": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"c.jsonl:2: corrupt record"):
        list(AppendLog(path))


def test_atomic_rewrite_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "out" / "split.jsonl"
    assert write_jsonl_atomic(path, [{"a": 1}, {"a": 2}]) == 2
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"a": 1}, {"a": 2}]
    assert sorted(p.name for p in path.parent.iterdir()) == ["split.jsonl"]
