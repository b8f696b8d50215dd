"""The records a generation run writes: kept prompts, kept units and drops (see GenerationStore)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from lit_mrrml.backends.base import ChatReply
from lit_mrrml.generate.requests import PromptDraft
from lit_mrrml.generate.unit_stage import UnitJob


def prompt_record(draft: PromptDraft, reply: ChatReply) -> dict[str, Any]:
    """A kept prompt: its slot and cell, the attempt and knobs that wrote it, its messages."""
    return {
        "slot": draft.slot.key,
        "cell": asdict(draft.slot.cell),
        "attempt": draft.attempt,
        "prompt": reply.value,
        "knobs": {knob: drawn["id"] for knob, drawn in draft.knobs.items()},
        "tokens": reply.usage.as_dict(),
    }


def prompt_drop(draft: PromptDraft, reply: ChatReply, reason: str, detail: str) -> dict[str, Any]:
    """A dropped prompt attempt, with the reply text that was refused."""
    return {
        "stage": "prompt",
        "key": f"{draft.slot.key}#{draft.attempt}",
        "slot": draft.slot.key,
        "cell": asdict(draft.slot.cell),
        "reason": reason,
        "detail": detail,
        "text": reply.text,
        "tokens": reply.usage.as_dict(),
    }


def unit_drop(job: UnitJob, reason: str, detail: str, reply: str | None = None) -> dict[str, Any]:
    """A dropped unit, with the answers it had and the refused reply, if a reply was the reason."""
    return {
        "stage": "unit",
        "key": job.key,
        "slot": job.slot.key,
        "cell": asdict(job.slot.cell),
        "dimension": job.dimension,
        "reason": reason,
        "detail": detail,
        "responses": job.answers,
        "reply": reply,
        "judge": job.verdict,
        "tokens": job.usage.as_dict(),
    }


def unit_record(job: UnitJob, unit_id: str, levels: tuple[str, ...], generated_by: dict[str, str]) -> dict[str, Any]:
    """A kept unit in the reward model's ranked-unit format, with where it came from under ``meta``."""
    cell = job.slot.cell
    return {
        "id": unit_id,
        "prompt": job.prompt,
        "dimension": job.dimension,
        "scenario": cell.scenario,
        "discipline": cell.discipline,
        "responses": job.answers,
        "meta": {
            "key": job.key,
            "slot": job.slot.key,
            "cell": asdict(cell),
            "levels": list(levels),
            **generated_by,
            "judge": job.verdict,
            "tokens": job.usage.as_dict(),
        },
    }
