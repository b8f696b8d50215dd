"""RubricJudgeRules: a rule-based HealthBench judge (and a naive policy) for the loopback server.

As a judge (the request holds the grader's ``# Conversation`` and ``# Rubric item`` sections), it
reads the last assistant turn and the rubric item and says the item is met when at least
``threshold`` of the item's content words (five letters or more) occur in the response, replying
like a real judge: a JSON object with ``explanation`` and ``criteria_met`` in a code fence.
Otherwise it answers as a policy would: a short reply that repeats the user's content words.
Deterministic, so tests can compute the expected scores by hand.
"""

from __future__ import annotations

import json
import re
from typing import Any

WORD = re.compile(r"[a-z]{5,}")
SECTIONS = re.compile(r"# Conversation\n(?P<conversation>.*)\n\n# Rubric item\n(?P<item>.*?)\n\n# ", re.DOTALL)


def content_words(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


def rule_met(criterion: str, response: str, threshold: float = 0.5) -> bool:
    """The rule: enough of the criterion's content words occur in the response."""
    wanted = content_words(criterion)
    return bool(wanted) and len(wanted & content_words(response)) >= threshold * len(wanted)


class RubricJudgeRules:
    """A replier for ``ChatServer``: rubric verdicts for grader prompts, naive answers otherwise."""

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold

    def __call__(self, messages: list[dict[str, str]], body: dict[str, Any]) -> str:
        request = messages[-1]["content"] if messages else ""
        found = SECTIONS.search(request)
        if found is None:
            return self.answer(request)
        response = found.group("conversation").rsplit("\n\nassistant: ", 1)[-1]
        criterion = re.sub(r"^\[-?[\d.]+\] ", "", found.group("item").strip())
        met = rule_met(criterion, response, self.threshold)
        verdict = {"explanation": f"rule: {'enough' if met else 'too few'} of the item's words", "criteria_met": met}
        return f"```json\n{json.dumps(verdict)}\n```"

    def answer(self, question: str) -> str:
        words = sorted(content_words(question))[:40]
        return "Thank you for asking. About " + ", ".join(words) + ": please see a doctor if it gets worse."
