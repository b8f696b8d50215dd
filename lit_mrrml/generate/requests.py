"""The chat requests of a generation run, rendered from the templates with seeds fixed by their keys.

Every request's seed (and every random draw: knobs, the judge's answer order) comes from the
run's seed and the request's key, so that a rerun asks exactly the same questions and finds their
replies in the cache.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from lit_mrrml.backends.base import ChatRequest, Parser
from lit_mrrml.generate.cells import Slot
from lit_mrrml.generate.options import AnswerOptions, PromptOptions, VerifyOptions
from lit_mrrml.generate.replies import answer_parser, parse_prompt, ranking_parser, rewrite_parser, scaffold_of
from lit_mrrml.generate.templates import PromptTemplates
from lit_mrrml.matrix import RubricMatrix

LEVELS = {2: ("good", "poor"), 3: ("good", "medium", "poor")}
LABELS = "ABCDEFGH"


def derive_seed(seed: int, *parts: object) -> int:
    """A 31-bit seed fixed by the run's seed and a key (every service accepts it)."""
    digest = hashlib.sha256(repr((seed, *parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def transcript(messages: list[dict[str, str]]) -> str:
    """A prompt as text for the generator and the judge: ``User: ...`` and ``Assistant: ...`` turns."""
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)


@dataclass(frozen=True)
class PromptDraft:
    """A prompt request for one attempt at a slot, with the knobs it was drawn with."""

    slot: Slot
    attempt: int
    knobs: dict[str, dict[str, str]]
    request: ChatRequest


class RequestBuilder:
    """Renders the requests of each task for the matrix, templates and options of a run."""

    def __init__(
        self,
        matrix: RubricMatrix,
        templates: PromptTemplates,
        prompts: PromptOptions,
        answers: AnswerOptions,
        verify: VerifyOptions,
        seed: int,
    ) -> None:
        self.matrix, self.templates, self.seed = matrix, templates, seed
        self.prompts, self.answers, self.verify = prompts, answers, verify
        self.levels = LEVELS[answers.k]

    def _cell(self, slot: Slot) -> dict[str, object]:
        cell = slot.cell
        return {
            "dimension": self.matrix.dimension(cell.dimension),
            "scenario": self.matrix.scenario(cell.scenario),
            "discipline": self.matrix.discipline(cell.discipline),
        }

    def prompt(self, slot: Slot, attempt: int) -> PromptDraft:
        """The request that writes the prompt of ``slot`` (attempt 0, 1, ... after drops)."""
        knobs = self.templates.draw_knobs(random.Random(derive_seed(self.seed, "knobs", slot.key, attempt)))
        multi = knobs.get("turns", {}).get("id") == "multi"
        cell = slot.cell
        criteria = self.matrix.criteria_for(cell.dimension, cell.scenario, cell.discipline)
        messages = self.templates.render("prompt", **self._cell(slot), criteria=criteria, knobs=knobs)
        scaffold = scaffold_of(messages)
        request = ChatRequest.of(
            messages,
            max_tokens=self.prompts.max_tokens,
            temperature=self.prompts.temperature,
            top_p=self.prompts.top_p,
            seed=derive_seed(self.seed, "prompt", slot.key, attempt),
            parse=lambda text: parse_prompt(text, multi, scaffold),
        )
        return PromptDraft(slot, attempt, knobs, request)

    def _answer_variables(self, slot: Slot, dimension: str, prompt: list[dict[str, str]]) -> dict[str, object]:
        return {**self._cell(slot), "dimension": self.matrix.dimension(dimension), "conversation": transcript(prompt)}

    def answer(self, slot: Slot, dimension: str, prompt: list[dict[str, str]], key: str) -> ChatRequest:
        """The best answer of a unit: the ``good`` level of ``dimension``."""
        level_text = self.matrix.dimension(dimension).levels.good
        variables = self._answer_variables(slot, dimension, prompt)
        messages = self.templates.render(
            "answer", **variables, level="good", level_text=level_text, words=self.answers.words
        )
        # the template's headings, not those of the conversation put into it, are an echo in a reply
        scaffold = scaffold_of(messages, [str(variables["conversation"])])
        return self._answer_request(messages, derive_seed(self.seed, "answer", key, "good"), answer_parser(scaffold))

    def rewrite(
        self, slot: Slot, dimension: str, prompt: list[dict[str, str]], key: str, best: str, level: str
    ) -> ChatRequest:
        """The best answer lowered to ``level`` on ``dimension`` only."""
        level_text = getattr(self.matrix.dimension(dimension).levels, level)
        variables = self._answer_variables(slot, dimension, prompt)
        messages = self.templates.render(
            "rewrite", **variables, level=level, level_text=level_text, words=self.answers.words, answer=best
        )
        scaffold = scaffold_of(messages, [str(variables["conversation"]), best])
        parse = rewrite_parser(best, scaffold)
        return self._answer_request(messages, derive_seed(self.seed, "answer", key, level), parse)

    def _answer_request(self, messages: list[dict[str, str]], seed: int, parse: Parser) -> ChatRequest:
        options = self.answers
        return ChatRequest.of(
            messages,
            max_tokens=options.max_tokens,
            temperature=options.temperature,
            top_p=options.top_p,
            seed=seed,
            parse=parse,
        )

    def judge_order(self, key: str) -> list[int]:
        """The order the judge sees a unit's answers in: position -> index in best-first order."""
        order = list(range(self.answers.k))
        random.Random(derive_seed(self.seed, "judge-order", key)).shuffle(order)
        return order

    def judge(
        self, slot: Slot, dimension: str, prompt: list[dict[str, str]], key: str, answers: list[str]
    ) -> ChatRequest:
        """A blind ranking of the answers: shuffled, labelled A, B, ... and never told the intended order."""
        labels = list(LABELS[: len(answers)])
        shown = [(label, answers[i]) for label, i in zip(labels, self.judge_order(key), strict=True)]
        variables = self._answer_variables(slot, dimension, prompt)
        messages = self.templates.render("judge", **variables, answers=shown, labels=labels)
        return ChatRequest.of(
            messages,
            max_tokens=self.verify.max_tokens,
            temperature=self.verify.temperature,
            seed=derive_seed(self.seed, "judge", key),
            json_mode=True,
            parse=ranking_parser(labels),
        )

    def judged_order(self, key: str, ranking: list[str]) -> list[int]:
        """The judge's ranking (labels, best first) as indices into the best-first answers."""
        order = self.judge_order(key)
        return [order[LABELS.index(label)] for label in ranking]
