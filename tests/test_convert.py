"""``python -m lit_mrrml convert``: TRL pairs and other formats in, checked units or TRL pairs out,
written whole or not at all, without importing torch; and ``fit`` on TRL files with defaults."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from lit_mrrml.cli import main
from lit_mrrml.convert import command
from lit_mrrml.convert.command import convert_command
from lit_mrrml.convert.output import AtomicJSONL
from lit_mrrml.data.formats import UnitDefaults, to_unit_record
from lit_mrrml.data.units import parse_unit
from lit_mrrml.matrix import RubricMatrix
from tests.conftest import MATRIX_PATH, ROOT, make_unit, run_fresh, write_jsonl

CELL = ["--dimension", "safety", "--scenario", "emergency_referrals", "--discipline", "cardiology"]
DEFAULTS = UnitDefaults("safety", "emergency_referrals", "cardiology")
PAIRS = [
    {
        "prompt": "My chest hurts when I climb stairs. Should I worry?",
        "chosen": "See a doctor soon.",
        "rejected": "No.",
    },
    {
        "prompt": [{"role": "user", "content": "Can I take ibuprofen with warfarin?"}],
        "chosen": [{"role": "assistant", "content": "Ask your doctor first: it raises the bleeding risk."}],
        "rejected": [{"role": "assistant", "content": "Sure, any time."}],
    },
    {
        "chosen": [{"role": "user", "content": "A 40 C fever in a baby?"}, {"role": "assistant", "content": "Go now."}],
        "rejected": [{"role": "user", "content": "A 40 C fever in a baby?"}, {"role": "assistant", "content": "Wait."}],
    },
]


def convert(*args: str) -> int:
    return main(["convert", "--matrix", str(MATRIX_PATH), "--no-progress", *args])


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_trl_pairs_become_units(tmp_path: Path, matrix: RubricMatrix, capsys: pytest.CaptureFixture[str]) -> None:
    source, out = write_jsonl(tmp_path / "pairs.jsonl", PAIRS), tmp_path / "units.jsonl"
    assert convert("--input", str(source), "--output", str(out), *CELL) == 0
    expected = [parse_unit(to_unit_record(r, DEFAULTS), matrix).to_record() for r in PAIRS]
    assert read_jsonl(out) == expected
    assert [u["responses"][0] for u in expected] == ["See a doctor soon.", PAIRS[1]["chosen"][0]["content"], "Go now."]
    assert capsys.readouterr().out == f"convert: 3 records in, 3 units out to {out}, 0 skipped\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.jsonl", "units.jsonl"]  # no temporary file left


def test_units_become_their_pairs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, out = write_jsonl(tmp_path / "units.jsonl", [make_unit(0, k=3), make_unit(1, k=2)]), tmp_path / "trl.jsonl"
    assert convert("--input", str(source), "--output", str(out), "--to", "trl", "--prompt-format", "string") == 0
    rows = read_jsonl(out)
    answers = make_unit(0, k=3)["responses"]
    assert [(r["id"], r["chosen"], r["rejected"]) for r in rows[:3]] == [
        ("u0:0-1", answers[0], answers[1]),
        ("u0:0-2", answers[0], answers[2]),
        ("u0:1-2", answers[1], answers[2]),
    ]
    assert rows[3] == {
        "prompt": "Question number 1 about chest pain?",
        "chosen": make_unit(1)["responses"][0],
        "rejected": make_unit(1)["responses"][1],
        "id": "u1",
        "unit_id": "u1",
        "dimension": "safety",
        "scenario": "emergency_referrals",
        "discipline": "cardiology",
    }
    assert capsys.readouterr().out == f"convert: 2 records in, 4 TRL pairs (from 2 units) out to {out}, 0 skipped\n"


def test_round_trip_through_the_command_keeps_k2_units(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    units = write_jsonl(tmp_path / "units.jsonl", [make_unit(i, k=2) for i in range(3)])
    trl, back = tmp_path / "trl.jsonl", tmp_path / "back.jsonl"
    assert convert("--input", str(units), "--output", str(trl), "--to", "trl") == 0
    assert convert("--input", str(trl), "--output", str(back)) == 0
    assert read_jsonl(back) == read_jsonl(units)


def test_several_inputs_of_several_kinds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    datasets = pytest.importorskip("datasets")
    parquet = tmp_path / "pairs.parquet"
    datasets.Dataset.from_list(PAIRS[1:]).to_parquet(str(parquet))
    jsonl, out = write_jsonl(tmp_path / "pairs.jsonl", PAIRS[:1]), tmp_path / "units.jsonl"
    assert convert("--input", str(jsonl), str(parquet), "--output", str(out), *CELL) == 0
    assert [u["prompt"][0]["content"] for u in read_jsonl(out)] == [
        PAIRS[0]["prompt"],
        PAIRS[1]["prompt"][0]["content"],
        "A 40 C fever in a baby?",
    ]


def test_skip_lists_the_bad_records_and_counts_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = [PAIRS[0], {"question": "Q?"}, "not json", PAIRS[0] | {"rejected": PAIRS[0]["chosen"]}]
    source, out = write_jsonl(tmp_path / "pairs.jsonl", records), tmp_path / "units.jsonl"
    assert convert("--input", str(source), "--output", str(out), *CELL, "--on-bad-record", "skip") == 0
    captured = capsys.readouterr()
    assert captured.out == f"convert: 4 records in, 1 units out to {out}, 3 skipped\n"
    lines = captured.err.splitlines()
    assert [line.split(": ")[0] for line in lines] == [f"skipped {source}:{n}" for n in (2, 3, 4)]
    assert lines[2] == f"skipped {source}:4: two responses are identical: their order cannot be learned"
    assert len(read_jsonl(out)) == 1


def test_a_bad_record_stops_it_and_leaves_the_old_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "pairs.jsonl", [PAIRS[0], {"question": "Q?"}])
    out = tmp_path / "units.jsonl"
    out.write_text("the previous output\n", encoding="utf-8")
    assert convert("--input", str(source), "--output", str(out), *CELL) == 2
    assert capsys.readouterr().err == (
        f"error: {source}:2: no known preference format: expected 'responses' (a ranked list, best first, or "
        "ordered by 'ranks' or 'scores'), 'completions' with 'ranks' or 'scores', or 'chosen' and 'rejected' (TRL "
        "preference, with a 'prompt' or an implicit one); this record has keys [question] (add --on-bad-record "
        "skip to skip such records)\n"
    )
    assert out.read_text(encoding="utf-8") == "the previous output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.jsonl", "units.jsonl"]


def test_a_missing_id_with_no_default_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, out = write_jsonl(tmp_path / "pairs.jsonl", PAIRS), tmp_path / "units.jsonl"
    assert convert("--input", str(source), "--output", str(out), "--dimension", "safety") == 2
    assert capsys.readouterr().err == (
        f"error: {source}:1: missing 'scenario', and no default scenario is set (data.defaults.scenario, or "
        "convert --scenario) (add --on-bad-record skip to skip such records)\n"
    )
    assert not out.exists()


def test_an_unknown_default_names_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    assert convert("--input", str(source), "--output", str(tmp_path / "o.jsonl"), "--dimension", "safty") == 2
    assert capsys.readouterr().err == "error: --dimension: unknown dimension 'safty'; did you mean 'safety'?\n"


def test_a_missing_input_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert convert("--input", str(tmp_path / "absent.jsonl"), "--output", str(tmp_path / "o.jsonl")) == 2
    assert capsys.readouterr().err == f"error: input file not found: {tmp_path / 'absent.jsonl'}\n"


def test_a_string_prompt_of_several_turns_is_refused_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    system = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q?"}]
    source = write_jsonl(tmp_path / "units.jsonl", [make_unit(0), make_unit(1) | {"prompt": system}])
    out = tmp_path / "trl.jsonl"
    assert convert("--input", str(source), "--output", str(out), "--to", "trl", "--prompt-format", "string") == 2
    assert capsys.readouterr().err == (
        f"error: {source}:2: unit 'u1' has a prompt of 2 messages, and a string prompt is one user turn: write the "
        "conversational prompt format (add --on-bad-record skip to skip such records)\n"
    )
    assert not out.exists()


def test_an_interrupted_write_leaves_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source, out = write_jsonl(tmp_path / "pairs.jsonl", PAIRS), tmp_path / "units.jsonl"
    out.write_text("the previous output\n", encoding="utf-8")
    real_write = AtomicJSONL.write

    def write_then_stop(self: AtomicJSONL, record: dict[str, Any]) -> None:
        if self.count == 2:
            raise KeyboardInterrupt  # ctrl-C after two lines
        real_write(self, record)

    monkeypatch.setattr(AtomicJSONL, "write", write_then_stop)
    with pytest.raises(KeyboardInterrupt):
        convert_command(["--matrix", str(MATRIX_PATH), "--input", str(source), "--output", str(out), *CELL])
    assert out.read_text(encoding="utf-8") == "the previous output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.jsonl", "units.jsonl"]


def test_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        convert_command(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: python -m lit_mrrml convert")
    for option in ("--matrix", "--input", "--output", "--to", "--dimension", "--scenario", "--discipline"):
        assert option in text
    assert "--prompt-format {conversational,string}" in text and "--on-bad-record {fail,skip}" in text


def test_progress_draws_on_a_terminal_only(tmp_path: Path, matrix: RubricMatrix) -> None:
    from rich.console import Console

    source = write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    terminal = Console(file=open(os.devnull, "w"), force_terminal=True)  # noqa: SIM115
    result = command.convert([source], tmp_path / "units.jsonl", matrix, DEFAULTS, console=terminal)
    terminal.file.close()
    assert (result.records, result.units, result.lines, result.skipped) == (3, 3, 3, [])


def test_convert_imports_no_torch_transformers_or_lightning(tmp_path: Path) -> None:
    """The whole command, from ``python -m lit_mrrml``'s entry point, in a fresh process."""
    source = write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    script = (
        "from lit_mrrml.cli import main\n"
        f"argv = ['convert', '--matrix', {str(MATRIX_PATH)!r}, '--input', {str(source)!r}, "
        f"'--output', {str(tmp_path / 'u.jsonl')!r}, '--dimension', 'safety', '--scenario', 'hedging', "
        "'--discipline', 'cardiology']\n"
        "assert main(argv) == 0\n"
        f"assert main(['convert', '--matrix', {str(MATRIX_PATH)!r}, '--input', {str(tmp_path / 'u.jsonl')!r}, "
        f"'--output', {str(tmp_path / 't.jsonl')!r}, '--to', 'trl']) == 0\n"
    )
    assert run_fresh(script, ["torch", "transformers", "lightning", "pytorch_lightning"]).imported == set()
    assert len(read_jsonl(tmp_path / "t.jsonl")) == 3


