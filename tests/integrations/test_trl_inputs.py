"""Pure pieces of the TRL bridge: TRL rows as messages and text, the dimension column, pair tensors."""

from __future__ import annotations

import pytest
import torch

from lit_mrrml.errors import InputError
from lit_mrrml.integrations.dimension_column import check_dimension_names, dimension_index
from lit_mrrml.integrations.gprc_pairs import last_token_index, pair_inputs
from lit_mrrml.integrations.trl_inputs import completion_text, content_text, prompt_messages, scored_rows

NAMES = ["accuracy", "safety", "completeness"]


def test_a_string_prompt_is_one_user_turn_and_messages_keep_their_roles():
    assert prompt_messages("Chest pain?", "p") == [{"role": "user", "content": "Chest pain?"}]
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
    ]
    assert prompt_messages(messages, "p") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]


def test_a_completion_is_its_text_or_its_assistant_messages_joined():
    assert completion_text("Call 911.", "c") == "Call 911."
    assert completion_text([{"role": "assistant", "content": "Call 911."}], "c") == "Call 911."
    tools = [
        {"role": "assistant", "content": None, "tool_calls": [{"name": "lookup"}]},
        {"role": "tool", "content": "result: 42"},
        {"role": "assistant", "content": [{"type": "text", "text": "It is "}, {"type": "text", "text": "42."}]},
        {"role": "assistant", "content": "Anything else?"},
    ]
    assert completion_text(tools, "c") == "It is 42.\n\nAnything else?"  # tool output and empty turns left out


def test_content_parts_without_text_carry_none():
    assert content_text([{"type": "image"}, {"type": "text", "text": "x"}], "w") == "x"
    assert content_text(None, "w") == ""


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: prompt_messages([], "f: prompts[0]"), "f: prompts[0]: a prompt must be a string or a non-empty list"),
        (lambda: prompt_messages(7, "f: prompts[0]"), "f: prompts[0]: a prompt must be a string or a non-empty list"),
        (lambda: prompt_messages([{"content": "x"}], "f: prompts[1]"), "f: prompts[1][0]: a chat message must be"),
        (lambda: completion_text(3.5, "f: completions[2]"), "f: completions[2]: a completion must be a string or"),
        (lambda: content_text(5, "w"), "w: content must be a string, a list of parts or null, got int"),
        (lambda: content_text(["x"], "w"), "w: a content part must be an object, got str"),
        (lambda: content_text([{"type": "text", "text": 1}], "w"), "w: a text part needs a string 'text', got int"),
        (lambda: scored_rows(["a", "b"], ["x"], "f"), "f: 2 prompts and 1 completions: give one of each"),
    ],
)
def test_bad_rows_are_refused_naming_the_row(call, message):
    with pytest.raises(InputError) as info:
        call()
    assert str(info.value).startswith(message)


def test_scored_rows_are_hashable_and_equal_for_the_two_forms_of_one_row():
    conversational = scored_rows([[{"role": "user", "content": "Q"}]], [[{"role": "assistant", "content": "A"}]], "f")
    standard = scored_rows(["Q"], ["A"], "f")
    assert conversational == standard == [((("user", "Q"),), "A")]
    hash(tuple(standard))


def test_a_dimension_is_an_id_or_an_index():
    assert dimension_index("safety", NAMES, "w") == 1
    assert dimension_index(2, NAMES, "w") == 2


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "safty",
            "train dataset, row 4: dimension 'safty' is not one of the model's dimensions; did you mean 'safety'?",
        ),
        (3, "train dataset, row 4: dimension index 3 is out of range: the model has 3 dimensions"),
        (-1, "train dataset, row 4: dimension index -1 is out of range"),
        (True, "train dataset, row 4: dimension must be a dimension id or an integer index, got bool True"),
        (1.0, "train dataset, row 4: dimension must be a dimension id or an integer index, got float 1.0"),
        (None, "train dataset, row 4: dimension must be a dimension id or an integer index, got NoneType None"),
    ],
)
def test_a_bad_dimension_is_refused_naming_the_row(value, message):
    with pytest.raises(InputError) as info:
        dimension_index(value, NAMES, "train dataset, row 4")
    assert str(info.value).startswith(message)


def test_dimension_names_must_fit_the_head():
    assert check_dimension_names(("a", "b"), 2, "T") == ["a", "b"]
    with pytest.raises(InputError, match=r"^T: 1 dimension names \['a'\] for a score head of 2 outputs$"):
        check_dimension_names(["a"], 2, "T")
    with pytest.raises(InputError, match=r"^T: dimension names must be distinct non-empty strings"):
        check_dimension_names(["a", "a"], 2, "T")


def test_the_scored_token_is_the_last_one_that_is_not_padding():
    ids = torch.tensor([[5, 6, 0, 0], [7, 0, 0, 0], [0, 0, 8, 9], [4, 4, 4, 4]])  # right, right, left, none
    assert last_token_index(ids, 0).tolist() == [1, 0, 3, 3]
    assert last_token_index(ids, None).tolist() == [3, 3, 3, 3]


def test_pair_inputs_put_chosen_first_and_pick_each_pairs_dimension():
    # B = 2 pairs, H = 2, L = 3; rows 0, 1 chosen, rows 2, 3 rejected
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [3.0, 1.0]])
    weight = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])  # (L, H)
    logits = z @ weight.T  # (4, 3): [[1,0,1], [0,2,1], [2,4,4], [3,2,4]]
    out = pair_inputs(z, logits, weight, torch.tensor([1, 2]))
    assert out.z.tolist() == [[[1.0, 0.0], [2.0, 2.0]], [[0.0, 1.0], [3.0, 1.0]]]
    assert out.rewards.tolist() == [[0.0, 4.0], [1.0, 4.0]]  # pair 0 on dim 1: 0 vs 4; pair 1 on dim 2: 1 vs 4
    assert out.axes.tolist() == [[0.0, 2.0], [1.0, 1.0]]
    with pytest.raises(ValueError, match="do not fit 3 pairs"):
        pair_inputs(z, logits, weight, torch.tensor([0, 1, 2]))
