"""LoRA adapters on the backbone through peft (QLoRA when the backbone is quantized)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn
from torch.distributed.tensor import DTensor

from lit_mrrml.models.quantization import keep_4bit_weights_trainable

QUANTIZED = ("Params4bit", "Int8Params")  # bitsandbytes' 4-bit and 8-bit weight classes


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
    is peft's: FEATURE_EXTRACTION for a reward model's base model, CAUSAL_LM for a policy.

    A ``quantized`` (bitsandbytes) backbone is QLoRA: peft's ``prepare_model_for_kbit_training``
    freezes it and casts its remaining full-precision weights to float32, and its 4-bit layers keep
    the training layout through eval-mode forwards (``keep_4bit_weights_trainable``).
    """
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if quantized:
        backbone = prepare_model_for_kbit_training(backbone, use_gradient_checkpointing=gradient_checkpointing)
        keep_4bit_weights_trainable(backbone)
    config = LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=spec.target_modules,
        task_type=task_type,
    )
    return get_peft_model(backbone, config)


def dense(tensor: Tensor) -> Tensor:
    """A tensor whole on this rank (an FSDP2 DTensor gathered; any other tensor as it is)."""
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def dense_weight(module: nn.Module) -> Tensor:
    """A linear layer's weight as a dense, detached tensor (bitsandbytes weights dequantized)."""
    weight: Any = module.weight
    if type(weight).__name__ in QUANTIZED:
        from peft.utils.integrations import dequantize_module_weight

        weight = dequantize_module_weight(module)
    return dense(weight).detach()


def merged_weight(layer: Any) -> Tensor:
    """(out, in) a LoRA-adapted layer's weight with its active adapters merged, W + sum scale * B A
    (peft's ``get_delta_weight``), computed without touching the layer: merging and unmerging in
    place would leave rounding error in the base weights, which serve as the reference policy."""
    weight = dense_weight(layer.get_base_layer())
    for adapter in layer.active_adapters:
        if adapter in layer.lora_A:
            weight = weight + layer.get_delta_weight(adapter).to(weight.dtype)
    return weight
