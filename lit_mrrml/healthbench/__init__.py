"""HealthBench: load and validate rows, grade answers with a rubric judge, score exactly as the reference.

The scoring library (``load_rows``, ``score_example``, ``score_rows``) is plain Python and numpy;
``HealthBenchEval`` (``python -m lit_mrrml healthbench``) answers, grades and reports.
"""

from lit_mrrml.healthbench.rows import (
    BUNDLED_ROWS,
    Criterion,
    HealthBenchFormatError,
    HealthBenchRow,
    bundled_rows_path,
    load_rows,
)
from lit_mrrml.healthbench.scoring import Score, bootstrap_std, score_example, score_rows

__all__ = [
    "BUNDLED_ROWS",
    "Criterion",
    "HealthBenchFormatError",
    "HealthBenchRow",
    "Score",
    "bootstrap_std",
    "bundled_rows_path",
    "load_rows",
    "score_example",
    "score_rows",
]
