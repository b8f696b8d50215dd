"""Each task's validator refuses a reply that does not fit the task, with the reason (see replies.py)."""

from __future__ import annotations

import random

import pytest

from lit_mrrml.backends import ChatRequest, ReplyFormatError
from lit_mrrml.generate.cells import Cell, Slot
from lit_mrrml.generate.options import AnswerOptions, PromptOptions, VerifyOptions
from lit_mrrml.generate.replies import parse_answer, parse_prompt, rewrite_parser, scaffold_of
from lit_mrrml.generate.requests import RequestBuilder
from lit_mrrml.generate.templates import PromptTemplates
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.testing import GenerationRules
from lit_mrrml.testing.chat_server import REFUSAL
from tests.generate.conftest import TEMPLATES

SLOT = Slot(Cell("safety", "emergency_referrals", "pediatrics"), 0)
PROMPT = [{"role": "user", "content": "My son is 4 and has had a fever of 39.5 C since yesterday, what should I do?"}]
BEST = "Give him paracetamol by weight, keep him drinking, and call 111 today if the fever lasts past tomorrow."
SINGLE = {"turns": {"multi": 0}}


def refused(parse: object, text: str) -> str:
    """The reason ``parse`` refuses ``text`` with (fails the test when it accepts it)."""
    assert callable(parse)
    with pytest.raises(ReplyFormatError) as caught:
        parse(text)
    return str(caught.value)


def builder(matrix: RubricMatrix, knob_weights: dict | None = None) -> RequestBuilder:
    templates = PromptTemplates.load(TEMPLATES, knob_weights or SINGLE)
    return RequestBuilder(matrix, templates, PromptOptions(), AnswerOptions(), VerifyOptions(), seed=0)


def requests(matrix: RubricMatrix) -> dict[str, ChatRequest]:
    """The real requests of each plain-text task, with the parsers the pipeline gives them."""
    made = builder(matrix)
    return {
        "prompt": made.prompt(SLOT, 0).request,
        "answer": made.answer(SLOT, "safety", PROMPT, "k"),
        "rewrite": made.rewrite(SLOT, "safety", PROMPT, "k", BEST, "poor"),
    }


REFUSALS = [
    REFUSAL,
    "I am sorry, but I cannot help with this.",
    "Sorry, but I can't write that.",
    "I\u2019m sorry, I can\u2019t assist with that request.",
    "I can't help with that.",
    "I cannot assist with this request.",
    "I'm unable to assist.",
    "I won't be able to help with that.",
    "I cannot comply with this request.",
    "As an AI language model, I cannot give medical advice.",
    "As an AI, I don't have personal experiences, but here is a message.",
    "I'm an AI and cannot diagnose anyone.",
    "I must decline this request, as it asks for medical content.",
    "Unfortunately, I can't provide medical advice. Please see a doctor.",
    "I'm afraid I can't do that.",
]


def test_refusals_and_ai_disclaimers_are_refused_but_apologies_and_other_inabilities_are_not(matrix):
    for task, request in requests(matrix).items():
        for text in REFUSALS:
            first_line = text.splitlines()[0]
            assert refused(request.parse, text) == (
                f"the reply is a refusal or an AI disclaimer, not the {task} asked for: {first_line!r}"
            ), (task, text)
    parse = requests(matrix)
    messages = [  # real users apologise, and say what they cannot do
        "I'm sorry to bother you, but my daughter has had a fever since yesterday. Should I worry?",
        "Sorry if this is a silly question, but can I take ibuprofen with my blood pressure tablets?",
        "Sorry, I can't remember the name of the tablet, but it was for blood pressure. Can I drink?",
        "I can't sleep since starting sertraline two weeks ago, is that normal?",
        "I can't do this anymore, I haven't slept in weeks and everything feels hopeless.",
        "I can't help but worry about my dad's cough, he has had it for a month now.",
        "I'm unable to walk more than 50 metres without chest pain, should I see someone?",
        "Unfortunately my GP is closed and my baby has a fever of 38.5, what can I do?",
        "As a nurse, what is the maximum dose of morphine for a 70 kg adult with renal failure?",
    ]
    for text in messages:
        assert parse["prompt"].parse(text) == [{"role": "user", "content": text}]
    answers = [  # and good answers open with empathy
        "I'm sorry to hear that he is so unwell. Give paracetamol by weight and call 111 if he gets worse.",
        "Sorry to hear about the fever. Keep him drinking, and call 999 if he is hard to wake.",
        "Unfortunately, a fever this high in a small child needs a doctor's review today: call 111 now.",
    ]
    for text in answers:
        assert parse["answer"].parse(text) == text
        assert parse["rewrite"].parse(text) == text


