"""SFTDataModule: the cold start's conversations, tokenized with labels on the assistant tokens.

A batch is right-padded ``input_ids`` (B, T), ``attention_mask`` (B, T) and ``labels`` (B, T)
(-100 on every token that is not trained on, padding included); ``labels != -100`` counts the
assistant tokens the loss averages over.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from lit_mrrml.data.chat import IGNORE, EncodedChat, encode_chat, end_of_turn_ids, read_chats
from lit_mrrml.data.units import OnBadRecord
from lit_mrrml.errors import InputError
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.models.backbone import BackboneSpec, load_tokenizer

log = logging.getLogger(__name__)
SPLITS = ("train", "val")


class SFTCollator:
    """Right-pads encoded conversations into (B, T) tensors, T rounded up to ``pad_to_multiple_of``."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int = 8) -> None:
        self.pad_token_id, self.pad_to_multiple_of = pad_token_id, pad_to_multiple_of

    def __call__(self, examples: Sequence[EncodedChat]) -> dict[str, torch.Tensor]:
        longest = max(len(e.input_ids) for e in examples)
        t = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(examples), t), self.pad_token_id, dtype=torch.long)  # (B, T)
        attention_mask = torch.zeros((len(examples), t), dtype=torch.long)  # (B, T)
        labels = torch.full((len(examples), t), IGNORE, dtype=torch.long)  # (B, T), -100: not trained on
        for row, example in enumerate(examples):
            n = len(example.input_ids)
            input_ids[row, :n] = torch.tensor(example.input_ids, dtype=torch.long)
            attention_mask[row, :n] = 1
            labels[row, :n] = torch.tensor(example.labels, dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class SFTDataModule(L.LightningDataModule):
    """Chat JSONL and ranked units (their best answers) for supervised fine-tuning of the policy."""

    def __init__(
        self,
        matrix: str | None = None,
        train_files: list[str] | None = None,
        val_files: list[str] | None = None,
        backbone: BackboneSpec | None = None,
        max_length: int = 1024,
        batch_size: int = 4,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        on_bad_record: OnBadRecord = "fail",
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        """
        Args:
            matrix: Path of the rubric matrix YAML; needed to read ranked-unit files (their records
                are checked against it), optional for chat files.
            train_files: JSONL files for training: chats ``{"messages": [...]}`` (every assistant turn
                is trained on) and ranked units (the prompt and its best answer, ``responses[0]``).
            val_files: JSONL files for validation, in the same formats.
            backbone: The policy's backbone, whose tokenizer and chat template render the
                conversations (linked from ``model.backbone`` by the command line).
            max_length: Longest sequence in tokens; longer conversations lose their end (counted and
                logged), and one left without assistant tokens is dropped.
            batch_size: Conversations per training batch.
            eval_batch_size: Conversations per validation batch (default: batch_size).
            num_workers: DataLoader worker processes.
            on_bad_record: ``fail`` stops at the first bad record; ``skip`` drops, counts and logs them.
            shuffle: Shuffle the training conversations every epoch.
            seed: Seed of the shuffle.
        """
        super().__init__()
        if max_length < 2:
            raise InputError(f"data.max_length must be at least 2 tokens, got {max_length}")
        self.matrix = RubricMatrix.from_yaml(matrix) if matrix is not None else None
        self.files = {"train": train_files or [], "val": val_files or []}
        self.backbone, self.max_length = backbone, max_length
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers, self.on_bad_record, self.shuffle, self.seed = num_workers, on_bad_record, shuffle, seed
        self.datasets: dict[str, list[EncodedChat]] = {}
        self.skipped: list[str] = []
        self.collator: SFTCollator | None = None

    @property
    def num_dimensions(self) -> int | None:
        return len(self.matrix.dimensions) if self.matrix is not None else None

    @property
    def dimension_names(self) -> list[str] | None:
        return list(self.matrix.dimension_ids) if self.matrix is not None else None

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        if self.backbone is None:
            raise ValueError("SFTDataModule needs `backbone` to tokenize (the CLI links it from model.backbone)")
        tokenizer = load_tokenizer(self.backbone)
        self.collator = SFTCollator(int(tokenizer.pad_token_id))
        end_ids = end_of_turn_ids(tokenizer)
        for split in SPLITS:
            examples, skipped = read_chats(self.files[split], self.matrix, self.on_bad_record)
            self.skipped += skipped
            encoded = [encode_chat(e, tokenizer, self.max_length, end_ids) for e in examples]
            self.datasets[split] = self._keep_trainable(split, encoded)
        for message in self.skipped:
            log.warning("skipped %s", message)
        if self.skipped:
            log.warning("skipped %d bad record(s) in all (on_bad_record: skip)", len(self.skipped))

    def _keep_trainable(self, split: str, encoded: list[EncodedChat]) -> list[EncodedChat]:
        """The examples with an assistant token left, warning about cut and dropped ones."""
        truncated = sum(e.truncated for e in encoded)
        kept = [e for e in encoded if any(label != IGNORE for label in e.labels)]
        if truncated:
            log.warning(
                "%s: %d of %d conversations lost their end to max_length=%d",
                split,
                truncated,
                len(encoded),
                self.max_length,
            )
        if len(kept) < len(encoded):
            log.warning(
                "%s: dropped %d conversation(s) left without an assistant token by max_length=%d",
                split,
                len(encoded) - len(kept),
                self.max_length,
            )
        return kept

    def _loader(self, split: str, **kwargs: Any) -> DataLoader[Any]:
        dataset = self.datasets.get(split)
        if not dataset:
            raise InputError(f"no {split} conversations: set data.{split}_files (and check skipped records)")
        batch_size = self.batch_size if split == "train" else self.eval_batch_size
        return DataLoader(
            dataset,  # type: ignore[arg-type]
            batch_size=batch_size,
            num_workers=self.num_workers,
            collate_fn=self.collator,
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader[Any]:
        return self._loader("train", shuffle=self.shuffle, generator=torch.Generator().manual_seed(self.seed))

    def val_dataloader(self) -> DataLoader[Any] | list[Any]:
        """The validation conversations in file order (none: no validation)."""
        return self._loader("val") if self.datasets.get("val") else []
