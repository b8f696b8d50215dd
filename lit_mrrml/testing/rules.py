"""GenerationRules: rule-based replies to the tasks of the shipped generation templates.

It reads the task from the ``## Task: <name>`` line of the last message and replies as a
cooperative (if unimaginative) LLM would: a patient's question built from the request's seed,
answers of the requested length that carry a quality mark (``excellent``, ``adequate``, ``weak``)
for the level asked, rewrites that keep the length and change the mark, and a judge that ranks
answers by their marks. ``disagree_every`` makes the judge swap its top two on some requests.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from typing import Any

MARKS = {"good": "excellent", "medium": "adequate", "poor": "weak"}
SCORES = {"excellent": 3, "adequate": 2, "weak": 1}
WORDS = (  # noqa: SIM905  (a vocabulary reads better as text)
    "fever cough rash headache dizziness nausea fatigue swelling pain bleeding itching "
    "wheezing numbness tablet dose label morning evening week month clinic pharmacy nurse "
    "doctor daughter son mother father partner worse better sudden mild severe constant "
    "sharp dull after before during since"
).split()


def _task(messages: list[dict[str, str]]) -> str:
    found = re.search(r"## Task: ([\w-]+)", messages[-1]["content"]) if messages else None
    return found.group(1) if found else "chat"


def _rng(body: dict[str, Any]) -> random.Random:
    text = json.dumps([body.get("seed"), body.get("messages")], sort_keys=True)
    return random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little"))


def _words(request: str) -> int:
    found = re.search(r"about (\d+) words", request)
    return int(found.group(1)) if found else 60


class GenerationRules:
    """A replier for ``ChatServer`` that understands the generation templates."""

    def __init__(self, prompts: Sequence[str] | None = None, disagree_every: int = 0) -> None:
        """
        Args:
            prompts: Write these prompts (chosen by the request's seed) instead of made-up ones,
                to produce duplicates on purpose.
            disagree_every: The judge swaps its best two answers on about one request in this many.
        """
        self.prompts, self.disagree_every = list(prompts or []), disagree_every

    def __call__(self, messages: list[dict[str, str]], body: dict[str, Any]) -> str:
        task, rng = _task(messages), _rng(body)
        request = messages[-1]["content"] if messages else ""
        if task == "write-prompt":
            return self.prompt(request, rng)
        if task == "answer":
            level = re.search(r"Level to reach: (\w+)", request)
            return self.answer(
                MARKS.get(level.group(1).lower() if level else "good", "excellent"), _words(request), rng
            )
        if task == "rewrite":
            return self.rewrite(request)
        if task == "rank":
            return self.rank(request, rng)
        return f"echo: {request}"

    def prompt(self, request: str, rng: random.Random) -> str:
        text = self.prompts[rng.randrange(len(self.prompts))] if self.prompts else self._question(rng)
        if 'starting with "USER:"' in request:
            follow_up = f"It started {rng.choice(WORDS)} {rng.choice(WORDS)}, what now?"
            return f"USER: {text}\nASSISTANT: Could you tell me a little more?\nUSER: {follow_up}"
        return text

    def _question(self, rng: random.Random) -> str:
        age = rng.randrange(1, 90)
        body = " ".join(rng.choice(WORDS) for _ in range(18))
        return f"I am {age} years old and I have {body}. What should I do?"

    def answer(self, mark: str, words: int, rng: random.Random) -> str:
        filler = " ".join(rng.choice(WORDS) for _ in range(max(1, words - 3)))
        return f"Quality mark: {mark}. {filler}."

    def rewrite(self, request: str) -> str:
        reference = re.search(r"## Reference answer\n(.*?)\n\n## Change", request, re.DOTALL)
        level = re.search(r"drops to the (\w+) level", request)
        mark = MARKS.get(level.group(1).lower() if level else "poor", "weak")
        text = reference.group(1) if reference else "Quality mark: excellent. something"
        return re.sub(r"Quality mark: \w+", f"Quality mark: {mark}", text)

    def rank(self, request: str, rng: random.Random) -> str:
        blocks = re.findall(r"### Answer (\w+)\n(.*?)(?=\n### Answer |\nRank the answers)", request, re.DOTALL)
        scored = []
        for label, text in blocks:
            mark = re.search(r"Quality mark: (\w+)", text)
            scored.append((-SCORES.get(mark.group(1) if mark else "", 0), label))
        ranking = [label for _, label in sorted(scored)]
        if self.disagree_every and len(ranking) > 1 and rng.randrange(self.disagree_every) == 0:
            ranking[0], ranking[1] = ranking[1], ranking[0]
        return json.dumps({"ranking": ranking, "explanation": "ranked by the quality marks"})