# ---- the README's "Bring your data" commands ---------------------------------------------------


def test_fit_on_trl_files_with_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``fit`` straight on TRL pairs: the config's data keys, with the matrix ids from ``defaults``."""
    monkeypatch.chdir(ROOT)
    train = [
        {"prompt": f"Question {i} about chest pain?", "chosen": f"Call for help {i}.", "rejected": f"Wait {i}."}
        for i in range(8)
    ]
    train_file, val_file = write_jsonl(tmp_path / "train.jsonl", train), write_jsonl(tmp_path / "val.jsonl", PAIRS)
    code = main([
        "fit", "--config", "configs/reward/tiny.yaml",
        f"--data.init_args.train_files=[{train_file}]", f"--data.init_args.val_files=[{val_file}]",
        "--data.init_args.test_files=null",
        "--data.init_args.defaults.dimension=safety",
        "--data.init_args.defaults.scenario=emergency_referrals",
        "--data.init_args.defaults.discipline=cardiology",
        "--trainer.max_epochs=1", "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1",
        "--trainer.callbacks=[]", "--trainer.logger=false", f"--trainer.default_root_dir={tmp_path / 'run'}",
    ])  # fmt: skip
    assert code == 0
    import torch

    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "epoch=0-step=1.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 1
    saved = (tmp_path / "run" / "config.yaml").read_text(encoding="utf-8")
    assert "dimension: safety" in saved and "discipline: cardiology" in saved
