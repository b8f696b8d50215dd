"""The judge's bill before any call: how many calls, the prompt tokens they carry, and a budget.

A run makes one judge call per criterion of every answered row whose verdict the cache does not
already hold (cached verdicts cost nothing and are not counted). The prompt tokens are counted
with the judge's own tokenizer and chat template when the judge is a local model (HFLocalBackend;
each prompt capped at its ``max_input_tokens``, as it truncates them), and otherwise estimated as
the characters of every message of each request divided by 4 (a common rule of thumb for English
text under GPT-style tokenizers). ``max_judge_calls`` refuses a run that would make more calls,
with one line and exit status 2, before any call is made. Plain Python: the tokenizer (and
transformers) is imported only for a local judge, whose backend has imported it already.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from lit_mrrml.backends.base import ChatBackend, ChatRequest
from lit_mrrml.errors import InputError

if TYPE_CHECKING:
    from lit_mrrml.backends.hf_local import HFLocalBackend

CHARS_PER_TOKEN = 4
BY_CHARACTERS = "estimated as characters / 4"
BY_TOKENIZER = "counted with the judge's tokenizer and chat template"


class JudgeBudgetError(InputError):
    """A run that would make more judge calls than ``max_judge_calls`` allows."""


@dataclass(frozen=True)
class JudgePlan:
    """The judge calls a run is about to make."""

    calls: int  # requests to send: criteria without a cached verdict
    cached: int  # criteria whose verdict comes from the cache
    prompt_tokens: int  # over the ``calls`` requests, every message included
    counted: str  # how prompt_tokens was obtained (BY_TOKENIZER or BY_CHARACTERS)

    def line(self) -> str:
        """What the command prints before grading."""
        return (
            f"judge: {self.calls:,} call(s) to make, {self.prompt_tokens:,} prompt tokens ({self.counted}); "
            f"{self.cached:,} verdict(s) from the cache"
        )

    def as_dict(self) -> dict[str, int | str]:
        return asdict(self)


def plan_calls(requests: Sequence[ChatRequest], cached: int, judge: ChatBackend) -> JudgePlan:
    """The plan of sending ``requests`` to ``judge``."""
    hf_local = sys.modules.get("lit_mrrml.backends.hf_local")  # not imported: the judge is not a local model
    if hf_local is not None and isinstance(judge, hf_local.HFLocalBackend):
        return JudgePlan(len(requests), cached, tokenizer_tokens(requests, judge), BY_TOKENIZER)
    return JudgePlan(len(requests), cached, character_tokens(requests), BY_CHARACTERS)


def character_tokens(requests: Sequence[ChatRequest]) -> int:
    """round(characters of every message of every request / 4)."""
    characters = sum(len(content) for r in requests for _, content in r.messages)
    return round(characters / CHARS_PER_TOKEN)


def tokenizer_tokens(requests: Sequence[ChatRequest], judge: HFLocalBackend, batch: int = 256) -> int:
    """The prompt tokens a local judge is given: its chat template applied, capped at max_input_tokens."""
    from lit_mrrml.models.backbone import load_tokenizer

    if not requests:
        return 0
    tokenizer = load_tokenizer(judge.spec)
    total = 0
    for start in range(0, len(requests), batch):
        chunk = requests[start : start + batch]
        texts = [
            tokenizer.apply_chat_template(r.message_dicts, tokenize=False, add_generation_prompt=True) for r in chunk
        ]
        encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
        total += sum(min(len(ids), judge.max_input_tokens) for ids in encoded)
    return total


def check_budget(calls: int, budget: int | None, detail: str = "") -> None:
    """Raise JudgeBudgetError when ``calls`` exceeds ``budget`` (None: no budget)."""
    if budget is not None and calls > budget:
        raise JudgeBudgetError(
            f"max_judge_calls: this run would make {calls:,} judge call(s){detail}, over the budget of {budget:,}; "
            "no call was made (raise max_judge_calls, or select fewer rows with rows.limit or rows.themes)"
        )
