"""Loading HealthBench rows: the 500 real ones, every validation error as file:line, selection."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from lit_mrrml.healthbench import HealthBenchFormatError, bundled_rows_path, load_rows
from lit_mrrml.healthbench.rows import BUNDLED_ROWS, Criterion
from lit_mrrml.textio import NotUTF8Error
from tests.healthbench.conftest import make_row, rubric, write_rows


def test_the_500_real_rows_load_and_validate():
    rows = load_rows(BUNDLED_ROWS)
    assert len(rows) == 500
    assert sum(len(r.rubrics) for r in rows) == 5965
    assert sum(r.ideal_completion is not None for r in rows) == 433
    themes = Counter(t for r in rows for t in r.themes)
    assert themes == {
        "hedging": 116,
        "global_health": 107,
        "communication": 102,
        "health_data_tasks": 57,
        "emergency_referrals": 42,
        "context_seeking": 40,
        "complex_responses": 36,
    }
    assert all(r.prompt[-1][0] == "user" for r in rows)
    assert {p for r in rows for c in r.rubrics for p in [c.points]} <= set(range(-10, 11))
    assert bundled_rows_path().name == "healthbench_eval.jsonl"


def test_rows_keep_the_fields_that_scoring_needs(tmp_path):
    path = write_rows(tmp_path / "r.jsonl", [make_row("a", [rubric("Says X", 5, "axis:accuracy")], ideal="X.")])
    (row,) = load_rows(path)
    assert row.prompt_id == "a" and row.messages[-1]["role"] == "user"
    assert row.rubrics == (Criterion("Says X", 5, ("axis:accuracy",)),)
    assert row.ideal_completion == "X." and row.themes == ("emergency_referrals",)
    assert str(row.rubrics[0]) == "[5] Says X"


BAD = [
    ("{not json", "invalid JSON"),
    (json.dumps([1]), "a row must be a JSON object"),
    (json.dumps(make_row("", [rubric("x", 1)])), "'prompt_id' must be a non-empty string"),
    (json.dumps(make_row("a", [])), "'rubrics' must be a non-empty list"),
    (json.dumps(make_row("a", [rubric("x", -3)])), "no criterion has positive points"),
    (json.dumps(make_row("a", [rubric("x", 11)])), "rubrics[0].points must be within [-10, 10]"),
    (json.dumps(make_row("a", [rubric("x", True)])), "rubrics[0].points must be a number"),
    (json.dumps(make_row("a", [rubric("", 2)])), "rubrics[0].criterion must be a non-empty string"),
    (json.dumps(make_row("a", [rubric("x", 2, "axis:accuracy", "axis:accuracy")])), "repeats ['axis:accuracy']"),
    (json.dumps(make_row("a", [rubric("x", 2)], prompt=[])), "'prompt' must be a non-empty list"),
    (json.dumps(make_row("a", [rubric("x", 2)], prompt=[{"role": "bot", "content": "hi"}])), "prompt[0].role"),
    (json.dumps(make_row("a", [rubric("x", 2)], prompt=[{"role": "assistant", "content": "hi"}])), "user's turn"),
    (json.dumps(make_row("a", [rubric("x", 2)], example_tags="theme:hedging")), "'example_tags' must be a list"),
    (json.dumps(make_row("a", [rubric("x", 2)], ideal_completions_data=[])), "must be an object or null"),
]


@pytest.mark.parametrize(("line", "reason"), BAD, ids=[reason for _, reason in BAD])
def test_a_bad_row_is_reported_with_its_file_and_line(tmp_path, line, reason):
    good = json.dumps(make_row("ok", [rubric("Says X", 5)]))
    path = write_rows(tmp_path / "bad.jsonl", [good, "", line])
    with pytest.raises(HealthBenchFormatError) as err:
        load_rows(path)
    assert f"{path}:3: " in str(err.value) and reason in str(err.value)


def test_every_bad_line_is_listed_at_once_and_repeated_ids_name_the_first(tmp_path):
    good = make_row("a", [rubric("Says X", 5)])
    path = write_rows(tmp_path / "bad.jsonl", [good, "{", good, *["{"] * 25])
    with pytest.raises(HealthBenchFormatError) as err:
        load_rows(path)
    message = str(err.value)
    assert message.startswith(f"27 bad row(s) in {path}")
    assert f"{path}:2: invalid JSON" in message and f"{path}:3: prompt_id 'a' repeats line 1" in message
    assert "... and 7 more" in message


def test_missing_and_empty_files_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_rows(tmp_path / "nope.jsonl")
    with pytest.raises(HealthBenchFormatError, match="no rows"):
        load_rows(write_rows(tmp_path / "empty.jsonl", [""]))


def test_hard_and_consensus_files_share_the_format(tmp_path):
    consensus = make_row(
        "c1",
        [
            rubric(
                "Seeks emergency care", 5, "level:cluster", "cluster:emergent_emergency_behavior", "axis:completeness"
            )
        ],
    )
    hard = make_row("h1", [rubric("Says X", 8, "level:example", "axis:accuracy"), rubric("Says Y", -4)])
    for name, row in (("consensus_2025.jsonl", consensus), ("hard_2025.jsonl", hard)):
        (loaded,) = load_rows(write_rows(tmp_path / name, [row]))
        assert loaded.prompt_id == row["prompt_id"]


def test_theme_filter_limit_and_seeded_sample():
    hedging = load_rows(BUNDLED_ROWS, themes=["hedging"])
    assert len(hedging) == 116 and all("hedging" in r.themes for r in hedging)
    both = load_rows(BUNDLED_ROWS, themes=["theme:hedging", "context_seeking"])
    assert len(both) == 156
    first = load_rows(BUNDLED_ROWS, limit=7)
    assert [r.prompt_id for r in first] == [r.prompt_id for r in load_rows(BUNDLED_ROWS)[:7]]
    sample = load_rows(BUNDLED_ROWS, limit=7, sample_seed=3)
    assert [r.prompt_id for r in sample] == [r.prompt_id for r in load_rows(BUNDLED_ROWS, limit=7, sample_seed=3)]
    assert [r.prompt_id for r in sample] != [r.prompt_id for r in first]
    assert len(load_rows(BUNDLED_ROWS, limit=10, themes=["emergency_referrals"])) == 10


def test_an_unknown_theme_gets_a_hint():
    with pytest.raises(ValueError, match="unknown HealthBench theme 'hedgin'; did you mean 'hedging'"):
        load_rows(BUNDLED_ROWS, themes=["hedgin"])
    with pytest.raises(ValueError, match="limit must be at least 1"):
        load_rows(BUNDLED_ROWS, limit=0)


def test_a_rows_file_that_is_not_utf8_names_the_line_and_offset(tmp_path):
    path = tmp_path / "rows.jsonl"
    first = json.dumps(make_row("a", [rubric("Advises rest", 5)]))
    second = json.dumps(make_row("b", [rubric("Mentions fièvre", 5)]), ensure_ascii=False)
    path.write_bytes(f"{first}\n{second}\n".encode("cp1252"))
    offset = path.read_bytes().index(b"\xe8")
    with pytest.raises(NotUTF8Error) as info:
        load_rows(path)
    assert str(info.value) == (
        f"{path}:2: not UTF-8 text: byte 0xe8 at byte offset {offset} cannot be decoded (save the file as UTF-8)"
    )