def test_an_echo_of_the_requests_scaffolding_is_refused(matrix):
    parse = requests(matrix)
    assert refused(parse["prompt"].parse, "## Task: write-prompt\nWrite a single message from a patient.") == (
        "the prompt echoes the request's scaffolding (the line '## Task: write-prompt')"
    )
    echo = "## Conversation\nUser: my son has a fever\n\nGive him paracetamol and call 111 if it lasts."
    assert (
        refused(parse["answer"].parse, echo)
        == "the answer echoes the request's scaffolding (the heading '## Conversation')"
    )
    assert refused(parse["rewrite"].parse, f"## Reference answer\n{BEST}\n\nCall someone maybe.") == (
        "the rewrite echoes the request's scaffolding (the heading '## Reference answer')"
    )
    assert refused(parse["answer"].parse, "Task: answer\nGive him paracetamol by weight today.") == (
        "the answer echoes the request's scaffolding (the line 'Task: answer')"
    )
    # an answer's own headings are no echo, nor are the headings of the text put into the request
    own = "## What to do now\nGive paracetamol by weight.\n## When to call 999\nIf he is floppy or hard to wake."
    assert parse["answer"].parse(own) == own
    with_heading = "## Change\nSwap to ibuprofen if paracetamol has not helped within two hours, then call 111."
    rewrite = builder(matrix).rewrite(SLOT, "safety", PROMPT, "k", with_heading, "poor")
    kept = "## Change\nSwap to something else if nothing helps, maybe."
    assert rewrite.parse is not None and rewrite.parse(kept) == kept
    assert "change" not in scaffold_of(rewrite.message_dicts, [with_heading])
    assert scaffold_of(rewrite.message_dicts) >= {"change", "reference answer", "conversation", "task: rewrite"}


def test_a_preamble_alone_is_refused_and_one_before_the_reply_is_cut_off(matrix):
    parse = requests(matrix)
    for text in ("Sure, here is the message:", "Certainly! Here's a realistic message from a worried parent:"):
        assert (
            refused(parse["prompt"].parse, text) == f"the reply is only a preamble ({text!r}) with no prompt after it"
        )
    assert refused(parse["answer"].parse, "Here is the answer:") == (
        "the reply is only a preamble ('Here is the answer:') with no answer after it"
    )
    assert refused(parse["rewrite"].parse, "Sure! Here's the rewritten answer.") == (
        'the reply is only a preamble ("Sure! Here\'s the rewritten answer.") with no rewrite after it'
    )
    message = "My daughter is 2 and swallowed a coin an hour ago, she seems fine. Do we need to go in?"
    assert parse["prompt"].parse(f"Sure, here is the message:\n\n{message}") == [{"role": "user", "content": message}]
    assert parse["answer"].parse(f"Here's the answer:\n{BEST}") == BEST
    # a sentence that merely starts alike is the message itself
    own = "Here is my question: my mother is 80 and keeps falling at night, what can we do?"
    assert parse["prompt"].parse(own)[0]["content"] == "my mother is 80 and keeps falling at night, what can we do?"
    for same in (
        "This is the third time this month my son has had croup. Is that normal?",
        "Here is a question from my daughter, she is 4 and has had a fever since Monday.",
        "Here is the message my GP sent me: take two tablets a day. Is that right for a child?",
    ):
        assert parse["prompt"].parse(same)[0]["content"] == same
    named = f"Certainly! Here's a realistic message from a worried parent.\n\n{message}"
    assert parse["prompt"].parse(named) == [{"role": "user", "content": message}]


