"""Rule rewards for policy demos and tests, as ``CallableReward`` takes them.

Each is a plain function ``(prompts, completions) -> N rows of L floats``; on the command line,
``--reward.function=lit_mrrml.testing.policy_rewards.target_share --reward.dimensions=[share]``.
Words are the whitespace-separated pieces of a completion, compared without case and as they
are otherwise (``doctor.`` is not ``doctor``): easy to compute by hand, and easy for a tiny
policy to learn in a toy run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

TARGET = "doctor"
LONG_ENOUGH = 50  # words at which the length reward reaches 1

Prompts = Sequence[Sequence[Mapping[str, str]]]


def word_share(text: str, word: str = TARGET) -> float:
    """The share of the words of ``text`` equal to ``word`` ('see a doctor now doctor' -> 2/5 = 0.4)."""
    words = text.split()
    return sum(w.lower() == word for w in words) / len(words) if words else 0.0


def target_share(prompts: Prompts, completions: Sequence[str]) -> list[list[float]]:
    """One dimension: [share of 'doctor'] for each completion."""
    return [[word_share(c)] for c in completions]


def length_and_keyword(prompts: Prompts, completions: Sequence[str]) -> list[list[float]]:
    """Two dimensions: [min(words / 50, 1), share of 'doctor'] for each completion."""
    return [[min(len(c.split()) / LONG_ENOUGH, 1.0), word_share(c)] for c in completions]


def letter_share(prompts: Prompts, completions: Sequence[str], letter: str = "e") -> list[list[float]]:
    """One dimension: the share of a completion's characters that are ``letter`` ('eel' -> 2/3).

    Dense (almost every completion scores something, and G samples differ), so that a tiny
    random policy learns it within a few steps: the toy run that must learn.
    """
    return [[sum(ch == letter for ch in c) / len(c) if c else 0.0] for c in completions]
