"""Preference formats in (TRL pairs, implicit prompts, ranked and scored lists; JSONL, JSON, parquet,
datasets folders), defaults, content-hash ids, and ranked units out as TRL pairs."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from lit_mrrml.data.formats import UnitDefaults, content_id, record_format, to_unit_record, unit_pairs
from lit_mrrml.data.units import BadRecordError, RankedUnit, parse_unit, read_units
from lit_mrrml.errors import InputError
from lit_mrrml.matrix import RubricMatrix
from tests.conftest import make_unit, write_jsonl

CELL = {"dimension": "safety", "scenario": "emergency_referrals", "discipline": "cardiology"}
DEFAULTS = UnitDefaults(**CELL)
USER = {"role": "user", "content": "My chest hurts. Should I worry?"}
SYSTEM = {"role": "system", "content": "You are a careful clinician."}
GOOD, BAD = "Yes: call emergency services if it spreads to your arm.", "No, rest it off."


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def unit_of(record: dict[str, Any], matrix: RubricMatrix, defaults: UnitDefaults | None = DEFAULTS) -> RankedUnit:
    return parse_unit(to_unit_record(record, defaults), matrix)


# ---- every format in --------------------------------------------------------------------------

FORMATS: dict[str, tuple[dict[str, Any], str, tuple[tuple[str, str], ...], tuple[str, ...]]] = {
    "trl_string": (
        {"prompt": USER["content"], "chosen": GOOD, "rejected": BAD},
        "trl",
        (("user", USER["content"]),),
        (GOOD, BAD),
    ),
    "trl_conversational": (
        {"prompt": [SYSTEM, USER], "chosen": [assistant(GOOD)], "rejected": [assistant(BAD)]},
        "trl",
        (("system", SYSTEM["content"]), ("user", USER["content"])),
        (GOOD, BAD),
    ),
    "trl_string_prompt_whole_conversations": (  # trl-internal-testing/sentiment-trl-style's shape
        {"prompt": USER["content"], "chosen": [USER, assistant(GOOD)], "rejected": [USER, assistant(BAD)]},
        "trl",
        (("user", USER["content"]),),
        (GOOD, BAD),
    ),
    "trl_implicit_prompt": (
        {"chosen": [SYSTEM, USER, assistant(GOOD)], "rejected": [SYSTEM, USER, assistant(BAD)]},
        "trl_implicit",
        (("system", SYSTEM["content"]), ("user", USER["content"])),
        (GOOD, BAD),
    ),
    "trl_implicit_multi_turn": (
        {
            "chosen": [USER, assistant("Where exactly?"), {"role": "user", "content": "Left side."}, assistant(GOOD)],
            "rejected": [USER, assistant("Where exactly?"), {"role": "user", "content": "Left side."}, assistant(BAD)],
        },
        "trl_implicit",
        (("user", USER["content"]), ("assistant", "Where exactly?"), ("user", "Left side.")),
        (GOOD, BAD),
    ),
    "ranked_best_first": (
        {"prompt": "Q?", "responses": ["good", "medium", "poor"]},
        "ranked",
        (("user", "Q?"),),
        ("good", "medium", "poor"),
    ),
    "ranked_with_ranks": (
        {"prompt": "Q?", "responses": ["medium", "poor", "good"], "ranks": [2, 3, 1]},
        "ranked",
        (("user", "Q?"),),
        ("good", "medium", "poor"),
    ),
    "completions_with_scores": (
        {"prompt": "Q?", "completions": ["medium", "good", "poor"], "scores": [6.5, 9, -1]},
        "completions",
        (("user", "Q?"),),
        ("good", "medium", "poor"),
    ),
    "completions_conversational_with_ranks": (
        {"prompt": [USER], "completions": [[assistant("poor")], [assistant("good")]], "ranks": [2, 1]},
        "completions",
        (("user", USER["content"]),),
        ("good", "poor"),
    ),
}


@pytest.mark.parametrize(("record", "kind", "prompt", "responses"), FORMATS.values(), ids=FORMATS.keys())
def test_every_format_becomes_a_ranked_unit(
    matrix: RubricMatrix, record: dict[str, Any], kind: str, prompt: tuple, responses: tuple
) -> None:
    assert record_format(record) == kind
    unit = unit_of(record, matrix)
    assert unit.prompt == prompt
    assert unit.responses == responses
    assert (unit.dimension, unit.scenario, unit.discipline) == ("safety", "emergency_referrals", "cardiology")
    assert re.fullmatch(r"[0-9a-f]{16}", unit.id)


def test_trl_string_record_is_this_native_record() -> None:
    record = {"prompt": "Q?", "chosen": "A.", "rejected": "B."}
    assert to_unit_record(record, DEFAULTS) == {
        "id": content_id({"prompt": "Q?", "responses": ["A.", "B."], **CELL}),
        "prompt": "Q?",
        **CELL,
        "responses": ["A.", "B."],
    }


def test_native_unit_passes_through_unchanged(matrix: RubricMatrix) -> None:
    record = make_unit(3, k=3, dimension="accuracy")
    assert to_unit_record(record, DEFAULTS) == record  # its own cell wins over the defaults
    assert unit_of(record, matrix) == parse_unit(record, matrix)


def test_defaults_fill_only_what_is_missing(matrix: RubricMatrix) -> None:
    record = {"prompt": "Q?", "chosen": "A.", "rejected": "B.", "scenario": "hedging", "id": "mine"}
    unit = unit_of(record, matrix)
    assert (unit.id, unit.dimension, unit.scenario, unit.discipline) == ("mine", "safety", "hedging", "cardiology")


def test_trl_agrees_with_our_implicit_prompt() -> None:
    data_utils = pytest.importorskip("trl.data_utils")
    record = FORMATS["trl_implicit_multi_turn"][0]
    theirs = data_utils.maybe_extract_prompt(record)
    mine = to_unit_record(record, DEFAULTS)
    assert mine["prompt"] == theirs["prompt"]
    assert mine["responses"] == [m["content"] for m in (*theirs["chosen"], *theirs["rejected"])]


# ---- content-hash ids -------------------------------------------------------------------------


def test_content_id_is_the_sha256_of_the_canonical_json() -> None:
    canonical = (  # by hand: sorted keys, no spaces, the string prompt as one user message
        '{"dimension":"safety","discipline":"cardiology","prompt":[{"content":"Q?","role":"user"}],'
        '"responses":["A.","B."],"scenario":"emergency_referrals"}'
    )
    expected = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
    assert to_unit_record({"prompt": "Q?", "chosen": "A.", "rejected": "B."}, DEFAULTS)["id"] == expected


def test_same_content_same_id_and_a_change_another() -> None:
    def id_of(record: dict[str, Any], defaults: UnitDefaults = DEFAULTS) -> str:
        return str(to_unit_record(record, defaults)["id"])

    base = {"prompt": "Q?", "chosen": "A.", "rejected": "B."}
    assert id_of(base) == id_of(dict(base))
    assert id_of(base) == id_of({"prompt": [{"role": "user", "content": "Q?"}], "chosen": "A.", "rejected": "B."})
    assert id_of(base) == id_of({"prompt": "Q?", "responses": ["A.", "B."]})  # one unit, two spellings
    assert id_of(base) != id_of(base | {"rejected": "C."})  # a changed response
    assert id_of(base) != id_of(base | {"chosen": "B.", "rejected": "A."})  # the other order
    assert id_of(base) != id_of(base, UnitDefaults("accuracy", "emergency_referrals", "cardiology"))  # another cell


def test_the_same_record_twice_is_a_duplicate_naming_why(tmp_path: Path, matrix: RubricMatrix) -> None:
    record = {"prompt": "Q?", "chosen": "A.", "rejected": "B."}
    path = write_jsonl(tmp_path / "pairs.jsonl", [record, record])
    unit_id = to_unit_record(record, DEFAULTS)["id"]
    with pytest.raises(BadRecordError) as info:
        read_units([path], matrix, defaults=DEFAULTS)
    assert str(info.value) == (
        f"{path}:2: duplicate unit id '{unit_id}' (an id made from the content: this unit is in the data twice) "
        "(set on_bad_record: skip to skip such records)"
    )


# ---- bad input, with its exact message ----------------------------------------------------------

EXPECTED = (
    "expected 'responses' (a ranked list, best first, or ordered by 'ranks' or 'scores'), 'completions' with "
    "'ranks' or 'scores', or 'chosen' and 'rejected' (TRL preference, with a 'prompt' or an implicit one)"
)
BAD_RECORDS = {
    "unknown_format": (
        {"question": "Q?", "answer": "A."},
        f"no known preference format: {EXPECTED}; this record has keys [answer, question]",
    ),
    "unpaired_preference": (
        {"prompt": "Q?", "completion": "A.", "label": True},
        f"no known preference format: {EXPECTED}; this record has keys [completion, label, prompt]; TRL unpaired "
        "preference ('completion', 'label') ranks nothing: pair its completions first",
    ),
    "chosen_equals_rejected": (
        {"prompt": "Q?", "chosen": "Same.", "rejected": "Same."},
        "two responses are identical: their order cannot be learned",
    ),
    "rejected_missing": (
        {"prompt": "Q?", "chosen": "A."},
        "a TRL preference record needs both 'chosen' and 'rejected'; 'rejected' is missing",
    ),
    "implicit_prompt_of_strings": (
        {"chosen": "Q? A.", "rejected": "Q? B."},
        "no 'prompt', and 'chosen' and 'rejected' are not both conversations (lists of messages): the prompt "
        "cannot be told from the answers; give a 'prompt'",
    ),
    "implicit_same_conversation": (
        {"chosen": [USER, assistant("A.")], "rejected": [USER, assistant("A.")]},
        "'chosen' and 'rejected' are the same conversation: their order cannot be learned",
    ),
    "implicit_nothing_shared": (
        {"chosen": [USER, assistant("A.")], "rejected": [{"role": "user", "content": "Other?"}, assistant("B.")]},
        "no 'prompt', and 'chosen' and 'rejected' start with different messages: an implicit prompt is the "
        "messages both conversations start with",
    ),
    "answer_of_two_messages": (
        {"prompt": [USER], "chosen": [assistant("A."), assistant("More.")], "rejected": [assistant("B.")]},
        "'chosen' must be a string or one assistant message (after the prompt's messages), got roles "
        "['assistant', 'assistant']",
    ),
    "answer_by_the_user": (
        {"prompt": "Q?", "chosen": [{"role": "user", "content": "A."}], "rejected": "B."},
        "'chosen' must be a string or one assistant message (after the prompt's messages), got roles ['user']",
    ),
    "completions_unordered": (
        {"prompt": "Q?", "completions": ["A.", "B."]},
        "'completions' need 'ranks' (1 = best) or 'scores' (higher is better) to order them (a list already "
        "best first is 'responses')",
    ),
    "tied_scores": (
        {"prompt": "Q?", "completions": ["A.", "B.", "C."], "scores": [3, 1, 3]},
        "responses 0 and 2 tie on scores (3): their order cannot be learned",
    ),
    "ranks_too_short": (
        {"prompt": "Q?", "responses": ["A.", "B.", "C."], "ranks": [1, 2]},
        "'ranks' must be a list of 3 finite numbers, one per response",
    ),
    "score_not_a_number": (
        {"prompt": "Q?", "completions": ["A.", "B."], "scores": [1, float("nan")]},
        "'scores' must be a list of 2 finite numbers, one per response",
    ),
    "ranks_and_scores": (
        {"prompt": "Q?", "completions": ["A.", "B."], "ranks": [1, 2], "scores": [2, 1]},
        "give 'ranks' or 'scores', not both",
    ),
    "not_an_object": (["a", "list"], "a unit must be a JSON object, got list"),
}


@pytest.mark.parametrize(("record", "reason"), BAD_RECORDS.values(), ids=BAD_RECORDS.keys())
def test_bad_record_has_its_exact_reason(matrix: RubricMatrix, record: Any, reason: str) -> None:
    with pytest.raises(BadRecordError) as info:
        unit_of(record, matrix)
    assert str(info.value) == reason


@pytest.mark.parametrize("key", ["dimension", "scenario", "discipline"])
def test_a_missing_matrix_id_with_no_default_names_the_key_and_the_fix(matrix: RubricMatrix, key: str) -> None:
    partial = UnitDefaults(**{k: v for k, v in CELL.items() if k != key})
    with pytest.raises(BadRecordError) as info:
        unit_of({"prompt": "Q?", "chosen": "A.", "rejected": "B."}, matrix, partial)
    assert str(info.value) == f"missing '{key}', and no default {key} is set (data.defaults.{key}, or convert --{key})"


def test_missing_default_in_a_file_is_reported_at_its_line(tmp_path: Path, matrix: RubricMatrix) -> None:
    path = write_jsonl(tmp_path / "pairs.jsonl", [make_unit(0), {"prompt": "Q?", "chosen": "A.", "rejected": "B."}])
    with pytest.raises(BadRecordError) as info:
        read_units([path], matrix)
    assert str(info.value) == (
        f"{path}:2: missing 'dimension', and no default dimension is set (data.defaults.dimension, or convert "
        "--dimension) (set on_bad_record: skip to skip such records)"
    )


DEFAULT_ERRORS = {
    "dimension": (
        UnitDefaults(dimension="safty"),
        "data.defaults.dimension: unknown dimension 'safty'; did you mean 'safety'?",
    ),
    "scenario": (
        UnitDefaults(scenario="hedgin"),
        "data.defaults.scenario: unknown scenario 'hedgin'; did you mean 'hedging'?",
    ),
    "discipline": (UnitDefaults(discipline="xyz"), "data.defaults.discipline: unknown discipline 'xyz'"),
}


@pytest.mark.parametrize(("defaults", "message"), DEFAULT_ERRORS.values(), ids=DEFAULT_ERRORS.keys())
def test_an_unknown_default_names_its_key_path(matrix: RubricMatrix, defaults: UnitDefaults, message: str) -> None:
    with pytest.raises(InputError) as info:
        defaults.check(matrix, "data.defaults.{key}")
    assert str(info.value) == message


def test_known_defaults_pass_the_check(matrix: RubricMatrix) -> None:
    DEFAULTS.check(matrix, "data.defaults.{key}")
    UnitDefaults().check(matrix, "data.defaults.{key}")


# ---- ranked units out as TRL pairs --------------------------------------------------------------

UNIT3 = RankedUnit("u7", (("user", "Q?"),), "safety", "emergency_referrals", "cardiology", ("good", "medium", "poor"))


def test_a_unit_of_three_gives_its_three_pairs_best_as_chosen() -> None:
    prompt = [{"role": "user", "content": "Q?"}]
    extra = {"unit_id": "u7", **CELL}
    assert unit_pairs(UNIT3) == [
        {"prompt": prompt, "chosen": [assistant("good")], "rejected": [assistant("medium")], "id": "u7:0-1", **extra},
        {"prompt": prompt, "chosen": [assistant("good")], "rejected": [assistant("poor")], "id": "u7:0-2", **extra},
        {"prompt": prompt, "chosen": [assistant("medium")], "rejected": [assistant("poor")], "id": "u7:1-2", **extra},
    ]


def test_string_pairs() -> None:
    assert [(p["prompt"], p["chosen"], p["rejected"], p["id"]) for p in unit_pairs(UNIT3, "string")] == [
        ("Q?", "good", "medium", "u7:0-1"),
        ("Q?", "good", "poor", "u7:0-2"),
        ("Q?", "medium", "poor", "u7:1-2"),
    ]


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_k_responses_give_k_choose_2_pairs_each_ordered(k: int) -> None:
    unit = RankedUnit("u", (("user", "Q?"),), "safety", "hedging", "cardiology", tuple(f"r{i}" for i in range(k)))
    pairs = unit_pairs(unit, "string")
    assert len(pairs) == k * (k - 1) // 2
    assert all(int(p["chosen"][1:]) < int(p["rejected"][1:]) for p in pairs)
    assert len({p["id"] for p in pairs}) == len(pairs)


def test_trl_recognises_our_conversational_pairs() -> None:
    data_utils = pytest.importorskip("trl.data_utils")
    assert all(data_utils.is_conversational(pair) for pair in unit_pairs(UNIT3))


def test_a_string_prompt_of_several_messages_is_refused() -> None:
    unit = RankedUnit("u1", (("system", "Be brief."), ("user", "Q?")), "safety", "hedging", "cardiology", ("a", "b"))
    with pytest.raises(BadRecordError) as info:
        unit_pairs(unit, "string")
    assert str(info.value) == (
        "unit 'u1' has a prompt of 2 messages, and a string prompt is one user turn: write the conversational "
        "prompt format"
    )


@pytest.mark.parametrize("prompt_format", ["conversational", "string"])
def test_round_trip_units_to_trl_to_units_for_k2(tmp_path: Path, matrix: RubricMatrix, prompt_format: Any) -> None:
    units = [parse_unit(make_unit(i, k=2, dimension=d), matrix) for i, d in enumerate(["safety", "accuracy"])]
    rows = [pair for unit in units for pair in unit_pairs(unit, prompt_format)]
    path = write_jsonl(tmp_path / "trl.jsonl", rows)
    back, skipped = read_units([path], matrix)
    assert back == units and skipped == []


def test_to_record_reads_back_to_the_same_unit(matrix: RubricMatrix) -> None:
    unit = parse_unit(make_unit(4, k=3, prompt="Is it urgent?"), matrix)
    assert parse_unit(json.loads(json.dumps(unit.to_record())), matrix) == unit


# ---- sources: .json arrays, parquet, datasets folders -----------------------------------------

PAIRS = [
    {"prompt": [USER], "chosen": [assistant(GOOD)], "rejected": [assistant(BAD)]},
    {
        "prompt": [{"role": "user", "content": "Fever in a baby?"}],
        "chosen": [assistant("See a doctor today.")],
        "rejected": [assistant("Ignore it.")],
    },
]


def expected_units(matrix: RubricMatrix) -> list[RankedUnit]:
    return [unit_of(record, matrix) for record in PAIRS]


def test_reads_a_json_array(tmp_path: Path, matrix: RubricMatrix) -> None:
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(PAIRS, indent=2), encoding="utf-8")
    assert read_units([path], matrix, defaults=DEFAULTS) == (expected_units(matrix), [])


def test_reads_parquet_and_names_a_bad_row(tmp_path: Path, matrix: RubricMatrix) -> None:
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "pairs.parquet"
    datasets.Dataset.from_list(PAIRS).to_parquet(str(path))
    assert read_units([path], matrix, defaults=DEFAULTS) == (expected_units(matrix), [])
    bad = tmp_path / "bad.parquet"
    datasets.Dataset.from_list([*PAIRS, PAIRS[0] | {"rejected": PAIRS[0]["chosen"]}]).to_parquet(str(bad))
    units, skipped = read_units([bad], matrix, "skip", defaults=DEFAULTS)
    assert units == expected_units(matrix)
    assert skipped == [f"{bad}:row 2: two responses are identical: their order cannot be learned"]


def test_reads_a_datasets_folder(tmp_path: Path, matrix: RubricMatrix) -> None:
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "pairs"
    datasets.Dataset.from_list(PAIRS).save_to_disk(str(folder))
    assert read_units([folder], matrix, defaults=DEFAULTS) == (expected_units(matrix), [])


def test_a_datasetdict_folder_names_its_splits(tmp_path: Path, matrix: RubricMatrix) -> None:
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "dd"
    split = datasets.Dataset.from_list(PAIRS)
    datasets.DatasetDict({"train": split, "test": split}).save_to_disk(str(folder))
    with pytest.raises(InputError) as info:
        read_units([folder], matrix, defaults=DEFAULTS)
    assert str(info.value) == (
        f"{folder}: a DatasetDict folder (splits: test, train): give one split's folder, such as {folder / 'test'}"
    )
    assert read_units([folder / "train"], matrix, defaults=DEFAULTS)[0] == expected_units(matrix)


def test_a_plain_folder_is_refused(tmp_path: Path, matrix: RubricMatrix) -> None:
    with pytest.raises(InputError) as info:
        read_units([tmp_path], matrix)
    assert str(info.value) == (
        f"{tmp_path}: a folder must be one written by datasets' save_to_disk (it has no state.json); give a "
        ".jsonl, .json or .parquet file, or such a folder"
    )


def test_without_the_extra_parquet_says_what_to_install(
    tmp_path: Path, matrix: RubricMatrix, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "pairs.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # the import now raises ImportError
    with pytest.raises(InputError) as info:
        read_units([path], matrix)
    assert str(info.value) == f"{path}: reading parquet files needs pyarrow: pip install lit_mrrml[datasets]"


def test_without_the_extra_a_datasets_folder_says_what_to_install(
    tmp_path: Path, matrix: RubricMatrix, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "state.json").write_text("{}", encoding="utf-8")
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(InputError) as info:
        read_units([tmp_path], matrix)
    assert str(info.value) == (
        f"{tmp_path}: reading a datasets folder needs the datasets package: pip install lit_mrrml[datasets]"
    )


def test_a_damaged_parquet_file_is_named(tmp_path: Path, matrix: RubricMatrix) -> None:
    pytest.importorskip("pyarrow")
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}: not a readable parquet file: "):
        read_units([path], matrix)


# ---- RubricDataModule on TRL files, with defaults ---------------------------------------------


def trl_files(tmp_path: Path) -> dict[str, Path]:
    """TRL pairs without any matrix id: six string pairs to train on, two conversational ones to validate."""
    train = [
        {"prompt": f"Question {i} about chest pain?", "chosen": f"Call for help {i}.", "rejected": f"Wait {i}."}
        for i in range(6)
    ]
    return {"train": write_jsonl(tmp_path / "train.jsonl", train), "val": write_jsonl(tmp_path / "val.jsonl", PAIRS)}


def test_datamodule_reads_trl_files_with_defaults(tmp_path: Path, tiny_spec: Any) -> None:
    from lit_mrrml.data.datamodule import RubricDataModule
    from tests.conftest import MATRIX_PATH

    files = trl_files(tmp_path)
    dm = RubricDataModule(
        matrix=str(MATRIX_PATH),
        train_files=[str(files["train"])],
        val_files=[str(files["val"])],
        defaults=UnitDefaults(dimension="safety", scenario="emergency_referrals", discipline="cardiology"),
        backbone=tiny_spec,
        batch_size=4,
        eval_batch_size=2,
        shuffle=False,
    )
    dm.setup("fit")
    assert {split: len(ds) for split, ds in dm.datasets.items()} == {"train": 6, "val": 2, "test": 0, "predict": 0}
    batch = next(iter(dm.train_dataloader()))
    assert batch["num_responses"].tolist() == [2, 2, 2, 2]
    assert batch["input_ids"].shape[0] == 8
    assert batch["dimension"].tolist() == [dm.matrix.dimension_index("safety")] * 4
    assert batch["scenario"].tolist() == [dm.matrix.scenario_index("emergency_referrals")] * 4
    first = {"prompt": "Question 0 about chest pain?", "responses": ["Call for help 0.", "Wait 0."], **CELL}
    assert batch["unit_ids"][0] == content_id(first)
    val = next(iter(dm.val_dataloader()))
    assert val["unit_ids"] == [u.id for u in expected_units(dm.matrix)]


def test_datamodule_refuses_an_unknown_default(tmp_path: Path) -> None:
    from lit_mrrml.data.datamodule import RubricDataModule
    from tests.conftest import MATRIX_PATH

    with pytest.raises(InputError) as info:
        RubricDataModule(matrix=str(MATRIX_PATH), defaults=UnitDefaults(dimension="safty"))
    assert str(info.value) == "data.defaults.dimension: unknown dimension 'safty'; did you mean 'safety'?"


def test_datamodule_without_defaults_names_the_line_and_the_key(tmp_path: Path, tiny_spec: Any) -> None:
    from lit_mrrml.data.datamodule import RubricDataModule
    from tests.conftest import MATRIX_PATH

    files = trl_files(tmp_path)
    dm = RubricDataModule(matrix=str(MATRIX_PATH), train_files=[str(files["train"])], backbone=tiny_spec)
    with pytest.raises(BadRecordError) as info:
        dm.setup("fit")
    assert str(info.value).startswith(f"{files['train']}:1: missing 'dimension', and no default dimension is set")


def test_jsonargparse_builds_the_defaults_from_yaml() -> None:
    from jsonargparse import ArgumentParser

    from lit_mrrml.data.datamodule import RubricDataModule
    from tests.conftest import MATRIX_PATH

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(RubricDataModule, "data")
    config = parser.parse_string(f"data:\n  matrix: {MATRIX_PATH}\n  defaults: {{dimension: safety}}\n")
    dm = parser.instantiate_classes(config).data
    assert dm.defaults == UnitDefaults(dimension="safety")
    flags = parser.parse_args([f"--data.matrix={MATRIX_PATH}", "--data.defaults.scenario=hedging"])
    assert parser.instantiate_classes(flags).data.defaults == UnitDefaults(scenario="hedging")
    assert "The dimension, scenario and discipline of every record" in parser.format_help()
    fields = ArgumentParser()
    fields.add_class_arguments(UnitDefaults)
    assert "Dimension id of every record that has no ``dimension``" in " ".join(fields.format_help().split())
