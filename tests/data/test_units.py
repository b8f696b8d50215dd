"""Ranked units: parsing one record, and reading JSONL files with `file:line: reason` errors."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from lit_mrrml.data.units import BadRecordError, RankedUnit, parse_unit, read_units
from lit_mrrml.matrix import RubricMatrix
from tests.conftest import make_unit, write_jsonl


def test_valid_unit_parses(matrix: RubricMatrix) -> None:
    unit = parse_unit(make_unit(7, k=3), matrix)
    assert isinstance(unit, RankedUnit)
    assert unit.id == "u7"
    assert (unit.dimension, unit.scenario, unit.discipline) == ("safety", "emergency_referrals", "cardiology")
    assert unit.prompt == (("user", "Question number 7 about chest pain?"),)
    assert len(unit.responses) == 3
    assert unit.responses[0].startswith("Answer 7 of quality 0")


def test_unit_is_frozen(matrix: RubricMatrix) -> None:
    unit = parse_unit(make_unit(1), matrix)
    with pytest.raises(dataclasses.FrozenInstanceError):
        unit.id = "other"  # type: ignore[misc]


def test_messages_are_chat_dicts(matrix: RubricMatrix) -> None:
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Is this urgent?"}]
    unit = parse_unit(make_unit(1, prompt=None) | {"prompt": prompt}, matrix)
    assert unit.messages == prompt


def test_chosen_rejected_pair_is_a_unit_with_k2(matrix: RubricMatrix) -> None:
    record = make_unit(1)
    del record["responses"]
    record |= {"chosen": "Call an ambulance now.", "rejected": "Wait and see."}
    unit = parse_unit(record, matrix)
    assert unit.responses == ("Call an ambulance now.", "Wait and see.")


def test_string_prompt_becomes_one_user_message(matrix: RubricMatrix) -> None:
    unit = parse_unit(make_unit(1) | {"prompt": "My chest hurts."}, matrix)
    assert unit.prompt == (("user", "My chest hurts."),)
    assert unit.messages == [{"role": "user", "content": "My chest hurts."}]


def test_equal_prompts_share_a_prompt_key(matrix: RubricMatrix) -> None:
    a = parse_unit(make_unit(1, prompt="Same?"), matrix)
    b = parse_unit(make_unit(2, prompt="Same?", dimension="accuracy"), matrix)
    c = parse_unit(make_unit(3, prompt="Different?"), matrix)
    assert a.prompt_key == b.prompt_key
    assert a.prompt_key != c.prompt_key


def _without(record: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != key}


BAD_RECORDS = {
    "unknown_dimension": (make_unit(1) | {"dimension": "safty"}, "unknown dimension 'safty'; did you mean 'safety'?"),
    "unknown_scenario": (
        make_unit(1) | {"scenario": "hedgin"},
        "unknown scenario 'hedgin'; did you mean 'hedging'?",
    ),
    "unknown_discipline": (
        make_unit(1) | {"discipline": "cardiologie"},
        "unknown discipline 'cardiologie'; did you mean 'cardiology'?",
    ),
    "empty_response": (make_unit(1) | {"responses": ["Call now.", "  "]}, "response 1 is empty or not a string"),
    "non_string_response": (make_unit(1) | {"responses": ["Call now.", 3]}, "response 1 is empty or not a string"),
    "k_below_2": (make_unit(1) | {"responses": ["Only one."]}, "a unit needs K >= 2 responses to rank, got 1"),
    "identical_responses": (make_unit(1) | {"responses": ["Same.", "Same."]}, "two responses are identical"),
    "responses_not_a_list": (make_unit(1) | {"responses": "Call now."}, "'responses' must be a list"),
    "missing_responses": (_without(make_unit(1), "responses"), "missing 'responses'"),
    "missing_id": (_without(make_unit(1), "id"), "'id' must be a non-empty string"),
    "prompt_ends_with_assistant": (
        make_unit(1) | {"prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
        "the prompt must end with a user turn",
    ),
    "bad_role": (
        make_unit(1) | {"prompt": [{"role": "doctor", "content": "Hi"}]},
        "prompt[0] must be an object with a role in",
    ),
    "empty_prompt_content": (
        make_unit(1) | {"prompt": [{"role": "user", "content": ""}]},
        "prompt[0].content is empty or not a string",
    ),
    "empty_prompt": (make_unit(1) | {"prompt": []}, "'prompt' must be a non-empty list of messages"),
    "not_an_object": (["a", "list"], "a unit must be a JSON object, got list"),
}


@pytest.mark.parametrize(("record", "reason"), BAD_RECORDS.values(), ids=BAD_RECORDS.keys())
def test_bad_record_is_rejected_with_its_reason(matrix: RubricMatrix, record: Any, reason: str) -> None:
    with pytest.raises(BadRecordError, match=re.escape(reason)):
        parse_unit(record, matrix)


# ---- reading files ------------------------------------------------------------------------------


def test_read_units_reads_every_line(tmp_path: Path, matrix: RubricMatrix) -> None:
    path = write_jsonl(tmp_path / "u.jsonl", [make_unit(i) for i in range(4)])
    units, skipped = read_units([path], matrix)
    assert [u.id for u in units] == ["u0", "u1", "u2", "u3"]
    assert skipped == []


def test_blank_lines_are_ignored(tmp_path: Path, matrix: RubricMatrix) -> None:
    path = write_jsonl(tmp_path / "u.jsonl", [make_unit(0), "", "   ", make_unit(1), ""])
    units, skipped = read_units([path], matrix)
    assert [u.id for u in units] == ["u0", "u1"]
    assert skipped == []


FILE_ERRORS = {
    "malformed_json": ('{"id": "u9", "prompt": ', "invalid JSON"),
    "non_object_line": ("[1, 2, 3]", "a unit must be a JSON object, got list"),
    "unknown_dimension": (make_unit(9, dimension="acuracy"), "unknown dimension 'acuracy'; did you mean 'accuracy'?"),
    "empty_response": (make_unit(9) | {"responses": ["Fine.", ""]}, "response 1 is empty"),
    "k_below_2": (make_unit(9, k=1), "K >= 2"),
    "identical_responses": (make_unit(9) | {"responses": ["Same.", "Same."]}, "identical"),
    "duplicate_id": (make_unit(0, prompt="Another question?"), "duplicate unit id 'u0'"),
}


@pytest.mark.parametrize(("bad", "reason"), FILE_ERRORS.values(), ids=FILE_ERRORS.keys())
def test_read_units_reports_file_and_line(tmp_path: Path, matrix: RubricMatrix, bad: Any, reason: str) -> None:
    path = write_jsonl(tmp_path / "u.jsonl", [make_unit(0), "", bad, make_unit(1)])
    with pytest.raises(BadRecordError) as info:
        read_units([path], matrix)
    message = str(info.value)
    assert message.startswith(f"{path}:3: ")
    assert reason in message
    assert "on_bad_record: skip" in message  # the fix is named


def test_skip_keeps_good_units_and_lists_the_skipped(tmp_path: Path, matrix: RubricMatrix) -> None:
    records = [make_unit(0), "not json", make_unit(1, dimension="nope"), make_unit(2), make_unit(0, prompt="Dup?")]
    path = write_jsonl(tmp_path / "u.jsonl", records)
    units, skipped = read_units([path], matrix, on_bad_record="skip")
    assert [u.id for u in units] == ["u0", "u2"]
    assert len(skipped) == 3
    assert skipped[0].startswith(f"{path}:2: invalid JSON")
    assert skipped[1].startswith(f"{path}:3: unknown dimension 'nope'")
    assert skipped[2] == f"{path}:5: duplicate unit id 'u0'"


def test_fail_raises_on_the_first_bad_record(tmp_path: Path, matrix: RubricMatrix) -> None:
    path = write_jsonl(tmp_path / "u.jsonl", [make_unit(0), make_unit(1, k=1), "not json"])
    with pytest.raises(BadRecordError, match=re.escape(f"{path}:2: ")):
        read_units([path], matrix, on_bad_record="fail")


def test_duplicate_ids_across_two_files_sharing_seen(tmp_path: Path, matrix: RubricMatrix) -> None:
    first = write_jsonl(tmp_path / "a.jsonl", [make_unit(0), make_unit(1)])
    second = write_jsonl(tmp_path / "b.jsonl", [make_unit(2), make_unit(1, prompt="Other?")])
    seen: set[str] = set()
    read_units([first], matrix, seen=seen)
    assert seen == {"u0", "u1"}
    with pytest.raises(BadRecordError, match=re.escape(f"{second}:2: duplicate unit id 'u1'")):
        read_units([second], matrix, seen=seen)


def test_duplicate_ids_across_two_files_in_one_call(tmp_path: Path, matrix: RubricMatrix) -> None:
    first = write_jsonl(tmp_path / "a.jsonl", [make_unit(0)])
    second = write_jsonl(tmp_path / "b.jsonl", [make_unit(0, prompt="Other?")])
    units, skipped = read_units([first, second], matrix, on_bad_record="skip")
    assert [u.id for u in units] == ["u0"]
    assert skipped == [f"{second}:1: duplicate unit id 'u0'"]


def test_separate_reads_without_seen_do_not_share_ids(tmp_path: Path, matrix: RubricMatrix) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [make_unit(0)])
    assert len(read_units([path], matrix)[0]) == 1
    assert len(read_units([path], matrix)[0]) == 1


def test_missing_file_raises_file_not_found(tmp_path: Path, matrix: RubricMatrix) -> None:
    with pytest.raises(FileNotFoundError, match=r"absent\.jsonl"):
        read_units([tmp_path / "absent.jsonl"], matrix)
