"""A coverage report of a rubric matrix: weights, disciplines and criteria counts per cell."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from lit_mrrml.matrix.model import RubricMatrix


def weights_table(matrix: RubricMatrix) -> Table:
    """Scenarios x dimensions: each scenario's weight on each dimension and the criteria counted there."""
    table = Table(title=f"{matrix.name} v{matrix.version}: weight (criteria) per scenario x dimension")
    table.add_column("scenario", style="bold", overflow="fold")
    for dim in matrix.dimensions:
        table.add_column(dim.id, justify="right", overflow="fold")
    for scenario in matrix.scenarios:
        cells = []
        for dim, weight in zip(matrix.dimensions, matrix.weights(scenario.id), strict=True):
            count = sum(1 for c in matrix.criteria if c.matches(dim.id, scenario.id, c.discipline))
            cells.append(f"{weight:.2f} ({count})")
        table.add_row(scenario.id, *cells)
    return table


def disciplines_table(matrix: RubricMatrix) -> Table:
    """Disciplines with the number of criteria that apply to each (wildcards included)."""
    table = Table(title="disciplines")
    table.add_column("id", style="bold")
    table.add_column("name")
    table.add_column("criteria", justify="right")
    for disc in matrix.disciplines:
        count = sum(1 for c in matrix.criteria if c.matches(c.dimension, c.scenario, disc.id))
        table.add_row(disc.id, disc.name, str(count))
    return table


def print_coverage(matrix: RubricMatrix, console: Console | None = None) -> None:
    """Print the matrix summary, the weights table and the disciplines table."""
    console = console or Console()
    console.print(
        f"[green]valid[/green] rubric matrix '{matrix.name}' v{matrix.version}: "
        f"{len(matrix.dimensions)} dimensions x {len(matrix.scenarios)} scenarios x "
        f"{len(matrix.disciplines)} disciplines = "
        f"{len(matrix.dimensions) * len(matrix.scenarios) * len(matrix.disciplines)} cells, "
        f"{len(matrix.criteria)} criteria; sha256 {matrix.content_hash()[:16]}"
    )
    console.print(weights_table(matrix))
    console.print(disciplines_table(matrix))
