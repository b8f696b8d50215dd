"""The effective batch of a run, logged once at the start of fit in the module's own unit.

    global batch = per-device batch x devices x nodes x accumulated batches

where the per-device batch is the data module's ``batch_size`` and the accumulated batches are
``trainer.accumulate_grad_batches``. A reward model counts units (each of K ranked responses), SFT
conversations, GRPO prompts, each drawing G rollouts; GRPO optimises manually, so its
accumulation is over ``micro_batch_size`` micro-batches of the rollout batch (whose gradients add
up to the whole batch's), not Lightning's. Under tensor parallelism the ranks of a tensor-parallel
group share their batches, so the product runs over the data-parallel replicas instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import lightning as L
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from lit_mrrml.errors import InputError


@dataclass(frozen=True)
class EffectiveBatch:
    """What one optimizer step sees, summed over devices, nodes and accumulated batches.

    Args:
        per_device: Items in one device's batch (the data module's ``batch_size``).
        devices: Devices (processes) a node.
        nodes: Nodes.
        accumulation: Batches whose gradients one optimizer step accumulates.
        unit: What an item is (``units``, ``conversations``, ``prompts``).
        replicas: Data-parallel replicas, each drawing its own batches (default devices x nodes;
            fewer under tensor parallelism).
        group: Rows an item expands to (GRPO: G rollouts a prompt; 1 otherwise).
        group_unit: What a row is (``rollouts``), when ``group`` > 1.
        note: A last sentence on the unit or on how the accumulation works.
    """

    per_device: int
    devices: int = 1
    nodes: int = 1
    accumulation: int = 1
    unit: str = "units"
    replicas: int | None = None
    group: int = 1
    group_unit: str = ""
    note: str = ""

    @property
    def data_parallel(self) -> int:
        """Replicas that each draw their own batches."""
        return self.replicas if self.replicas is not None else self.devices * self.nodes

    @property
    def global_batch(self) -> int:
        """Items an optimizer step sees: per_device x replicas x accumulation."""
        return self.per_device * self.data_parallel * self.accumulation

    def describe(self) -> str:
        """One line: the product, its factors and the global batch, in the module's unit."""
        grouped = f" x {self.group} {self.group_unit}" if self.group > 1 else ""
        nodes = "node" if self.nodes == 1 else "nodes"
        line = (
            f"effective batch: {self.per_device} {self.unit}{grouped} per device x {self.devices} device(s) x "
            f"{self.nodes} {nodes} x {self.accumulation} accumulated = {self.global_batch} {self.unit}{grouped}"
        )
        if self.group > 1:
            line += f" = {self.global_batch * self.group} {self.group_unit}"
        line += " per optimizer step"
        if self.data_parallel != self.devices * self.nodes:
            line += f" ({self.data_parallel} data-parallel replicas: tensor-parallel ranks share batches)"
        return f"{line}; {self.note}" if self.note else line

    def hparams(self) -> dict[str, int]:
        """The factors and the product as flat logger hyperparameters (``batch/...``)."""
        values = {
            "batch/per_device": self.per_device,
            "batch/devices": self.devices,
            "batch/nodes": self.nodes,
            "batch/accumulation": self.accumulation,
            "batch/global": self.global_batch,
        }
        if self.group > 1:
            values[f"batch/global_{self.group_unit}"] = self.global_batch * self.group
        return values


def data_parallel_replicas(trainer: L.Trainer) -> int:
    """Replicas drawing their own batches: the strategy's distributed sampler's ``num_replicas``."""
    kwargs = trainer.distributed_sampler_kwargs
    return int(kwargs["num_replicas"]) if kwargs else 1


def micro_batch_note(rows: int, micro_batch_size: int, num_iterations: int) -> str:
    """GRPO's accumulation: ``rows`` rollouts a device split into micro-batches, in words."""
    micro = math.ceil(rows / micro_batch_size)
    return (
        f"gradients accumulate over {micro} micro-batch(es) of up to {micro_batch_size} rollouts a device "
        f"(model.micro_batch_size), not trainer.accumulate_grad_batches; {num_iterations} optimizer step(s) "
        "a rollout batch (model.num_iterations)"
    )


def check_accumulation(model: L.LightningModule, accumulate_grad_batches: int) -> None:
    """Refuse Lightning's gradient accumulation for a manually optimised module (GRPO), saying what
    to set instead; Lightning's own refusal would not name the module's micro-batches."""
    if model.automatic_optimization or accumulate_grad_batches == 1:
        return
    instead = (
        "leave it at 1: a rollout batch's gradients already accumulate over its micro-batches, so raise "
        "data.init_args.batch_size for a bigger batch and lower model.init_args.micro_batch_size to fit in memory"
        if hasattr(model, "micro_batch_size")
        else "leave it at 1"
    )
    raise InputError(
        f"trainer.accumulate_grad_batches={accumulate_grad_batches}: {type(model).__name__} optimises manually, "
        f"so Lightning cannot accumulate its gradients; {instead}"
    )


def per_device_batch(trainer: L.Trainer) -> int | None:
    """The data module's ``batch_size`` (None for data given as plain dataloaders)."""
    size = getattr(getattr(trainer, "datamodule", None), "batch_size", None)
    return size if isinstance(size, int) else None


def effective_batch(trainer: L.Trainer, unit: str, **extra: Any) -> EffectiveBatch | None:
    """The run's effective batch; None without a data module that has a ``batch_size``."""
    per_device = per_device_batch(trainer)
    if per_device is None:
        return None
    return EffectiveBatch(
        per_device=per_device,
        devices=trainer.num_devices,
        nodes=trainer.num_nodes,
        accumulation=trainer.accumulate_grad_batches,
        unit=unit,
        replicas=data_parallel_replicas(trainer),
        **extra,
    )


def log_effective_batch(module: L.LightningModule, unit: str, **extra: Any) -> EffectiveBatch | None:
    """Say the effective batch on rank zero and add it to every logger's hyperparameters."""
    batch = effective_batch(module.trainer, unit, **extra)
    if batch is None:
        return None
    rank_zero_info(batch.describe())
    for logger in module.loggers:
        logger.log_hyperparams(batch.hparams())  # rank zero only (Lightning's loggers)
    return batch
