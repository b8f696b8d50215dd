"""Parsers of the generator's and the judge's replies (they raise ReplyFormatError, so a bad reply
is asked for again): a user prompt (one message or a conversation), an answer, a rewrite, a ranking.

Each parser is its task's validator: a reply that does not fit the task is refused with the reason,
so that the backend asks again within its bounded attempts and the reply cache never holds it as a
valid reply (``CachedBackend`` parses cached replies again on reading, so an earlier run's cached
misfit is asked again too). What every plain-text task refuses (``check_fits``):

- a refusal or an AI disclaimer at the start of the reply (``REFUSAL``): an AI disclaimer ("As an
  AI", "As a language model", "I'm an AI"), a declining ("I must decline"), an apology followed by
  an inability ("I'm sorry, but I can't help with that", "Sorry, as an AI ..."), or an inability
  to do the task itself ("I can't help with that", "I'm unable to assist.", "I cannot comply").
  An apology alone is no refusal ("I'm sorry to hear that ..." opens many good answers, "Sorry to
  bother you" many real messages), nor is an inability about something else ("I can't sleep",
  "I can't do this anymore");
- an echo of the request's scaffolding: a ``## Task:`` line, or a heading line of the rendered
  request that its inserted text (the conversation, the reference answer) does not hold, such as
  ``## Conversation`` or ``## Reference answer``;
- a preamble about the reply with nothing after it ("Sure, here is the message:"); a preamble
  followed by the reply is cut off (``PREAMBLE``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from lit_mrrml.backends.base import Parser, ReplyFormatError
from lit_mrrml.backends.structured import json_parser, require_field

TURN = re.compile(r"^[ \t]*\**(USER|ASSISTANT)\**[ \t]*:[ \t]*", re.IGNORECASE | re.MULTILINE)
FENCE = re.compile(r"^```[\w-]*\n?|\n?```$")
LEADING_LABEL = re.compile(r"^(?:rewritten answer|answer|reply|response|message|assistant)\s*:\s*", re.IGNORECASE)
HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
TASK_LINE = re.compile(r"^[ \t]*(?:#+[ \t]*Task[ \t]*:|Task[ \t]*:[ \t]*[\w-]+[ \t]*$)", re.IGNORECASE | re.MULTILINE)
MIN_PROMPT_WORDS = 4
MIN_ANSWER_WORDS = 3

# The refusal rule. Its pieces are matched at the very start of the reply, case-insensitively, with
# curly apostrophes made straight; an apology or an inability alone is not enough (see above).
_APOLOGY = (
    r"(?:(?:i'm|i am)(?: so| very| really| truly| terribly)? sorry|sorry|i apologi[sz]e|my apologies"
    r"|unfortunately|(?:i'm|i am) afraid)"
)
_CANNOT = (
    r"(?:i|we)(?: really| simply| just)?"
    r"(?: can(?:'t|not| not)| (?:won't|will not)(?: be able to)?"
    r"|(?:'m| am|'re| are) (?:unable|not able|not allowed|not permitted) to)"
)
# What an assistant says it cannot do when it refuses: help or assist with the request (not "help
# but", not "help it"), comply, or write, provide or create "that", "this", "such" or the content.
_TASK = (
    r"(?:(?:help|assist)(?: you| anyone)?(?: with (?:that|this|such|it|your request|requests)\b|[ \t]*(?:[.!,;]|$))"
    r"|comply\b|fulfil|fulfill"
    r"|(?:provide|give|offer|write|create|generate|produce|complete) (?:that|this|such|it\b|medical advice"
    r"|a diagnosis|content|the (?:message|prompt|answer|rewrite|requested)))"
)
_AI = (
    r"(?:as an ai\b|as an? (?:large )?language model"
    r"|(?:i'm|i am) (?:just |only )?an? (?:ai|artificial intelligence|(?:large )?language model|virtual assistant)\b)"
)
_DECLINE = r"i(?: must| have to| need to| will|'ll| would|'d)?(?: have to)?(?: respectfully| politely)? decline\b"
_AFTER_APOLOGY = (
    rf"(?:{_CANNOT} (?:{_TASK}|do (?:that|this)\b|answer (?:that|this)\b|be of (?:any )?help)|{_AI}|{_DECLINE}"
    r"|(?:that|this)(?:'s| is) not something i\b|this request\b|i (?:don't|do not) feel comfortable)"
)
REFUSAL = re.compile(
    rf"^[\s*\"'>]*(?:{_AI}|{_DECLINE}|{_CANNOT} {_TASK}|{_APOLOGY}[,.!]?\s+(?:but,?\s+)?{_AFTER_APOLOGY})",
    re.IGNORECASE,
)
# A preamble about the reply ("Sure, here is the message:"): a sentence that ends with a colon, or
# stands on a line of its own; one that names more than the reply ("Here's a realistic message
# from a worried parent.") only after a "Sure" or "Certainly", so that a user's own "Here is a
# question from my daughter, ..." stays the message.
_AFFIRM = r"(?:sure|certainly|of course|okay|ok|absolutely|alright|gladly)\b[,.!]*\s*"
_LEAD = (
    r"(?:here(?:'s| is| are)|below is|this is)\s+(?:an?\s+|the\s+|my\s+|your\s+)?(?:[\w-]+\s+){0,3}?"
    r"(?:message|prompt|question|conversation|answer|reply|response|rewrite|version|text)s?"
)
_TAIL = r"\s+(?:from|for|by|written|in|with|that|which|you asked for|as requested|requested)\b[^:\n]{0,80}"
_ALONE = r"[ \t]*[.!]?[ \t]*(?:\n|$)"  # the end of a sentence on a line of its own
PREAMBLE = re.compile(
    rf"^(?:(?:{_AFFIRM})?(?:here you go|here it is|{_LEAD}(?:{_TAIL})?)\s*:"
    rf"|(?:{_AFFIRM})?(?:here you go|here it is|{_LEAD}(?:\s+(?:you asked for|as requested|requested))?){_ALONE}"
    rf"|{_AFFIRM}{_LEAD}{_TAIL}{_ALONE})\s*",
    re.IGNORECASE,
)
# The assistant-voice rule of a user's message: it opens as an assistant's reply to the user does,
# or ends with an assistant's sign-off. Real messages open with the user's own situation or
# question ("I am 45 and ...", "My son ...", "What is the dose ...", "Sorry to bother you, but ..."),
# so these openings are rare in them; each false positive costs one more attempt, no more.
ASSISTANT_OPENING = re.compile(
    r"^[\s*\"'>]*(?:it (?:sounds|seems) like you"
    r"|(?:i'm|i am)(?: so| very| really)? sorry (?:to hear|that you|you're|you are)|sorry to hear"
    r"|(?:thank you|thanks)(?: so much| very much)? for (?:reaching out|sharing|your question|asking"
    r"|getting in touch|contacting)"
    r"|(?:that's|that is|what) an? (?:great|good|important|excellent) question|great question"
    r"|i (?:completely |totally )?understand (?:your|how you|that you|why you)"
    r"|it(?:'s| is) (?:completely |totally )?understandable"
    r"|based on (?:what you(?:'ve| have)? (?:described|shared|said|told)|your (?:description|symptoms))"
    r"|(?:i would|i'd) (?:strongly )?(?:recommend|advise|suggest)(?: that)? you"
    r"|you should (?:see|call|contact|seek|go to|consult|speak|talk)\b"
    r"|(?:please )?(?:call|dial) (?:999|911|112|000|an ambulance|emergency services)\b"
    r"|seek (?:immediate|urgent|emergency)\b)",
    re.IGNORECASE,
)
ASSISTANT_SIGN_OFF = re.compile(
    r"\b(?:i hope this helps|hope this helps|let me know if you have (?:any )?(?:other |more |further )?questions"
    r"|feel free to (?:ask|reach out)|please don't hesitate to (?:ask|reach out|contact))",
    re.IGNORECASE,
)


def _clean(text: str) -> str:
    text = FENCE.sub("", text.strip()).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def _straight(text: str) -> str:
    """Curly apostrophes made straight, as the rules above are written."""
    return text.replace("\u2019", "'").replace("\u2018", "'")


def _normal(text: str) -> str:
    """Text compared as a reader would: straight apostrophes, single spaces, no case."""
    return " ".join(_straight(text).split()).casefold()


def _quote(text: str, limit: int = 80) -> str:
    """The first line of ``text``, at most ``limit`` characters, for an error message."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return repr(line if len(line) <= limit else line[: limit - 3] + "...")


