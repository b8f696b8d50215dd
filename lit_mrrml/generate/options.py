"""The settings of a generation run, one frozen dataclass per concern (documented for ``--help``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lit_mrrml.matrix.model import WILDCARD


@dataclass(frozen=True)
class Quota:
    """A number of prompts for the cells it matches (``*`` matches every id).

    Args:
        prompts: Prompts to write for each matching cell (0 leaves the cells out).
        dimension: Dimension id, or ``*``.
        scenario: Scenario id, or ``*``.
        discipline: Discipline id, or ``*``.
    """

    prompts: int
    dimension: str = WILDCARD
    scenario: str = WILDCARD
    discipline: str = WILDCARD


@dataclass(frozen=True)
class CellSelection:
    """Which (dimension, scenario, discipline) cells of the matrix get prompts, and how many.

    Args:
        dimensions: Dimension ids to cover (default: every dimension of the matrix).
        scenarios: Scenario ids to cover (default: every scenario).
        disciplines: Discipline ids to cover (default: every discipline).
        prompts_per_cell: Prompts for each selected cell, unless a quota says otherwise.
        quotas: Per-cell prompt counts; the last quota that matches a cell wins.
        sample: Keep this many of the selected cells, drawn at random with the run's seed
            (default: all of them).
    """

    dimensions: list[str] | None = None
    scenarios: list[str] | None = None
    disciplines: list[str] | None = None
    prompts_per_cell: int = 1
    quotas: list[Quota] = field(default_factory=list)
    sample: int | None = None


@dataclass(frozen=True)
class PromptOptions:
    """How user prompts are written.

    Args:
        max_attempts: Prompts written for one slot at most: a dropped prompt (unusable reply,
            near-duplicate, contamination) is written again with freshly drawn knobs.
        knob_weights: New weights for template knob options, e.g. ``{turns: {multi: 0}}``.
        temperature: Sampling temperature of the prompt writer.
        top_p: Nucleus sampling of the prompt writer.
        max_tokens: Longest prompt reply in tokens.
    """

    max_attempts: int = 3
    knob_weights: dict[str, dict[str, float]] = field(default_factory=dict)
    temperature: float = 1.0
    top_p: float = 0.95
    max_tokens: int = 400


@dataclass(frozen=True)
class AnswerOptions:
    """How the K ranked answers of a (prompt, dimension) are written.

    The best answer is written at the dimension's ``good`` level; the others rewrite it down to
    ``medium`` and ``poor`` on that dimension only, keeping its length and everything else.

    Args:
        k: Answers per unit: 3 (good, medium, poor) or 2 (good, poor).
        dimensions: Target dimensions of each prompt: ``cell`` (its cell's dimension), ``all``
            (every dimension of the matrix, one unit each) or a list of dimension ids.
        words: Target length of every answer, in words.
        max_length_ratio: Longest over shortest answer of a unit, in words, at most; units
            beyond it are dropped (length would otherwise be a shortcut for the reward model).
        temperature: Sampling temperature of the answer writer.
        top_p: Nucleus sampling of the answer writer.
        max_tokens: Longest answer reply in tokens.
    """

    k: int = 3
    dimensions: Literal["cell", "all"] | list[str] = "cell"
    words: int = 120
    max_length_ratio: float = 1.5
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 600


@dataclass(frozen=True)
class VerifyOptions:
    """The judge's check of each unit (when a judge is set): a blind ranking of the answers.

    Args:
        agreement: ``order``: the judge's full order must be the intended one; ``best``: its
            first answer must be the intended best.
        temperature: Sampling temperature of the judge.
        max_tokens: Longest judge reply in tokens.
    """

    agreement: Literal["order", "best"] = "order"
    temperature: float = 0.0
    max_tokens: int = 400


@dataclass(frozen=True)
class DedupOptions:
    """Near-duplicate prompts: word n-gram Jaccard similarity against the prompts kept so far.

    Args:
        enabled: Drop near-duplicates (counted as ``near_duplicate``).
        threshold: Similarity at which a prompt is a near-duplicate.
        ngram: Words per shingle.
    """

    enabled: bool = True
    threshold: float = 0.6
    ngram: int = 3


@dataclass(frozen=True)
class ContaminationOptions:
    """Prompts that overlap an evaluation set are dropped (counted as ``contamination``).

    Args:
        files: Evaluation files (HealthBench JSONL, ranked units, ``{"text"}`` lines or .txt);
            ``package:<module>/<path>`` names a file inside an installed package.
        threshold: Share of a prompt's word n-grams found in one evaluation prompt that makes it
            contaminated.
        ngram: Words per shingle.
    """

    files: list[str] = field(default_factory=list)
    threshold: float = 0.5
    ngram: int = 5


@dataclass(frozen=True)
class SplitOptions:
    """The split of the kept units into train, val and test files, by prompt (no prompt in two).

    Args:
        train: Share of prompts for training.
        val: Share for validation.
        test: Share for testing.
    """

    train: float = 0.8
    val: float = 0.1
    test: float = 0.1

    def __post_init__(self) -> None:
        shares = (self.train, self.val, self.test)
        if min(shares) < 0 or abs(sum(shares) - 1.0) > 1e-6:
            raise ValueError(f"split shares must be non-negative and sum to 1, got {shares}")
