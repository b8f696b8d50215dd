"""The command line: ``python -m lit_mrrml fit|validate|test|predict|matrix ...``.

fit/validate/test/predict go through LightningCLI (``--config``, dotted overrides, ``--print_config``);
``matrix FILE`` validates a rubric matrix and prints its coverage; ``generate --config FILE`` writes
synthetic ranked units from it (lit_mrrml.generate); ``healthbench --config FILE`` answers and grades
HealthBench rows and writes a report (lit_mrrml.healthbench).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import lightning as L
from jsonargparse import ArgumentParser
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

SUBCOMMANDS = ("fit", "validate", "test", "predict", "matrix", "generate", "healthbench")


class MRRMLCLI(LightningCLI):
    """LightningCLI with the links that wire the rubric matrix and the backbone between data and model.

    - ``model.backbone`` -> ``data.backbone``: the data is tokenized with the backbone's tokenizer;
    - ``data`` -> ``model.num_dimensions``, ``model.dimension_names`` and ``model.matrix``: the
      reward head gets one output per dimension of the data's rubric matrix.
    After ``validate`` and ``test``, the metrics are also written to ``<log_dir>/<stage>_metrics.json``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("model_class", L.LightningModule)
        kwargs.setdefault("datamodule_class", L.LightningDataModule)
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("auto_configure_optimizers", False)
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("model.init_args.backbone", "data.init_args.backbone")
        parser.link_arguments(
            "data", "model.init_args.num_dimensions", compute_fn=lambda dm: dm.num_dimensions, apply_on="instantiate"
        )
        parser.link_arguments(
            "data", "model.init_args.dimension_names", compute_fn=lambda dm: dm.dimension_names, apply_on="instantiate"
        )
        parser.link_arguments(
            "data", "model.init_args.matrix", compute_fn=lambda dm: dm.matrix.to_dict(), apply_on="instantiate"
        )

    def _write_metrics(self, stage: str) -> Path | None:
        if not self.trainer.is_global_zero:
            return None
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith(f"{stage}/")}
        path = Path(self.trainer.log_dir or ".") / f"{stage}_metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        clean = {k: v for k, v in sorted(metrics.items()) if math.isfinite(v)}
        path.write_text(json.dumps(clean, indent=2), encoding="utf-8")
        print(f"{stage} metrics written to {path}")
        return path

    def after_test(self) -> None:
        self._write_metrics("test")

    def after_validate(self) -> None:
        self._write_metrics("val")


def matrix_command(argv: list[str]) -> int:
    """``python -m lit_mrrml matrix FILE``: validate a rubric matrix and print its coverage."""
    from lit_mrrml.matrix import MatrixError, RubricMatrix
    from lit_mrrml.matrix.coverage import print_coverage

    parser = ArgumentParser(prog="python -m lit_mrrml matrix", description=matrix_command.__doc__)
    parser.add_argument("file", type=str, help="Rubric matrix YAML file.")
    args = parser.parse_args(argv)
    try:
        matrix = RubricMatrix.from_yaml(args.file)
    except (MatrixError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print_coverage(matrix)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; ``argv`` defaults to the process's command line."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] == "matrix":
        return matrix_command(args[1:])
    if args and args[0] == "generate":
        from lit_mrrml.generate.command import generate_command

        return generate_command(args[1:])
    if args and args[0] == "healthbench":
        from lit_mrrml.healthbench.command import healthbench_command

        return healthbench_command(args[1:])
    MRRMLCLI(args=argv)
    return 0
