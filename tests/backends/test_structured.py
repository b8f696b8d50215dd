"""JSON replies: extraction from the text models actually write."""

from __future__ import annotations

import pytest

from lit_mrrml.backends import ReplyFormatError
from lit_mrrml.backends.structured import extract_json_object, require_field


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        'Sure! Here it is:\n```json\n{"a": 1}\n```',
        'The set {x} is not JSON, but {"a": 1} is.',
        '[1, 2] then {"a": 1} and {"b": 2}',
    ],
)
def test_the_first_object_is_found(text):
    assert extract_json_object(text) == {"a": 1}


def test_no_object_is_an_error_quoting_the_reply():
    with pytest.raises(ReplyFormatError, match="no JSON object in the reply: 'I think yes'"):
        extract_json_object("I think yes")


def test_fields_are_checked_by_type_and_true_is_not_an_int():
    assert require_field({"n": 3}, "n", int) == 3
    with pytest.raises(ReplyFormatError, match="must be int, got bool"):
        require_field({"n": True}, "n", int)
    with pytest.raises(ReplyFormatError, match="no 'n' field"):
        require_field({"m": 1}, "n", int)
    assert require_field({"r": ["A"]}, "r", (list, tuple)) == ["A"]
