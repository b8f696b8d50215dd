"""The demo (``make demo``): GPRC against the plain ranking baseline, side by side.

Trains the demo reward model twice through the command line's own classes (the config's GPRC
loss, then alpha = beta = 0), tests each best checkpoint on the held-out test split, and prints
a per-dimension table of pairwise accuracy, order accuracy and betweenness from this run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lit_mrrml.jsonio import dumps
from lit_mrrml.trainer_cli import MRRMLCLI

METRICS = (("pair_acc", "pair"), ("order_acc", "order"), ("betweenness", "betw."))
BASELINE = ["--model.loss.alpha=0", "--model.loss.beta=0"]
LABELS = {"gprc": "GPRC", "baseline": "plain"}  # short column headers that fit 80 columns


def run_variant(config: str, root: Path, name: str, overrides: list[str]) -> dict[str, float]:
    """Fit one variant, then test its best checkpoint; returns the test metrics."""
    args = ["--config", config, f"--trainer.default_root_dir={root / name}", *overrides]
    cli = MRRMLCLI(args=args, run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    results = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)
    return {k: float(v) for k, v in results[0].items()}


def comparison_table(results: dict[str, dict[str, float]], dimensions: list[str]) -> Table:
    """Rows: dimensions and overall; columns: each metric for each variant."""
    table = Table(
        title="held-out test split: GPRC vs plain ranking (alpha = beta = 0)",
        caption="pair: pairwise accuracy; order: K>=3 units in full order; betw.: medium between best and worst",
    )
    table.add_column("dimension", style="bold", no_wrap=True)
    for variant in results:
        for _, label in METRICS:
            table.add_column(f"{LABELS.get(variant, variant)}\n{label}", justify="right")
    for dim in [*dimensions, None]:
        cells = []
        for metrics in results.values():
            for key, _ in METRICS:
                value = metrics.get(f"test/{key}/{dim}" if dim else f"test/{key}")
                cells.append("-" if value is None else f"{value:.3f}")
        table.add_row(dim or "overall", *cells, end_section=dim == dimensions[-1])
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lit_mrrml.demo", description=__doc__)
    parser.add_argument("--config", default="configs/reward/demo.yaml", help="reward-model config to run")
    parser.add_argument("--output", default="runs/demo", help="folder for both runs and the summary")
    parser.epilog = "Other flags go to both runs as LightningCLI overrides, e.g. --trainer.max_epochs=5."
    args, overrides = parser.parse_known_args(argv)
    console, root, started = Console(), Path(args.output), time.perf_counter()
    results: dict[str, dict[str, float]] = {}
    for step, (name, extra) in enumerate((("gprc", []), ("baseline", BASELINE)), 1):
        console.rule(f"[bold]step {step}/2: train and test '{name}'")
        results[name] = run_variant(args.config, root, name, [*overrides, *extra])
    dimensions = sorted({k.split("/")[2] for m in results.values() for k in m if k.count("/") == 2})
    console.print(comparison_table(results, dimensions))
    minutes = (time.perf_counter() - started) / 60
    summary = {"config": args.config, "minutes": round(minutes, 2), "results": results}
    (root / "summary.json").write_text(dumps(summary, "summary.json", indent=2), encoding="utf-8")
    console.print(f"done in {minutes:.1f} min; metrics in {root / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