def headings(text: str) -> set[str]:
    """The markdown heading lines of ``text``, as compared (``## Reference answer`` -> ``reference answer``)."""
    return {_normal(title) for title in HEADING.findall(text)}


def scaffold_of(messages: Iterable[dict[str, str]], inserted: Iterable[str] = ()) -> frozenset[str]:
    """The headings of a rendered request that its template wrote, not the text put into it.

    ``inserted`` is the text the template was filled with (a conversation, a reference answer): a
    heading there (an answer's ``## Warning signs``) may well be in a good reply too.
    """
    written = set().union(*(headings(m["content"]) for m in messages))
    return frozenset(written - set().union(*(headings(text) for text in inserted)))


def strip_preamble(text: str, what: str) -> str:
    """``text`` without a preamble about it ("Sure, here is the message:"); refused when nothing follows."""
    found = PREAMBLE.match(text)
    if found is None:
        return text
    rest = text[found.end() :].strip()
    if not rest:
        raise ReplyFormatError(f"the reply is only a preamble ({_quote(text)}) with no {what} after it")
    return rest


def check_fits(text: str, what: str, scaffold: frozenset[str] = frozenset()) -> None:
    """Refuse a reply that is not the ``what`` asked for: a refusal or AI disclaimer, or an echo of the request."""
    if REFUSAL.match(_straight(text)):
        raise ReplyFormatError(f"the reply is a refusal or an AI disclaimer, not the {what} asked for: {_quote(text)}")
    task = TASK_LINE.search(text)
    if task is not None:
        line = text[task.start() :].splitlines()[0]
        raise ReplyFormatError(f"the {what} echoes the request's scaffolding (the line {_quote(line)})")
    echoed = next((m for m in HEADING.finditer(text) if _normal(m.group(1)) in scaffold), None)
    if echoed is not None:
        raise ReplyFormatError(f"the {what} echoes the request's scaffolding (the heading {_quote(echoed.group(0))})")


