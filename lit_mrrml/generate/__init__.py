"""Synthetic training data from the rubric matrix: prompts per cell, graded answers, a blind judge."""

from lit_mrrml.generate.cells import Cell, Slot, plan_slots, select_cells
from lit_mrrml.generate.options import (
    AnswerOptions,
    CellSelection,
    ContaminationOptions,
    DedupOptions,
    PromptOptions,
    Quota,
    SplitOptions,
    VerifyOptions,
)
from lit_mrrml.generate.pipeline import DataGenerator
from lit_mrrml.generate.run import GenerationAborted, RunCounters
from lit_mrrml.generate.templates import PromptTemplates, TemplateError

__all__ = [
    "AnswerOptions",
    "Cell",
    "CellSelection",
    "ContaminationOptions",
    "DataGenerator",
    "DedupOptions",
    "GenerationAborted",
    "PromptOptions",
    "PromptTemplates",
    "Quota",
    "RunCounters",
    "Slot",
    "SplitOptions",
    "TemplateError",
    "VerifyOptions",
    "plan_slots",
    "select_cells",
]
