"""Read a rubric matrix from YAML, with syntax errors reported at their line."""

from __future__ import annotations

from pathlib import Path

import yaml

from lit_mrrml.matrix.build import MatrixError, build_matrix
from lit_mrrml.matrix.model import RubricMatrix
from lit_mrrml.textio import read_text


def load_matrix_yaml(path: Path) -> RubricMatrix:
    """Parse and validate ``path``; raises MatrixError, NotUTF8Error (both InputErrors) or FileNotFoundError."""
    if not path.is_file():
        raise FileNotFoundError(f"rubric matrix file not found: {path}")
    text = read_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        reason = getattr(err, "problem", None) or str(err)
        raise MatrixError(str(path), [f"{where}YAML syntax error: {reason}"]) from err
    return build_matrix(data, str(path))
