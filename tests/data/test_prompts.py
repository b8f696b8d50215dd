"""Policy prompts: the four record kinds, themes, dedupe, bad records, splits, contamination, batches."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from lit_mrrml.data.datamodule import SplitLeakError
from lit_mrrml.data.encode import render_ids
from lit_mrrml.data.prompt_batches import PromptBatches
from lit_mrrml.data.prompt_records import PromptRecord, read_prompts
from lit_mrrml.data.prompts import PromptDataModule
from lit_mrrml.data.units import BadRecordError
from lit_mrrml.errors import InputError
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.models.backbone import BackboneSpec, load_tokenizer
from tests.conftest import MATRIX_PATH, make_unit, write_jsonl

BATCH_KEYS = {"ids", "messages", "prompt_ids", "scenario", "scenario_ids"}


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def prompt_record(index: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"p{index}", "messages": user(f"Prompt number {index}: my ankle is swollen, what now?"), **extra}


def healthbench_row(prompt_id: str, text: str, tags: list[str]) -> dict[str, Any]:
    rubric = [{"criterion": "Advises urgent care.", "points": 5, "tags": ["axis:accuracy"]}]
    return {"prompt_id": prompt_id, "prompt": user(text), "rubrics": rubric, "example_tags": tags}


def generated(slot: str, text: str) -> dict[str, Any]:
    cell = {"dimension": "safety", "scenario": "hedging", "discipline": "pediatrics"}
    return {"slot": slot, "cell": cell, "attempt": 0, "prompt": user(text), "knobs": {}, "tokens": {}}


def test_each_record_kind_is_read_from_one_file(tmp_path: Path, matrix: RubricMatrix) -> None:
    system = [{"role": "system", "content": "You are a triage nurse."}]
    path = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            {"id": "a", "messages": system + user("Is a fever of 39 C dangerous?"), "scenario": "hedging"},
            {"messages": user("No id, no cell."), "discipline": "pharmacy"},
            generated("safety/hedging/pediatrics/0", "My toddler swallowed a coin."),
            make_unit(5, prompt="A ranked unit's prompt?"),
            healthbench_row("hb1", "Crushing chest pain for an hour.", ["theme:emergency_referrals"]),
        ],
    )
    prompts, skipped = read_prompts([path], matrix)
    assert skipped == []
    assert prompts == [
        PromptRecord(
            "a", (("system", "You are a triage nurse."), ("user", "Is a fever of 39 C dangerous?")), "hedging"
        ),
        PromptRecord("mixed:2", (("user", "No id, no cell."),), None, "pharmacy"),
        PromptRecord(
            "safety/hedging/pediatrics/0", (("user", "My toddler swallowed a coin."),), "hedging", "pediatrics"
        ),
        PromptRecord("u5", (("user", "A ranked unit's prompt?"),), "emergency_referrals", "cardiology"),
        PromptRecord("hb1", (("user", "Crushing chest pain for an hour."),), "emergency_referrals", None),
    ]
    assert prompts[0].message_dicts == system + user("Is a fever of 39 C dangerous?")


def test_ranked_units_sharing_a_prompt_are_kept_once(
    tmp_path: Path, matrix: RubricMatrix, caplog: pytest.LogCaptureFixture
) -> None:
    units = [
        make_unit(1, prompt="Same question?"),
        make_unit(2, prompt="  SAME   question? ", dimension="accuracy"),  # equal ignoring case and spacing
        make_unit(3, prompt="Another question?", dimension="completeness"),
        make_unit(4, prompt="Same question?", dimension="communication_quality"),
    ]
    with caplog.at_level(logging.INFO):
        prompts, _ = read_prompts([write_jsonl(tmp_path / "units.jsonl", units)], matrix)
    assert [p.id for p in prompts] == ["u1", "u3"]
    assert "2 record(s) repeat an earlier prompt and were kept once" in caplog.text


def test_healthbench_themes_map_to_scenarios_and_unmapped_rows_get_none(
    tmp_path: Path, matrix: RubricMatrix, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [
        healthbench_row("r1", "Sudden weakness on one side of my face.", ["theme:emergency_referrals"]),
        healthbench_row("r2", "Is ibuprofen fine with my blood pressure pills?", ["theme:hedging", "axis:x"]),
        healthbench_row("r3", "Summarise this discharge note.", ["physician_agreed_category:none"]),
    ]
    path = write_jsonl(tmp_path / "hb.jsonl", rows)
    with caplog.at_level(logging.WARNING):
        prompts, _ = read_prompts([path], matrix)
    assert [p.scenario for p in prompts] == ["emergency_referrals", "hedging", None]
    assert "1 HealthBench row(s) have no theme that a matrix scenario maps" in caplog.text

    data = matrix.to_dict()
    data["scenarios"][0]["healthbench_theme"] = None  # emergency_referrals no longer maps its theme
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        prompts, _ = read_prompts([path], RubricMatrix.from_dict(data))
    assert [p.scenario for p in prompts] == [None, "hedging", None]
    assert "2 HealthBench row(s) have no theme" in caplog.text


BAD_RECORDS = {
    "bad_json": ('{"id": "x", "messages": [', "invalid JSON: Expecting value"),
    "not_an_object": ('["a list"]', "a prompt record must be a JSON object, got list"),
    "missing_messages": ({"id": "x", "scenario": "hedging"}, "not a prompt record: expected 'messages'"),
    "last_turn_not_user": (
        {"id": "x", "messages": [*user("Hi"), {"role": "assistant", "content": "Hello."}]},
        "the messages must end with a user turn",
    ),
    "empty_content": ({"id": "x", "messages": user("  ")}, "messages[0].content is empty or not a string"),
    "bad_role": ({"id": "x", "messages": [{"role": "doctor", "content": "Hi"}]}, "messages[0] must be an object"),
    "unknown_scenario": (
        prompt_record(9, scenario="hedgin"),
        "unknown scenario 'hedgin'; did you mean 'hedging'?",
    ),
    "unknown_discipline": (
        prompt_record(9, discipline="cardiologie"),
        "unknown discipline 'cardiologie'; did you mean 'cardiology'?",
    ),
    "unknown_generated_scenario": (
        generated("s/emergency_referal/p/0", "Help?") | {"cell": {"scenario": "emergency_referal", "discipline": "x"}},
        "unknown scenario 'emergency_referal'; did you mean 'emergency_referrals'?",
    ),
    "generated_without_cell": ({"slot": "s/0", "prompt": user("Help?")}, "'cell' must be an object"),
    "bad_unit": (make_unit(9) | {"responses": ["Only one."]}, "a unit needs K >= 2 responses to rank, got 1"),
    "duplicate_id": (prompt_record(1) | {"messages": user("A different prompt, same id.")}, "duplicate prompt id 'p1'"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_a_bad_record_fails_with_file_and_line(tmp_path: Path, matrix: RubricMatrix, case: str) -> None:
    record, reason = BAD_RECORDS[case]
    path = write_jsonl(tmp_path / "prompts.jsonl", [prompt_record(1), record, prompt_record(3)])
    with pytest.raises(BadRecordError, match=re.escape(f"{path}:2: {reason}")):
        read_prompts([path], matrix)


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_a_bad_record_is_skipped_and_listed(tmp_path: Path, matrix: RubricMatrix, case: str) -> None:
    record, reason = BAD_RECORDS[case]
    path = write_jsonl(tmp_path / "prompts.jsonl", [prompt_record(1), record, prompt_record(3)])
    prompts, skipped = read_prompts([path], matrix, on_bad_record="skip")
    assert [p.id for p in prompts] == ["p1", "p3"]
    assert len(skipped) == 1 and skipped[0].startswith(f"{path}:2: {reason}")


def test_a_missing_file_is_named(tmp_path: Path, matrix: RubricMatrix) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(f"prompt file not found: {tmp_path / 'none.jsonl'}")):
        read_prompts([tmp_path / "none.jsonl"], matrix)


def prompt_file(tmp_path: Path, name: str, indices: range, **extra: Any) -> str:
    return str(write_jsonl(tmp_path / name, [prompt_record(i, **extra) for i in indices]))


def datamodule(spec: BackboneSpec | None, train: str, **kwargs: Any) -> PromptDataModule:
    return PromptDataModule(matrix=str(MATRIX_PATH), train_files=[train], backbone=spec, **kwargs)


def test_batches_have_the_documented_format(tmp_path: Path, tiny_spec: BackboneSpec) -> None:
    records = [prompt_record(0, scenario="hedging"), prompt_record(1)]
    dm = datamodule(tiny_spec, str(write_jsonl(tmp_path / "t.jsonl", records)), batch_size=2, shuffle=False)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader, PromptBatches) and len(loader) == 1
    batch = next(iter(loader))
    assert set(batch) == BATCH_KEYS
    assert batch["ids"] == ["p0", "p1"] and batch["scenario_ids"] == ["hedging", None]
    assert batch["messages"] == [records[0]["messages"], records[1]["messages"]]
    assert torch.equal(batch["scenario"], torch.tensor([dm.matrix.scenario_index("hedging"), -1]))
    tokenizer = load_tokenizer(tiny_spec)
    expected = render_ids(tokenizer, records[0]["messages"], generation_prompt=True)
    assert batch["prompt_ids"][0] == expected
    assert tokenizer.decode(expected).endswith("<|im_start|>assistant\n")  # the generation prompt is on
    assert dm.num_dimensions == 6 and dm.dimension_names == list(dm.matrix.dimension_ids)


def test_long_prompts_lose_their_start_and_are_counted(
    tmp_path: Path, tiny_spec: BackboneSpec, caplog: pytest.LogCaptureFixture
) -> None:
    dm = datamodule(tiny_spec, prompt_file(tmp_path, "t.jsonl", range(3)), max_prompt_length=6)
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    full = render_ids(load_tokenizer(tiny_spec), dm.prompts["train"][0].message_dicts, generation_prompt=True)
    assert dm.encoded["train"][0].prompt_ids == tuple(full[-6:])
    assert "train: 3 of 3 prompts lost their start to max_prompt_length=6" in caplog.text


def test_contamination_removes_a_prompt_copied_from_an_evaluation_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lifted = (
        "I am 58 and for the last hour I have had a crushing pain in the middle of my chest that spreads to my "
        "left arm and jaw, I am sweating and feel sick, should I wait for my GP appointment tomorrow morning?"
    )
    reference = write_jsonl(tmp_path / "healthbench_like.jsonl", [healthbench_row("e1", lifted, ["theme:hedging"])])
    train = write_jsonl(tmp_path / "t.jsonl", [prompt_record(1), {"id": "copy", "messages": user(lifted.upper())}])
    val = prompt_file(tmp_path, "v.jsonl", range(10, 12))
    dm = PromptDataModule(
        str(MATRIX_PATH), [str(train)], [val], contamination_files=[str(reference)], contamination_threshold=0.5
    )
    with caplog.at_level(logging.WARNING):
        prompts = dm.read()
    assert [p.id for p in prompts["train"]] == ["p1"] and len(prompts["val"]) == 2
    assert dm.removed == {"train": 1, "val": 0}
    assert "train: removed 1 of 2 prompt(s) that overlap the contamination files" in caplog.text


def test_val_fraction_holds_out_a_seeded_disjoint_share(tmp_path: Path) -> None:
    train = prompt_file(tmp_path, "t.jsonl", range(20))
    splits = [datamodule(None, train, val_fraction=0.25, seed=seed).read() for seed in (3, 3, 4)]
    ids = [([p.id for p in s["train"]], [p.id for p in s["val"]]) for s in splits]
    assert ids[0] == ids[1] and ids[0] != ids[2]
    kept, held = ids[0]
    assert len(held) == 5 and len(kept) == 15 and not set(kept) & set(held)
    assert sorted(kept + held, key=lambda i: int(i[1:])) == [f"p{i}" for i in range(20)]
    assert datamodule(None, train, val_fraction=0.25, max_val_prompts=2, seed=3).read()["val"] == splits[0]["val"][:2]


def test_a_prompt_in_train_and_val_is_refused(tmp_path: Path) -> None:
    train = prompt_file(tmp_path, "t.jsonl", range(3))
    leak = {"id": "v1", "messages": user("PROMPT number 1:  my ankle is swollen, what now?")}
    val = str(write_jsonl(tmp_path / "v.jsonl", [leak]))
    with pytest.raises(SplitLeakError, match="validation prompt 'v1' is also training prompt 'p1'"):
        datamodule(None, train, val_files=[val]).read()
    with pytest.raises(InputError, match="val_files or val_fraction, not both"):
        datamodule(None, train, val_files=[val], val_fraction=0.2)


def test_val_prompts_come_in_file_order(tmp_path: Path, tiny_spec: BackboneSpec) -> None:
    val = prompt_file(tmp_path, "v.jsonl", range(10, 15))
    dm = datamodule(tiny_spec, prompt_file(tmp_path, "t.jsonl", range(4)), val_files=[val], val_batch_size=2)
    dm.setup("fit")
    batches = [b["ids"] for b in dm.val_dataloader()]
    assert batches == [["p10", "p11"], ["p12", "p13"], ["p14"]]
    assert batches == [b["ids"] for b in dm.val_dataloader()]
    no_val = datamodule(tiny_spec, prompt_file(tmp_path, "t.jsonl", range(4)))
    no_val.setup("fit")
    assert no_val.val_dataloader() == []


def test_no_training_prompts_is_refused(tmp_path: Path, tiny_spec: BackboneSpec) -> None:
    dm = datamodule(tiny_spec, str(write_jsonl(tmp_path / "t.jsonl", [""])))
    dm.setup("fit")
    with pytest.raises(InputError, match="no training prompts"):
        dm.train_dataloader()
