"""RubricDataModule: ranked units checked against the rubric matrix, tokenized for the backbone.

The files may hold any preference format that lit_mrrml.data.formats reads (native units, TRL
pairs, ranked or scored lists) in JSONL, JSON, parquet or a ``datasets`` folder; ``defaults`` gives
the matrix ids that their records lack.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset

from lit_mrrml.data.collate import RankedUnitCollator
from lit_mrrml.data.encode import EncodedUnit, encode_unit
from lit_mrrml.data.formats import UnitDefaults
from lit_mrrml.data.resumable import ResumableLoader
from lit_mrrml.data.sampler import CellBalancedSampler, EpochSampler
from lit_mrrml.data.units import OnBadRecord, RankedUnit, read_units
from lit_mrrml.errors import InputError
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.models.backbone import BackboneSpec, load_tokenizer

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test", "predict")


class SplitLeakError(InputError):
    """One prompt in two of the train, val and test splits."""


class EncodedUnits(Dataset[EncodedUnit]):
    """A list of encoded units as a map-style dataset."""

    def __init__(self, units: list[EncodedUnit]) -> None:
        self.units = units

    def __len__(self) -> int:
        return len(self.units)

    def __getitem__(self, index: int) -> EncodedUnit:
        return self.units[index]


class RubricDataModule(L.LightningDataModule):
    """Ranked units from JSONL files, split by prompt, tokenized with the backbone's chat template."""

    def __init__(
        self,
        matrix: str,
        train_files: list[str] | None = None,
        val_files: list[str] | None = None,
        test_files: list[str] | None = None,
        predict_files: list[str] | None = None,
        defaults: UnitDefaults | None = None,
        backbone: BackboneSpec | None = None,
        max_length: int = 512,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        on_bad_record: OnBadRecord = "fail",
        balance_cells: bool = False,
        shuffle: bool = True,
        seed: int | None = None,
    ) -> None:
        """
        Args:
            matrix: Path of the rubric matrix YAML that every unit is checked against.
            train_files: Ranked-unit JSONL files for training.
            val_files: Ranked-unit JSONL files for validation.
            test_files: Ranked-unit JSONL files for testing.
            predict_files: Ranked-unit JSONL files to score with ``predict`` (default: the test files).
                Every ``*_files`` entry may also be a ``.json`` array, a ``.parquet`` file or a
                ``datasets`` save_to_disk folder (``pip install lit_mrrml[datasets]``), in any preference
                format: native units, TRL ``prompt``/``chosen``/``rejected`` (or an implicit prompt),
                ``responses`` best first, or ``completions`` with ``ranks`` or ``scores``.
            defaults: The dimension, scenario and discipline of every record without its own, such
                as ``{dimension: safety, scenario: emergency_referrals, discipline: internal_medicine}``
                for TRL pairs; each is checked against the matrix. A record without an ``id`` gets one
                made from its content.
            backbone: The backbone whose tokenizer and chat template encode the units (linked
                from ``model.backbone`` by the command line).
            max_length: Longest sequence in tokens; longer units keep their responses and lose the
                start of the prompt.
            batch_size: Units per training batch (each unit holds K sequences).
            eval_batch_size: Units per validation, test and predict batch (default: batch_size).
            num_workers: DataLoader worker processes.
            on_bad_record: ``fail`` stops at the first bad record; ``skip`` drops, counts and logs them.
            balance_cells: Sample training units so that every (dimension, scenario, discipline) cell
                is equally likely (with replacement).
            shuffle: Shuffle the training units every epoch (when not cell-balanced).
            seed: Seed of the training order (the shuffle or the cell-balanced draws), mixed with the
                epoch; default: the run's ``seed_everything``, as Lightning's own DistributedSampler.
                The order never draws from the global RNG, so a resumed run sees the batches of
                the uninterrupted one (the loader resumes mid-epoch too: ``ResumableLoader``).
        """
        super().__init__()
        if max_length < 8:
            raise InputError(f"data.max_length must be at least 8 tokens, got {max_length}")
        self.matrix_path = matrix
        self.matrix = RubricMatrix.from_yaml(matrix)
        self.defaults = defaults
        if defaults is not None:
            defaults.check(self.matrix, "data.defaults.{key}")
        self.files = {"train": train_files, "val": val_files, "test": test_files, "predict": predict_files}
        self.backbone = backbone
        self.max_length, self.batch_size = max_length, batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers, self.on_bad_record = num_workers, on_bad_record
        self.balance_cells, self.shuffle, self.seed = balance_cells, shuffle, seed
        self.units: dict[str, list[RankedUnit]] = {}
        self.datasets: dict[str, EncodedUnits] = {}
        self.skipped: list[str] = []
        self.collator: RankedUnitCollator | None = None

    @property
    def num_dimensions(self) -> int:
        return len(self.matrix.dimensions)

    @property
    def dimension_names(self) -> list[str]:
        return list(self.matrix.dimension_ids)

    def read(self) -> dict[str, list[RankedUnit]]:
        """Read and check every split's files once; refuses a prompt that appears in two splits."""
        if self.units:
            return self.units
        seen: set[str] = set()
        for split in ("train", "val", "test"):
            paths = [Path(p) for p in self.files[split] or []]
            units, skipped = read_units(paths, self.matrix, self.on_bad_record, seen, self.defaults)
            self.units[split] = units
            self.skipped += skipped
        predict = self.files["predict"]
        if predict is None:
            self.units["predict"] = self.units["test"]
        else:
            paths = [Path(p) for p in predict]
            self.units["predict"], skipped = read_units(paths, self.matrix, self.on_bad_record, None, self.defaults)
            self.skipped += skipped
        for message in self.skipped:
            log.warning("skipped %s", message)
        if self.skipped:
            log.warning("skipped %d bad record(s) in all (on_bad_record: skip)", len(self.skipped))
        check_prompt_splits(self.units)
        return self.units

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        if self.backbone is None:
            raise ValueError("RubricDataModule needs `backbone` to tokenize (the CLI links it from model.backbone)")
        units = self.read()
        tokenizer = load_tokenizer(self.backbone)
        self.collator = RankedUnitCollator(int(tokenizer.pad_token_id))
        for split in SPLITS:
            encoded = [
                encode_unit(
                    unit,
                    tokenizer,
                    self.max_length,
                    self.matrix.dimension_index(unit.dimension),
                    self.matrix.scenario_index(unit.scenario),
                )
                for unit in units[split]
            ]
            truncated = sum(u.truncated for u in encoded)
            if truncated:
                log.warning(
                    "%s: %d of %d units truncated to max_length=%d", split, truncated, len(encoded), self.max_length
                )
            self.datasets[split] = EncodedUnits(encoded)

    def _dataset(self, split: str) -> EncodedUnits:
        dataset = self.datasets.get(split)
        if dataset is None or len(dataset) == 0:
            raise InputError(f"no {split} units: set data.{split}_files (and check skipped records)")
        return dataset

    def _loader(self, split: str) -> DataLoader[Any]:
        """An evaluation loader, in file order."""
        return DataLoader(
            self._dataset(split),
            batch_size=self.eval_batch_size,
            num_workers=self.num_workers,
            collate_fn=self.collator,
        )

    def train_sampler(self) -> EpochSampler:
        """This rank's seeded epoch sampler: cell-balanced draws or a permutation (the identity
        without shuffle), sharded over the trainer's data-parallel ranks."""
        layout = (self.trainer.distributed_sampler_kwargs if self.trainer is not None else None) or {}
        rank, world = layout.get("rank"), layout.get("num_replicas")
        seed = self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))
        if self.balance_cells:
            cells = [(u.dimension, u.scenario, u.discipline) for u in self.units["train"]]
            return CellBalancedSampler(cells, seed=seed, num_replicas=world, rank=rank)
        return EpochSampler(len(self._dataset("train")), self.shuffle, seed, num_replicas=world, rank=rank)

    def train_dataloader(self) -> ResumableLoader:
        dataset = self._dataset("train")
        return ResumableLoader(
            dataset, self.train_sampler(), self.batch_size, num_workers=self.num_workers, collate_fn=self.collator
        )

    def val_dataloader(self) -> DataLoader[Any]:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader[Any]:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader[Any]:
        return self._loader("predict")


def check_prompt_splits(units: dict[str, list[RankedUnit]]) -> None:
    """Raise if one prompt has units in two of train, val and test (a leak from training to evaluation);
    prompts are compared ignoring case and whitespace (``RankedUnit.prompt_key``)."""
    owner: dict[str, tuple[str, str]] = {}
    for split in ("train", "val", "test"):
        for unit in units.get(split, []):
            first = owner.setdefault(unit.prompt_key, (split, unit.id))
            if first[0] != split:
                raise SplitLeakError(
                    f"prompt of unit '{unit.id}' ({split}) also appears in {first[0]} (unit '{first[1]}'; prompts "
                    "are compared ignoring case and whitespace): split ranked units by prompt so that no prompt is "
                    "in two splits"
                )
