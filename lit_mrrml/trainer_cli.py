"""The Lightning commands, ``fit``, ``validate``, ``test`` and ``predict``, through LightningCLI.

Imported only when one of them runs: everything else on the command line stays free of Lightning
(lit_mrrml.cli).
"""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lit_mrrml.jsonio import dumps

log = logging.getLogger(__name__)


class MRRMLCLI(LightningCLI):
    """LightningCLI with the links that wire the rubric matrix and the backbone between data and model.

    - ``model.backbone`` -> ``data.backbone``: the data is tokenized with the backbone's tokenizer;
    - ``data`` -> ``model.num_dimensions``, ``model.dimension_names`` and ``model.matrix``: the
      reward head gets one output per dimension of the data's rubric matrix, and a policy gets the
      scenario weights and the dimension list its reward model must have (a model class without
      such an argument, such as SFTPolicy, ignores the link).
    After ``validate`` and ``test``, the metrics are also written to ``<log_dir>/<stage>_metrics.json``.

    Checkpoints without a ``dirpath`` go to ``<default_root_dir>/checkpoints``, one folder for every
    run into the same root (the logs keep Lightning's ``version_N``), so that ``fit --ckpt_path last``
    after a crash or a kill finds the run's ``last.ckpt``. A ``--ckpt_path`` is checked to be a
    Lightning checkpoint before anything is built.
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
            "data", "model.init_args.num_dimensions", compute_fn=_num_dimensions, apply_on="instantiate"
        )
        parser.link_arguments(
            "data", "model.init_args.dimension_names", compute_fn=_dimension_names, apply_on="instantiate"
        )
        parser.link_arguments("data", "model.init_args.matrix", compute_fn=_matrix_snapshot, apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, then refuse a ``--ckpt_path`` that is not a Lightning checkpoint, before LightningCLI
        reads its hyperparameters and before the model is built."""
        from lit_mrrml.modules.checkpoint import check_lightning_checkpoint

        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path:
            check_lightning_checkpoint(ckpt_path)

    def _parse_ckpt_path(self) -> None:
        """LightningCLI's reading of a ``--ckpt_path``'s hyperparameters into the config, with the
        backbone's fields in today's spelling: a checkpoint written before ``backbone.quantization``
        became an object (``quantization: 4bit`` and ``quant_type``) still resumes."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or not Path(ckpt_path).is_file():
            return
        import torch

        from lit_mrrml.models.quantization import backbone_fields

        hparams = torch.load(ckpt_path, weights_only=True, map_location="cpu").get("hyper_parameters", {})
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        if isinstance(hparams.get("backbone"), dict):
            hparams["backbone"] = backbone_fields(hparams["backbone"])
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        try:
            self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)
        except SystemExit:
            sys.stderr.write("Parsing of ckpt_path hyperparameters failed!\n")
            raise

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        root = str(trainer.default_root_dir)
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath is None and "://" not in root:
                callback.dirpath = os.path.realpath(os.path.join(root, "checkpoints"))
        return trainer

    def before_fit(self) -> None:
        """Refuse trainer.accumulate_grad_batches for a manually optimised model (GRPO) in one line; say so
        when the checkpoint folder holds an earlier run's last.ckpt and this run does not resume it."""
        from lit_mrrml.modules.batch_info import check_accumulation

        check_accumulation(self.model, self.trainer.accumulate_grad_batches)
        ckpt_path = self.config.get(str(self.subcommand), self.config).get("ckpt_path")
        for callback in self.trainer.checkpoint_callbacks:
            folder = getattr(callback, "dirpath", None)
            earlier = sorted(Path(folder).glob("last*.ckpt")) if folder and not ckpt_path else []
            if earlier:
                log.warning(
                    "%s already holds %s from an earlier run: this run starts from scratch and saves beside it "
                    "(add --ckpt_path last to resume that run instead)",
                    folder,
                    earlier[-1].name,
                )

    def _write_metrics(self, stage: str) -> Path | None:
        log_dir = self.trainer.log_dir  # on every rank: under DDP, log_dir is a broadcast
        if not self.trainer.is_global_zero:
            return None
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith(f"{stage}/")}
        path = Path(log_dir or ".") / f"{stage}_metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        skipped = sorted(k for k, v in metrics.items() if not math.isfinite(v))
        if skipped:  # a metric without data (NaN), e.g. order accuracy with no K >= 3 unit
            log.warning("%s: left out non-finite metrics %s", path, skipped)
        clean = {k: v for k, v in sorted(metrics.items()) if math.isfinite(v)}
        path.write_text(dumps(clean, str(path), indent=2), encoding="utf-8")
        print(f"{stage} metrics written to {path}")
        return path

    def after_test(self) -> None:
        self._write_metrics("test")

    def after_validate(self) -> None:
        self._write_metrics("val")


def _matrix_snapshot(data: Any) -> dict[str, Any] | None:
    """The data module's rubric matrix as plain data (None for data without a matrix, e.g. chat SFT)."""
    matrix = getattr(data, "matrix", None)
    return matrix.to_dict() if matrix is not None else None


def _dimension_names(data: Any) -> list[str] | None:
    return getattr(data, "dimension_names", None)


def _num_dimensions(data: Any) -> int | None:
    return getattr(data, "num_dimensions", None)
