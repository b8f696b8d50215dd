"""Versioned prompt templates for data generation (``configs/generate/templates/*.yaml``).

A template file holds a name, a version, variety knobs (options with weights and texts) and a
system and a user Jinja2 template for each task: ``prompt`` (write a user prompt for a matrix
cell), ``answer`` (the best answer), ``rewrite`` (the best answer lowered to another level on one
dimension) and ``judge`` (rank answers blind). Undefined variables are errors, so a typo in a
template fails at the first render with the variable's name, not as silently empty text.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml

from lit_mrrml.errors import InputError
from lit_mrrml.matrix.suggest import did_you_mean
from lit_mrrml.textio import decode_utf8

TASKS = ("prompt", "answer", "rewrite", "judge")


class TemplateError(InputError):
    """A template file that cannot be used, with the file and the key in its message."""


@dataclass(frozen=True)
class KnobOption:
    """One option of a variety knob."""

    id: str
    weight: float
    text: str


@dataclass(frozen=True)
class PromptTemplates:
    """The templates of one file, compiled, with its knobs (reweighted by the config if asked)."""

    name: str
    version: str
    path: str
    sha256: str
    knobs: Mapping[str, tuple[KnobOption, ...]]
    tasks: Mapping[str, tuple[jinja2.Template, jinja2.Template]]  # task -> (system, user)

    @classmethod
    def load(cls, path: str | Path, knob_weights: Mapping[str, Mapping[str, float]] | None = None) -> PromptTemplates:
        """Read and compile a template file; ``knob_weights`` replaces the weights of named options."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"template file not found: {path}")
        raw = path.read_bytes()
        try:
            data = yaml.safe_load(decode_utf8(raw, path))
        except yaml.YAMLError as err:
            raise TemplateError(f"{path}: not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise TemplateError(f"{path}: expected a mapping with name, version, knobs and {', '.join(TASKS)}")
        for key in ("name", "version"):
            if not str(data.get(key) or "").strip():
                raise TemplateError(f"{path}: '{key}' is missing or empty")
        knobs = _knobs(path, data.get("knobs") or {}, knob_weights or {})
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)
        tasks = {task: _task(path, env, data, task) for task in TASKS}
        return cls(str(data["name"]), str(data["version"]), str(path), hashlib.sha256(raw).hexdigest(), knobs, tasks)

    def draw_knobs(self, rng: random.Random) -> dict[str, dict[str, str]]:
        """One option of every knob, drawn by weight: knob -> {"id", "text"}."""
        drawn = {}
        for knob, options in self.knobs.items():
            option = rng.choices(options, weights=[o.weight for o in options])[0]
            drawn[knob] = {"id": option.id, "text": option.text}
        return drawn

    def render(self, task: str, **variables: Any) -> list[dict[str, str]]:
        """The chat messages of a task: a system message (when not empty) and the user message."""
        system, user = self.tasks[task]
        messages = []
        try:
            for role, template in (("system", system), ("user", user)):
                text = template.render(**variables).strip()
                if text:
                    messages.append({"role": role, "content": text})
        except jinja2.UndefinedError as err:
            raise TemplateError(f"{self.path}: {task}: {err.message}") from None
        return messages

    def describe(self) -> dict[str, str]:
        """What a manifest records of the templates."""
        return {"name": self.name, "version": self.version, "path": self.path, "sha256": self.sha256}


def _task(
    path: Path, env: jinja2.Environment, data: dict[str, Any], task: str
) -> tuple[jinja2.Template, jinja2.Template]:
    section = data.get(task)
    if not isinstance(section, dict) or not isinstance(section.get("user"), str):
        raise TemplateError(f"{path}: '{task}.user' is missing: every task needs a user template")
    compiled = []
    for part in ("system", "user"):
        try:
            compiled.append(env.from_string(str(section.get(part) or "")))
        except jinja2.TemplateSyntaxError as err:
            raise TemplateError(f"{path}: {task}.{part}: line {err.lineno}: {err.message}") from None
    return compiled[0], compiled[1]


def _knobs(
    path: Path, data: Mapping[str, Any], weights: Mapping[str, Mapping[str, float]]
) -> dict[str, tuple[KnobOption, ...]]:
    for knob, options in weights.items():
        if knob not in data:
            raise TemplateError(f"knob_weights.{knob}: no such knob in {path}{did_you_mean(knob, data)}")
        for option in options:
            if option not in data[knob]:
                raise TemplateError(f"knob_weights.{knob}.{option}: no such option{did_you_mean(option, data[knob])}")
    knobs = {}
    for knob, options in data.items():
        if not isinstance(options, dict) or not options:
            raise TemplateError(f"{path}: knobs.{knob} must map option ids to {{weight, text}}")
        parsed = []
        for option, spec in options.items():
            if not isinstance(spec, dict) or not isinstance(spec.get("text"), str):
                raise TemplateError(f"{path}: knobs.{knob}.{option} needs a 'text'")
            weight = float(weights.get(knob, {}).get(option, spec.get("weight", 1.0)))
            if weight < 0:
                raise TemplateError(f"{path}: knobs.{knob}.{option}: weight must not be negative, got {weight}")
            parsed.append(KnobOption(str(option), weight, spec["text"]))
        if not any(o.weight > 0 for o in parsed):
            raise TemplateError(f"knobs.{knob}: every option has weight 0; give at least one a positive weight")
        knobs[knob] = tuple(parsed)
    return knobs
