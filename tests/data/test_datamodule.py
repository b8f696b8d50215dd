"""RubricDataModule: reading splits against the matrix, tokenizing, loaders, leaks and bad records."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from lit_mrrml.data.datamodule import RubricDataModule, SplitLeakError
from lit_mrrml.data.sampler import CellBalancedSampler
from lit_mrrml.data.units import BadRecordError
from lit_mrrml.models.backbone import BackboneSpec
from lit_mrrml.textio import NotUTF8Error
from tests.conftest import MATRIX_PATH, make_unit, write_jsonl

BATCH_KEYS = {"input_ids", "attention_mask", "anchor_index", "num_responses", "dimension", "scenario", "unit_ids"}


def datamodule(files: dict[str, Path], spec: BackboneSpec | None, **kwargs: Any) -> RubricDataModule:
    return RubricDataModule(
        matrix=str(MATRIX_PATH),
        train_files=[str(files["train"])] if "train" in files else None,
        val_files=[str(files["val"])] if "val" in files else None,
        test_files=[str(files["test"])] if "test" in files else None,
        backbone=spec,
        **kwargs,
    )


def test_setup_builds_every_split(unit_files: dict[str, Path], tiny_spec: BackboneSpec) -> None:
    dm = datamodule(unit_files, tiny_spec)
    dm.setup("fit")
    assert {split: len(ds) for split, ds in dm.datasets.items()} == {"train": 12, "val": 6, "test": 6, "predict": 6}
    assert dm.skipped == []


def test_train_batch_has_the_keys_and_shapes(unit_files: dict[str, Path], tiny_spec: BackboneSpec) -> None:
    dm = datamodule(unit_files, tiny_spec, batch_size=4)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == BATCH_KEYS
    b = 4
    k = int(batch["num_responses"].max())
    assert set(batch["num_responses"].tolist()) <= {2, 3}
    assert batch["input_ids"].shape[0] == b * k
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["input_ids"].shape[1] % 8 == 0
    assert batch["anchor_index"].shape == (b * k,)
    assert batch["dimension"].shape == batch["scenario"].shape == (b,)
    assert len(batch["unit_ids"]) == b


def test_val_batch_is_in_file_order(unit_files: dict[str, Path], tiny_spec: BackboneSpec) -> None:
    dm = datamodule(unit_files, tiny_spec, batch_size=2, eval_batch_size=3)
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    assert batch["unit_ids"] == ["u100", "u101", "u102"]
    assert batch["num_responses"].tolist() == [2, 3, 2]
    assert batch["input_ids"].shape[0] == 9
    dims = ["accuracy", "completeness", "communication_quality"]
    assert batch["dimension"].tolist() == [dm.matrix.dimension_index(d) for d in dims]
    assert batch["scenario"].tolist() == [dm.matrix.scenario_index("emergency_referrals")] * 3


def test_dimensions_come_from_the_matrix(unit_files: dict[str, Path]) -> None:
    dm = datamodule(unit_files, None)
    assert dm.num_dimensions == 6
    assert dm.dimension_names == list(dm.matrix.dimension_ids)
    assert "safety" in dm.dimension_names


def test_prompt_in_two_splits_raises_naming_both_units(
    unit_files: dict[str, Path], tiny_spec: BackboneSpec, tmp_path: Path
) -> None:
    train_prompt = make_unit(3)["prompt"][0]["content"]
    leaky = write_jsonl(tmp_path / "leaky_val.jsonl", [make_unit(100), make_unit(999, prompt=train_prompt)])
    dm = datamodule({**unit_files, "val": leaky}, tiny_spec)
    with pytest.raises(ValueError, match="prompt") as info:
        dm.setup("fit")
    message = str(info.value)
    assert "'u999'" in message and "'u3'" in message
    assert "val" in message and "train" in message


def test_bad_records_fail_by_default(unit_files: dict[str, Path], tiny_spec: BackboneSpec, tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "bad_train.jsonl", [make_unit(0), "{broken"])
    dm = datamodule({**unit_files, "train": train}, tiny_spec)
    with pytest.raises(BadRecordError, match=re.escape(f"{train}:2: ")):
        dm.setup("fit")


def test_skip_counts_and_logs_bad_records(
    unit_files: dict[str, Path], tiny_spec: BackboneSpec, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    train = write_jsonl(tmp_path / "bad_train.jsonl", [make_unit(0), "{broken", make_unit(1, k=1), make_unit(2)])
    dm = datamodule({**unit_files, "train": train}, tiny_spec, on_bad_record="skip")
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    assert len(dm.skipped) == 2
    assert dm.skipped[0].startswith(f"{train}:2: ")
    assert dm.skipped[1].startswith(f"{train}:3: ")
    assert len(dm.datasets["train"]) == 2
    logged = caplog.text
    assert f"{train}:2:" in logged and f"{train}:3:" in logged
    assert "2 bad record(s)" in logged


def test_predict_defaults_to_the_test_split(unit_files: dict[str, Path], tiny_spec: BackboneSpec) -> None:
    dm = datamodule(unit_files, tiny_spec, batch_size=100)
    dm.setup("predict")
    batch = next(iter(dm.predict_dataloader()))
    assert batch["unit_ids"] == [f"u{200 + i}" for i in range(6)]


def test_predict_files_override_the_test_split(
    unit_files: dict[str, Path], tiny_spec: BackboneSpec, tmp_path: Path
) -> None:
    predict = write_jsonl(tmp_path / "predict.jsonl", [make_unit(500), make_unit(501)])
    dm = datamodule(unit_files, tiny_spec, predict_files=[str(predict)], batch_size=100)
    dm.setup("predict")
    assert next(iter(dm.predict_dataloader()))["unit_ids"] == ["u500", "u501"]


def test_missing_backbone_raises(unit_files: dict[str, Path]) -> None:
    dm = datamodule(unit_files, None)
    with pytest.raises(ValueError, match="backbone"):
        dm.setup("fit")


def test_empty_split_loader_raises_a_clear_error(unit_files: dict[str, Path], tiny_spec: BackboneSpec) -> None:
    dm = datamodule({"train": unit_files["train"]}, tiny_spec)
    dm.setup("fit")
    with pytest.raises(ValueError, match=r"no val units: set data\.val_files"):
        dm.val_dataloader()


def test_loader_before_setup_raises(unit_files: dict[str, Path], tiny_spec: BackboneSpec) -> None:
    with pytest.raises(ValueError, match="no train units"):
        datamodule(unit_files, tiny_spec).train_dataloader()


def test_balance_cells_uses_the_cell_balanced_sampler(unit_files: dict[str, Path], tiny_spec: BackboneSpec) -> None:
    dm = datamodule(unit_files, tiny_spec, balance_cells=True, seed=7)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, CellBalancedSampler)
    assert loader.sampler.seed == 7
    assert len(loader.sampler) == 12


def test_without_balance_cells_the_train_loader_shuffles(unit_files: dict[str, Path], tiny_spec: BackboneSpec) -> None:
    dm = datamodule(unit_files, tiny_spec)
    dm.setup("fit")
    assert not isinstance(dm.train_dataloader().sampler, CellBalancedSampler)


def test_max_length_truncates_and_is_respected(unit_files: dict[str, Path], tiny_spec: BackboneSpec) -> None:
    dm = datamodule(unit_files, tiny_spec, max_length=16)
    dm.setup("fit")
    units = dm.datasets["train"].units
    assert all(u.truncated for u in units)
    assert all(len(seq) <= 16 for u in units for seq in u.input_ids)


def test_max_length_below_8_is_refused(unit_files: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="max_length"):
        datamodule(unit_files, None, max_length=4)


def test_missing_matrix_file_raises(unit_files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        RubricDataModule(matrix=str(tmp_path / "absent.yaml"), train_files=[str(unit_files["train"])])


def test_missing_unit_file_raises(tiny_spec: BackboneSpec, tmp_path: Path) -> None:
    dm = datamodule({"train": tmp_path / "absent.jsonl"}, tiny_spec)
    with pytest.raises(FileNotFoundError, match=r"absent\.jsonl"):
        dm.setup("fit")


COPIES = {
    "trailing space": lambda p: p + " ",
    "leading space": lambda p: " " + p,
    "upper case": str.upper,
    "other whitespace": lambda p: p.replace(" ", "  \n\t"),
}


@pytest.mark.parametrize("copy", COPIES.values(), ids=COPIES.keys())
def test_a_prompt_that_differs_in_case_or_whitespace_still_leaks(
    copy: Any, unit_files: dict[str, Path], tiny_spec: BackboneSpec, tmp_path: Path
) -> None:
    train_prompt = make_unit(3)["prompt"][0]["content"]
    assert copy(train_prompt) != train_prompt
    leaky = write_jsonl(tmp_path / "leaky_val.jsonl", [make_unit(999, prompt=copy(train_prompt))])
    dm = datamodule({**unit_files, "val": leaky}, tiny_spec)
    with pytest.raises(SplitLeakError) as info:
        dm.setup("fit")
    assert str(info.value) == (
        "prompt of unit 'u999' (val) also appears in train (unit 'u3'; prompts are compared ignoring case and "
        "whitespace): split ranked units by prompt so that no prompt is in two splits"
    )


def test_a_units_file_that_is_not_utf8_names_the_line_and_offset(
    unit_files: dict[str, Path], tiny_spec: BackboneSpec, tmp_path: Path
) -> None:
    good = make_unit(0)
    path = tmp_path / "latin1.jsonl"
    text = json.dumps(good) + "\n" + json.dumps(make_unit(1, prompt="Fièvre depuis hier?"), ensure_ascii=False)
    path.write_bytes(text.encode("latin-1") + b"\n")
    offset = path.read_bytes().index(b"\xe8")
    dm = datamodule({**unit_files, "train": path}, tiny_spec, on_bad_record="skip")  # not one bad record: the file
    with pytest.raises(NotUTF8Error) as info:
        dm.setup("fit")
    assert str(info.value) == (
        f"{path}:2: not UTF-8 text: byte 0xe8 at byte offset {offset} cannot be decoded (save the file as UTF-8)"
    )
