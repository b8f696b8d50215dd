"""Standard JSON out: NaN and infinities are errors that name their key path, never written."""

from __future__ import annotations

import json
import math

import pytest

from lit_mrrml.appendlog import AppendLog, write_jsonl_atomic
from lit_mrrml.jsonio import NonFiniteJSONError, dumps, non_finite_paths


def test_dumps_writes_standard_json():
    assert dumps({"a": [1, 2.5, None]}, indent=None) == '{"a": [1, 2.5, null]}'


def test_a_nan_is_named_by_its_path():
    with pytest.raises(NonFiniteJSONError) as info:
        dumps({"scores": {"overall": {"score": float("nan")}}}, "results.json")
    assert str(info.value) == "results.json: nan at scores.overall.score is not a finite number; not written"


def test_every_non_finite_value_is_found():
    found = list(non_finite_paths({"a": [1.0, math.inf], "b": {"c": -math.inf}, "d": "nan"}))
    assert found == [("a[1]", math.inf), ("b.c", -math.inf)]


def test_append_log_refuses_a_nan_and_keeps_the_file_as_it_was(tmp_path):
    log = AppendLog(tmp_path / "cache.jsonl")
    log.append([{"rewards": [0.5]}])
    with pytest.raises(NonFiniteJSONError, match=r"cache\.jsonl: nan at rewards\[1\]"):
        log.append([{"rewards": [0.1, float("nan")]}])
    log.close()
    assert [json.loads(line) for line in (tmp_path / "cache.jsonl").read_text().splitlines()] == [{"rewards": [0.5]}]


def test_atomic_jsonl_refuses_before_replacing(tmp_path):
    path = write_jsonl_atomic(tmp_path / "t.jsonl", [{"x": 1}]) and tmp_path / "t.jsonl"
    with pytest.raises(NonFiniteJSONError):
        write_jsonl_atomic(path, [{"x": float("inf")}])
    assert path.read_text() == '{"x": 1}\n'
