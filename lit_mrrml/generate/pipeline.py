"""DataGenerator: synthetic ranked units from the rubric matrix (``python -m lit_mrrml generate``).

For every prompt slot of the selected cells, in batches:
1. the generator writes a user prompt for the cell (template knobs drawn per attempt); unusable
   replies, near-duplicates and prompts that overlap an evaluation set are dropped, counted, and
   written again up to ``prompts.max_attempts`` times;
2. for each target dimension, it writes the best answer at the dimension's ``good`` level, then
   rewrites it down to ``medium`` and ``poor`` on that dimension only (so the K answers differ
   mainly there, at a similar length); units whose answers differ too much in length are dropped;
3. with a judge, each unit's answers are ranked blind (shuffled, unlabelled order); units where
   the judge disagrees are dropped as label noise, and the agreement rate is reported.
Every reply is cached, every batch appended to the output logs (``GenerationStore``): a killed
run resumes where it stopped, and a request that failed is asked again on the next run.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lit_mrrml.backends.base import ChatBackend
from lit_mrrml.backends.cache import CachedBackend
from lit_mrrml.generate.cells import Cell, Slot, check_ids, plan_slots
from lit_mrrml.generate.manifest import mark_incomplete, write_outputs
from lit_mrrml.generate.options import (
    AnswerOptions,
    CellSelection,
    ContaminationOptions,
    DedupOptions,
    PromptOptions,
    SplitOptions,
    VerifyOptions,
)
from lit_mrrml.generate.run import GenerationRun, RunCounters
from lit_mrrml.generate.store import GenerationStore
from lit_mrrml.generate.templates import PromptTemplates
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.overlap import ContaminationGuard

log = logging.getLogger(__name__)
DEFAULT_TEMPLATES = "configs/generate/templates/v1.yaml"


class DataGenerator:
    """Writes ranked units for the cells of a rubric matrix with an LLM, optionally verified by a judge."""

    def __init__(
        self,
        matrix: str,
        output_dir: str,
        generator: ChatBackend,
        judge: ChatBackend | None = None,
        templates: str = DEFAULT_TEMPLATES,
        cells: CellSelection = CellSelection(),
        prompts: PromptOptions = PromptOptions(),
        answers: AnswerOptions = AnswerOptions(),
        verify: VerifyOptions = VerifyOptions(),
        dedup: DedupOptions = DedupOptions(),
        contamination: ContaminationOptions = ContaminationOptions(),
        split: SplitOptions = SplitOptions(),
        batch_size: int = 32,
        seed: int = 0,
        id_prefix: str = "gen",
        overwrite: bool = False,
        progress: bool = True,
    ) -> None:
        """
        Args:
            matrix: The rubric matrix YAML whose cells are generated for.
            output_dir: Folder of the run's files; a rerun with the same settings resumes there.
            generator: The LLM that writes prompts and answers.
            judge: The LLM that ranks each unit's answers blind; none: no verification.
            templates: The versioned prompt-template file.
            cells: Which cells get prompts, and how many.
            prompts: How user prompts are written.
            answers: How the K ranked answers are written.
            verify: How the judge's ranking is compared with the intended one.
            dedup: Near-duplicate prompts.
            contamination: Evaluation sets that prompts must not overlap.
            split: Shares of prompts in the train, val and test files.
            batch_size: Prompt slots per batch; each batch's results are written together.
            seed: Seed of every draw and request.
            id_prefix: Prefix of unit ids (``<prefix>-<hash>``), to keep runs apart when merged.
            overwrite: Delete the files of an earlier run in output_dir and start again.
            progress: Show a progress bar.
        """
        if answers.k not in (2, 3):
            raise ValueError(f"answers.k must be 2 or 3 (the matrix has good, medium and poor levels), got {answers.k}")
        if batch_size < 1 or prompts.max_attempts < 1:
            raise ValueError("batch_size and prompts.max_attempts must be at least 1")
        self.matrix_path, self.matrix = matrix, RubricMatrix.from_yaml(matrix)
        self.templates = PromptTemplates.load(templates, prompts.knob_weights)
        self.output_dir, self.generator, self.judge = Path(output_dir), generator, judge
        self.cells, self.prompts, self.answers, self.verify = cells, prompts, answers, verify
        self.dedup, self.contamination, self.split = dedup, contamination, split
        self.batch_size, self.seed, self.id_prefix = batch_size, seed, id_prefix
        self.overwrite, self.progress = overwrite, progress
        self.slots = plan_slots(self.matrix, cells, seed)
        files = contamination.files
        self.guard = (
            ContaminationGuard.from_files(files, contamination.threshold, contamination.ngram) if files else None
        )
        self.config_yaml: str | None = None  # the resolved config, saved beside the data by the command line
        if isinstance(answers.dimensions, list):
            check_ids(answers.dimensions, self.matrix.dimension_ids, "answers.dimensions", "dimension")
        self.planned_units = sum(len(self.target_dimensions(s.cell)) for s in self.slots)

    def target_dimensions(self, cell: Cell) -> list[str]:
        """The dimensions a prompt of ``cell`` gets units on."""
        chosen = self.answers.dimensions
        if chosen == "cell":
            return [cell.dimension]
        return list(self.matrix.dimension_ids) if chosen == "all" else list(chosen)

    def unit_key(self, slot: Slot, dimension: str) -> str:
        return f"{slot.key}/{dimension}"

    def unit_id(self, key: str) -> str:
        return f"{self.id_prefix}-{hashlib.sha1(f'{self.seed}:{key}'.encode()).hexdigest()[:12]}"

    def settings(self) -> dict[str, Any]:
        """The settings that fix the data: a resumed run must have the same.

        Left out, so that a resumed run may change them: the cells and quotas, the target
        dimensions (more units on the same prompts), ``prompts.max_attempts``, the split, the
        batch size and how backends are reached (address, concurrency, timeouts, retries).
        """
        prompts = {k: v for k, v in asdict(self.prompts).items() if k != "max_attempts"}
        return {
            "matrix_hash": self.matrix.content_hash(),
            "templates": self.templates.describe()["sha256"],
            "generator": self.generator.model_id,
            "judge": self.judge.model_id if self.judge is not None else None,
            "seed": self.seed,
            "id_prefix": self.id_prefix,
            "prompts": prompts,
            "answers": {k: v for k, v in asdict(self.answers).items() if k != "dimensions"},
            "verify": asdict(self.verify) if self.judge is not None else None,
            "dedup": asdict(self.dedup),
            "contamination": asdict(self.contamination),
        }

    def run(self) -> RunCounters:
        """Generate (or resume) everything planned; returns this run's counts."""
        return asyncio.run(self.arun())

    async def arun(self) -> RunCounters:
        store = GenerationStore(self.output_dir)
        resumed = store.prepare(self.settings(), self.overwrite)
        mark_incomplete(store.root / "manifest.json")  # before any work: a kill from here on leaves it false
        if self.config_yaml is not None:
            (store.root / "config.yaml").write_text(self.config_yaml, encoding="utf-8")
        state, counters = store.state(), RunCounters()
        generator = CachedBackend(self.generator, store.cache_dir / "generator.jsonl")
        judge = CachedBackend(self.judge, store.cache_dir / "judge.jsonl") if self.judge is not None else None
        if resumed:
            log.info("resuming %s: %d prompts and %d unit keys done", store.root, len(state.prompts), len(state.done))
        context = GenerationRun(self, store, state, counters, generator, judge)
        try:
            async with context.progress.running():
                for start in range(0, len(context.work), self.batch_size):
                    await context.batch(context.work[start : start + self.batch_size])
        finally:
            store.close()
            await generator.aclose()
            if judge is not None:
                await judge.aclose()
            counters.manifest = write_outputs(self, store, [generator, judge], counters)  # settles complete
        return counters
