"""The rubric matrix: the medical standard system of Dimensions x Scenarios x Disciplines."""

from lit_mrrml.matrix.build import MatrixError
from lit_mrrml.matrix.model import Criterion, Dimension, Discipline, Levels, RubricMatrix, Scenario

__all__ = ["Criterion", "Dimension", "Discipline", "Levels", "MatrixError", "RubricMatrix", "Scenario"]
