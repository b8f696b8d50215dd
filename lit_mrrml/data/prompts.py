"""PromptDataModule: the policy's prompts, screened for evaluation overlap, tokenized for rollouts.

Train batches come from ``PromptBatches`` (sharded by whole prompts, resumable mid-epoch); the
validation prompts come in file order, the same every time, so a run's validation rewards compare.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import lightning as L
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from lit_mrrml.data.datamodule import SplitLeakError
from lit_mrrml.data.encode import render_ids
from lit_mrrml.data.prompt_batches import EncodedPrompt, PromptBatches, collate_prompts
from lit_mrrml.data.prompt_records import PromptRecord, read_prompts
from lit_mrrml.data.units import OnBadRecord
from lit_mrrml.errors import InputError
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.models.backbone import BackboneSpec, load_tokenizer
from lit_mrrml.overlap import ContaminationGuard, prompt_text

log = logging.getLogger(__name__)
SPLITS = ("train", "val")


class PromptDataModule(L.LightningDataModule):
    """Policy prompts from JSONL files (prompt records, generated prompts, ranked units, HealthBench rows)."""

    def __init__(
        self,
        matrix: str,
        train_files: list[str] | None = None,
        val_files: list[str] | None = None,
        val_fraction: float = 0.0,
        backbone: BackboneSpec | None = None,
        max_prompt_length: int = 512,
        batch_size: int = 4,
        val_batch_size: int | None = None,
        max_val_prompts: int | None = None,
        contamination_files: list[str] | None = None,
        contamination_threshold: float = 0.5,
        on_bad_record: OnBadRecord = "fail",
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = True,
    ) -> None:
        """
        Args:
            matrix: Path of the rubric matrix YAML that scenarios and disciplines are checked against.
            train_files: JSONL files of training prompts: prompt records ``{"id", "messages", "scenario",
                "discipline"}``, the generator's ``prompts.jsonl``, ranked units (each distinct prompt
                once) or HealthBench rows (their theme gives the scenario).
            val_files: JSONL files of validation prompts, in the same formats; no prompt may also be
                in the training files.
            val_fraction: Without val_files, hold out this share of the training prompts (a seeded
                draw) for validation.
            backbone: The policy's backbone, whose tokenizer and chat template render the prompts with
                the generation prompt on (linked from ``model.backbone`` by the command line).
            max_prompt_length: Longest prompt in tokens; longer prompts lose their start (counted and
                logged).
            batch_size: Prompts per rollout batch on each rank (each gets the policy's G rollouts).
            val_batch_size: Prompts per validation batch (default: batch_size).
            max_val_prompts: Validate on at most this many prompts (the first ones).
            contamination_files: Evaluation files whose prompts must not be trained or validated on
                (``package:eval_framework/tasks/healthbench/data/healthbench_eval.jsonl``); prompts that
                overlap them are removed, counted and logged.
            contamination_threshold: Share of a prompt's word 5-grams found in one evaluation prompt
                from which it counts as contaminated.
            on_bad_record: ``fail`` stops at the first bad record; ``skip`` drops, counts and logs them.
            shuffle: Draw a new order of the training prompts every epoch.
            seed: Seed of the epoch orders (epoch e uses seed + e) and of the val_fraction draw.
            drop_last: Drop the training prompts that do not fill a last rollout batch on every rank.
        """
        super().__init__()
        if not 0.0 <= val_fraction < 1.0:
            raise InputError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
        if val_fraction and val_files:
            raise InputError("data: give val_files or val_fraction, not both")
        if max_prompt_length < 1:
            raise InputError(f"data.max_prompt_length must be at least 1 token, got {max_prompt_length}")
        self.matrix_path = matrix
        self.matrix = RubricMatrix.from_yaml(matrix)
        self.files = {"train": train_files or [], "val": val_files or []}
        self.val_fraction, self.backbone, self.max_prompt_length = val_fraction, backbone, max_prompt_length
        self.batch_size, self.val_batch_size = batch_size, val_batch_size or batch_size
        self.max_val_prompts = max_val_prompts
        self.contamination_files, self.contamination_threshold = contamination_files, contamination_threshold
        self.on_bad_record, self.shuffle, self.seed, self.drop_last = on_bad_record, shuffle, seed, drop_last
        self.prompts: dict[str, list[PromptRecord]] = {}
        self.encoded: dict[str, list[EncodedPrompt]] = {}
        self.skipped: list[str] = []
        self.removed: dict[str, int] = {}  # prompts removed per split for overlapping the evaluation files
        self.train_batches: PromptBatches | None = None
        self._train_state: dict[str, Any] | None = None  # restored before the train loader exists

    @property
    def num_dimensions(self) -> int:
        return len(self.matrix.dimensions)

    @property
    def dimension_names(self) -> list[str]:
        return list(self.matrix.dimension_ids)

    def read(self) -> dict[str, list[PromptRecord]]:
        """Read, split and screen the prompts once; refuses a prompt in both train and val."""
        if self.prompts:
            return self.prompts
        for split in SPLITS:
            self.prompts[split], skipped = read_prompts(self.files[split], self.matrix, self.on_bad_record)
            self.skipped += skipped
        for message in self.skipped:
            log.warning("skipped %s", message)
        if self.skipped:
            log.warning("skipped %d bad record(s) in all (on_bad_record: skip)", len(self.skipped))
        if self.val_fraction:
            self.prompts["train"], self.prompts["val"] = hold_out(self.prompts["train"], self.val_fraction, self.seed)
        check_leak(self.prompts["train"], self.prompts["val"])
        self._screen()
        if self.max_val_prompts is not None:
            self.prompts["val"] = self.prompts["val"][: self.max_val_prompts]
        return self.prompts

    def _screen(self) -> None:
        """Remove the prompts that overlap the contamination files, per split."""
        if not self.contamination_files:
            self.removed = dict.fromkeys(SPLITS, 0)
            return
        guard = ContaminationGuard.from_files(self.contamination_files, self.contamination_threshold)
        for split in SPLITS:
            kept = [p for p in self.prompts[split] if guard.check(prompt_text(p.message_dicts)) is None]
            self.removed[split] = len(self.prompts[split]) - len(kept)
            self.prompts[split] = kept
            if self.removed[split]:
                log.warning(
                    "%s: removed %d of %d prompt(s) that overlap the contamination files (threshold %.2f)",
                    split,
                    self.removed[split],
                    self.removed[split] + len(kept),
                    self.contamination_threshold,
                )

    def setup(self, stage: str | None = None) -> None:
        if self.encoded:
            return
        if self.backbone is None:
            raise ValueError("PromptDataModule needs `backbone` to tokenize (the CLI links it from model.backbone)")
        prompts, tokenizer = self.read(), load_tokenizer(self.backbone)
        for split in SPLITS:
            self.encoded[split] = [self.encode(p, tokenizer) for p in prompts[split]]
            truncated = sum(e.truncated for e in self.encoded[split])
            if truncated:
                log.warning(
                    "%s: %d of %d prompts lost their start to max_prompt_length=%d",
                    split,
                    truncated,
                    len(self.encoded[split]),
                    self.max_prompt_length,
                )

    def encode(self, prompt: PromptRecord, tokenizer: PreTrainedTokenizerBase) -> EncodedPrompt:
        """The prompt's token ids with the generation prompt on, the last max_prompt_length of them."""
        ids = render_ids(tokenizer, prompt.message_dicts, generation_prompt=True)
        scenario = -1 if prompt.scenario is None else self.matrix.scenario_index(prompt.scenario)
        kept = ids[-self.max_prompt_length :]
        return EncodedPrompt(prompt, tuple(kept), scenario, truncated=len(kept) < len(ids))

    def train_dataloader(self) -> PromptBatches:
        if not self.encoded.get("train"):
            raise InputError("no training prompts: set data.train_files (and check skipped or removed prompts)")
        train = self.encoded["train"]
        self.train_batches = PromptBatches(train, self.batch_size, self.shuffle, self.seed, self.drop_last)
        if self._train_state is not None:
            self.train_batches.load_state_dict(self._train_state)
            self._train_state = None
        return self.train_batches

    def val_dataloader(self) -> DataLoader[Any] | list[Any]:
        """The validation prompts in a fixed order (none: no validation)."""
        val = self.encoded.get("val", [])
        if not val:
            return []
        return DataLoader(val, batch_size=self.val_batch_size, shuffle=False, collate_fn=collate_prompts)  # type: ignore[arg-type]

    def state_dict(self) -> dict[str, Any]:
        """Where the training order stands, also when the fit loop does not restore the loader itself
        (a checkpoint taken at the end of an epoch-based run)."""
        return {"train_batches": self.train_batches.state_dict()} if self.train_batches is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._train_state = state_dict.get("train_batches")
        if self.train_batches is not None and self._train_state is not None:
            self.train_batches.load_state_dict(self._train_state)
            self._train_state = None


def hold_out(prompts: list[PromptRecord], fraction: float, seed: int) -> tuple[list[PromptRecord], list[PromptRecord]]:
    """(train, val): a seeded draw of ``fraction`` of the prompts (at least one) for validation, both
    in their original order."""
    count = max(1, round(fraction * len(prompts)))
    if count >= len(prompts):
        raise InputError(
            f"data.val_fraction={fraction} would hold out all {len(prompts)} training prompt(s): add prompts or "
            "lower it"
        )
    val = set(random.Random(seed).sample(range(len(prompts)), count))
    return [p for i, p in enumerate(prompts) if i not in val], [p for i, p in enumerate(prompts) if i in val]


def check_leak(train: list[PromptRecord], val: list[PromptRecord]) -> None:
    """Raise SplitLeakError if a validation prompt is also a training prompt (ignoring case and whitespace)."""
    owners = {p.prompt_key: p.id for p in train}
    for prompt in val:
        if prompt.prompt_key in owners:
            raise SplitLeakError(
                f"validation prompt '{prompt.id}' is also training prompt '{owners[prompt.prompt_key]}' (prompts are "
                "compared ignoring case and whitespace): remove it from data.train_files or data.val_files"
            )