def check_user_voice(text: str, where: str) -> None:
    """Refuse a user's message that reads as the assistant's reply (``ASSISTANT_OPENING``, ``ASSISTANT_SIGN_OFF``)."""
    straight = _straight(text)
    found = ASSISTANT_OPENING.match(straight) or ASSISTANT_SIGN_OFF.search(straight)
    if found is not None:
        phrase = found.group(0).strip(" \t\n*\"'>")
        raise ReplyFormatError(
            f"{where} reads as the assistant's reply to the user ({phrase!r}), not as a message the user wrote"
        )


def parse_prompt(text: str, multi_turn: bool, scaffold: frozenset[str] = frozenset()) -> list[dict[str, str]]:
    """The prompt messages of a prompt-writer reply; a conversation must alternate and end with the user.

    Besides ``check_fits``, every user message (the single message, or each USER turn of a
    conversation) must be written by the user, not to them: it must not open as an assistant's
    reply does ("It sounds like you ...", "I'm sorry to hear ...", "Thank you for reaching out",
    "Great question", "I understand your ...", "Based on what you've described", "I would recommend
    you ...", "You should see ...", "Call 999 ...", "Seek urgent ...") nor carry an assistant's
    sign-off ("I hope this helps", "Let me know if you have any other questions", "Feel free to
    ask"). An ASSISTANT turn of a conversation is the assistant's, and is not checked so.
    """
    text = strip_preamble(_clean(text), "prompt")
    check_fits(text, "prompt", scaffold)
    parts = TURN.split(text)
    head = parts[0].strip()
    turns = [(role.lower(), body.strip()) for role, body in zip(parts[1::2], parts[2::2], strict=True)]
    if not multi_turn:
        if any(role == "assistant" for role, _ in turns):
            raise ReplyFormatError("a single user message was asked for, but the reply contains an assistant turn")
        message = " ".join([head, *(body for _, body in turns)]).strip()
        _enough_words(message, MIN_PROMPT_WORDS, "prompt")
        check_user_voice(message, "the prompt")
        return [{"role": "user", "content": message}]
    if head or len(turns) < 3:
        raise ReplyFormatError("a conversation was asked for: lines starting USER: and ASSISTANT:, at least 3 turns")
    for i, (role, body) in enumerate(turns):
        if role != ("user" if i % 2 == 0 else "assistant"):
            raise ReplyFormatError(f"turn {i + 1} is {role.upper()}: turns must alternate, starting with USER")
        _enough_words(body, 1, f"turn {i + 1}")
        if role == "user":
            check_user_voice(body, f"turn {i + 1} (USER)")
    if turns[-1][0] != "user":
        raise ReplyFormatError("the conversation must end with a USER turn")
    _enough_words(turns[-1][1], MIN_PROMPT_WORDS, "the last user turn")
    return [{"role": role, "content": body} for role, body in turns]