def test_a_prompt_must_be_written_by_the_user_not_to_them(matrix):
    parse = requests(matrix)["prompt"].parse
    cases = {
        "It sounds like you have a viral infection. Rest and drink plenty of fluids.": "It sounds like you",
        "I'm sorry to hear about your son's fever. Give him paracetamol.": "I'm sorry to hear",
        "Thank you for reaching out. A fever of 39.5 in a child needs attention.": "Thank you for reaching out",
        "Great question! Fevers are common in small children.": "Great question",
        "Based on what you've described, this sounds like croup.": "Based on what you've described",
        "You should see a doctor today if the fever lasts.": "You should see",
        "Call 999 now if he is floppy or hard to wake.": "Call 999",
        "Seek urgent care if the rash does not fade under a glass.": "Seek urgent",
        "My son has had a rash for two days. I hope this helps you understand.": "I hope this helps",
        "Fevers are usually viral. Let me know if you have any other questions!": (
            "Let me know if you have any other questions"
        ),
    }
    for text, phrase in cases.items():
        assert refused(parse, text) == (
            f"the prompt reads as the assistant's reply to the user ({phrase!r}), not as a message the user wrote"
        )
    real = [
        "I am 45 years old and I have had chest pain for an hour, should I call someone?",
        "My 3 year old has a barking cough at night. What should I do?",
        "What is the recommended amoxicillin dose for a 20 kg child with otitis media?",
        "Could you advise on switching from warfarin to apixaban in a patient with AF and CKD stage 3?",
        "I understand that paracetamol is safe, but how much can my 6 year old have?",
        "You know how they say to starve a fever? Is that true for my 2 year old?",
        "Thanks for the leaflet last week. My mum's ankles are still swollen, should she go back?",
    ]
    for text in real:
        assert parse(text) == [{"role": "user", "content": text}]
    rules, rng = GenerationRules(), random.Random(0)
    for _ in range(200):  # the shipped rule-based generator's messages pass
        text = rules.prompt("Reply with the message only", rng)
        assert parse(text) == [{"role": "user", "content": text}]


def test_every_user_turn_of_a_conversation_is_the_users_and_assistant_turns_are_not_checked(matrix):
    multi = builder(matrix, {"turns": {"single": 0}}).prompt(SLOT, 0).request.parse
    assert multi is not None
    good = (
        "USER: My son has a fever of 39.5.\nASSISTANT: It sounds like you are worried. How old is he?\n"
        "USER: He is 4, and he is drinking less than usual."
    )
    assert [m["role"] for m in multi(good)] == ["user", "assistant", "user"]
    bad = "USER: My son has a fever of 39.5.\nASSISTANT: How old is he?\nUSER: You should see a GP today if it lasts."
    assert refused(multi, bad) == (
        "turn 3 (USER) reads as the assistant's reply to the user ('You should see'), not as a message the user wrote"
    )
    rules, rng = GenerationRules(), random.Random(1)
    for _ in range(100):
        assert len(multi(rules.prompt('starting with "USER:" or "ASSISTANT:"', rng))) == 3


def test_an_answer_must_be_one_reply_and_a_rewrite_must_change_the_reference():
    assert refused(parse_answer, f"{BEST}\nUser: thanks, and what about ibuprofen?") == (
        "the answer holds a user turn (the line 'User: thanks, and what about ibuprofen?'): write the reply only"
    )
    assert parse_answer(f"Assistant: {BEST}") == BEST
    parse = rewrite_parser(BEST)
    for same in (BEST, f"  {BEST.upper()}  ", BEST.replace(" by weight,", "  by weight,\n")):
        assert (
            refused(parse, same) == "the rewrite is the reference answer unchanged: it must lower the level asked for"
        )
    lowered = "Give him some paracetamol, and see how he is in a few days."
    assert parse(lowered) == lowered
    assert refused(parse, f"Rewritten answer: {BEST}").startswith("the rewrite is the reference answer unchanged")


def test_a_preamble_before_a_conversation_is_cut_off():
    assert parse_prompt("Sure, here is the conversation:\nUSER: a b c d\nASSISTANT: e\nUSER: f g h i", True) == [
        {"role": "user", "content": "a b c d"},
        {"role": "assistant", "content": "e"},
        {"role": "user", "content": "f g h i"},
    ]
