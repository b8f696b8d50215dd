"""Prompt templates: the shipped file loads and renders; knobs draw by weight; errors name the key."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from lit_mrrml.generate import PromptTemplates, TemplateError
from lit_mrrml.textio import NotUTF8Error
from tests.conftest import ROOT

SHIPPED = ROOT / "configs" / "generate" / "templates" / "v1.yaml"


def test_the_shipped_templates_load_with_name_version_and_hash():
    templates = PromptTemplates.load(SHIPPED)
    described = templates.describe()
    assert described["name"] == "mrrml-default" and described["version"] == "1.0" and len(described["sha256"]) == 64
    assert set(templates.knobs) >= {"voice", "turns", "length", "detail"}


def test_every_task_renders_with_the_documented_variables(matrix):
    templates = PromptTemplates.load(SHIPPED)
    knobs = templates.draw_knobs(random.Random(0))
    cell = {"dimension": matrix.dimension("safety"), "scenario": matrix.scenario("emergency_referrals")}
    cell["discipline"] = matrix.discipline("pediatrics")
    criteria = matrix.criteria_for("safety", "emergency_referrals", "pediatrics")
    prompt = templates.render("prompt", **cell, criteria=criteria, knobs=knobs)
    assert [m["role"] for m in prompt] == ["system", "user"]
    assert prompt[1]["content"].startswith("## Task: write-prompt") and "button battery" in prompt[1]["content"]
    assert "(+10 points)" in prompt[1]["content"] and "Pediatrics" in prompt[1]["content"]
    common = {**cell, "conversation": "User: help", "words": 80}
    answer = templates.render("answer", **common, level="good", level_text="LEVEL")
    assert "Level to reach: GOOD: LEVEL" in answer[1]["content"] and "about 80 words" in answer[1]["content"]
    rewrite = templates.render("rewrite", **common, level="poor", level_text="BAD", answer="REF")
    assert "## Reference answer\nREF" in rewrite[1]["content"] and "drops to the POOR level" in rewrite[1]["content"]
    judge = templates.render("judge", **common, answers=[("A", "one"), ("B", "two")], labels=["A", "B"])
    assert "### Answer A\none" in judge[1]["content"] and "each of the 2 labels" in judge[1]["content"]


def test_knobs_follow_weights_and_overrides():
    templates = PromptTemplates.load(SHIPPED, knob_weights={"turns": {"multi": 0}})
    drawn = Counter(templates.draw_knobs(random.Random(i))["turns"]["id"] for i in range(200))
    assert drawn == {"single": 200}
    plain = PromptTemplates.load(SHIPPED)
    voices = Counter(plain.draw_knobs(random.Random(i))["voice"]["id"] for i in range(900))
    assert voices["patient"] > voices["clinician"] > voices["caregiver"] > 0  # weights 4 : 3 : 2


def test_a_missing_variable_is_an_error_naming_it():
    templates = PromptTemplates.load(SHIPPED)
    with pytest.raises(TemplateError, match="answer: 'conversation' is undefined"):
        templates.render("answer", dimension={}, scenario={}, discipline={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nversion: 1\n", "'prompt.user' is missing"),
        ("name: x\n", "'version' is missing"),
        ("name: x\nversion: 1\nknobs: {a: {b: {weight: 0, text: t}}}\n", "every option has weight 0"),
        ("[", "not valid YAML"),
    ],
)
def test_bad_template_files_name_the_problem(tmp_path, text, message):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(TemplateError, match=message):
        PromptTemplates.load(path)


def test_syntax_errors_and_unknown_knob_weights(tmp_path):
    path = tmp_path / "t.yaml"
    body = "".join(f"{task}: {{user: 'u'}}\n" for task in ("answer", "rewrite", "judge"))
    path.write_text("name: x\nversion: 1\nprompt: {user: '{% if %}'}\n" + body)
    with pytest.raises(TemplateError, match=r"prompt.user: line 1"):
        PromptTemplates.load(path)
    with pytest.raises(TemplateError, match=r"knob_weights\.turn: no such knob.*did you mean 'turns'"):
        PromptTemplates.load(SHIPPED, knob_weights={"turn": {"multi": 0}})
    with pytest.raises(TemplateError, match=r"knob_weights\.turns\.mult: no such option"):
        PromptTemplates.load(SHIPPED, knob_weights={"turns": {"mult": 0}})


def test_a_template_file_that_is_not_utf8_names_the_byte_offset(tmp_path):
    shipped = (ROOT / "configs" / "generate" / "templates" / "v1.yaml").read_text(encoding="utf-8")
    path = tmp_path / "latin1.yaml"
    path.write_bytes(shipped.replace("name: mrrml-default", "name: mrrml-défaut").encode("latin-1", "replace"))
    offset = path.read_bytes().index(b"\xe9")
    with pytest.raises(NotUTF8Error) as info:
        PromptTemplates.load(path)
    assert str(info.value) == (
        f"{path}: not UTF-8 text: byte 0xe9 at byte offset {offset} cannot be decoded (save the file as UTF-8)"
    )