def parse_answer(text: str, scaffold: frozenset[str] = frozenset(), what: str = "answer") -> str:
    """An answer with fences, quotes, a preamble and a leading 'Answer:' label removed, checked by ``check_fits``.

    An answer must not go on with the conversation either: a line starting ``USER:`` is the
    transcript of the request echoed, or a conversation written instead of one reply.
    """
    answer = LEADING_LABEL.sub("", strip_preamble(_clean(text), what)).strip()
    check_fits(answer, what, scaffold)
    turn = next((m for m in TURN.finditer(answer) if m.group(1).lower() == "user"), None)
    if turn is not None:
        line = answer[turn.start() :].splitlines()[0]
        raise ReplyFormatError(f"the {what} holds a user turn (the line {_quote(line)}): write the reply only")
    _enough_words(answer, MIN_ANSWER_WORDS, what)
    return answer


def answer_parser(scaffold: frozenset[str] = frozenset()) -> Parser:
    """A parser of a best answer (``parse_answer``) to a request with these scaffold headings."""
    return lambda text: parse_answer(text, scaffold)


def rewrite_parser(reference: str, scaffold: frozenset[str] = frozenset()) -> Parser:
    """A parser of a rewrite of ``reference``: an answer (``parse_answer``) that is not the reference again.

    The reference compared as a reader would (case, spacing and curly apostrophes ignored): a
    rewrite that changes nothing else is a failed rewrite, not an answer of another level.
    """
    unchanged = _normal(reference)

    def parse(text: str) -> str:
        answer = parse_answer(text, scaffold, "rewrite")
        if _normal(answer) == unchanged:
            raise ReplyFormatError("the rewrite is the reference answer unchanged: it must lower the level asked for")
        return answer

    return parse


def ranking_parser(labels: list[str]) -> Parser:
    """A parser of ``{"ranking": [labels, best first]}`` that must list each label once."""

    def check(obj: dict[str, Any]) -> list[str]:
        ranking = require_field(obj, "ranking", list)
        cleaned = [_label(item) for item in ranking]
        if sorted(cleaned) != sorted(labels):
            raise ReplyFormatError(f"the ranking must list each of {labels} once, got {ranking}")
        return cleaned

    return json_parser(check)


def _label(item: Any) -> str:
    """'B', 'Answer B', 'b' and '(B)' all name answer B."""
    text = str(item).strip().strip("()[]").strip()
    return re.sub(r"^answer\s+", "", text, flags=re.IGNORECASE).strip().upper()


def _enough_words(text: str, least: int, what: str) -> None:
    if len(text.split()) < least:
        raise ReplyFormatError(f"the {what} is too short ({len(text.split())} words; at least {least})")
