"""LoRA adapters on the backbone through peft (QLoRA when the backbone is quantized)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn


@dataclass
class LoraSpec:
    """LoRA settings for ``training_mode: lora``.

    Args:
        r: Rank of the low-rank update.
        alpha: Scaling numerator (the update is scaled by alpha / r).
        dropout: Dropout on the adapter's input.
        target_modules: Module names to adapt, or ``all-linear`` for every linear layer.
    """

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] | str = field(default="all-linear")


def add_lora(
    backbone: nn.Module,
    spec: LoraSpec,
    quantized: bool,
    gradient_checkpointing: bool,
    task_type: str = "FEATURE_EXTRACTION",
) -> nn.Module:
    """Wrap the backbone with trainable LoRA adapters; its own weights stay frozen. ``task_type``
    is peft's: FEATURE_EXTRACTION for a reward model's base model, CAUSAL_LM for a policy."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if quantized:
        backbone = prepare_model_for_kbit_training(backbone, use_gradient_checkpointing=gradient_checkpointing)
    config = LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=spec.target_modules,
        task_type=task_type,
    )
    return get_peft_model(backbone, config)
