"""bitsandbytes quantization of a backbone at load time: the setting, its checks, transformers' config.

A ``QuantizationSpec`` is what ``backbone.quantization`` holds in a YAML config::

    quantization: {bits: 4, quant_type: nf4, double_quant: true, compute_dtype: bfloat16}

and becomes transformers' ``BitsAndBytesConfig``. With ``training_mode: lora`` that is QLoRA: the
4- or 8-bit base stays frozen, the LoRA adapters (and a reward model's head) train in full
precision. Under FSDP the 4-bit weights are stored in ``storage_dtype`` (``bnb_4bit_quant_storage``,
by default the backbone's dtype, which is the dtype FSDP flattens), so that they shard with the
other parameters; Lightning's ``BitsandbytesPrecision`` is not used (it refuses FSDP, Lightning
issue 20855).

Older checkpoints and exports spelled the setting ``quantization: 4bit | 8bit | none`` with a
separate ``quant_type``; ``backbone_fields`` turns that spelling into this one.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from lit_mrrml.errors import InputError
from lit_mrrml.matrix.suggest import did_you_mean

WHERE = "backbone.quantization"
DTYPES = ("float32", "bfloat16", "float16")
STORAGE_DTYPES = (*DTYPES, "uint8")
LEGACY = {"none": None, "4bit": 4, "8bit": 8}  # the old ``quantization`` strings, and their bits
FOUR_BIT_ONLY = {"quant_type": "nf4", "double_quant": False, "compute_dtype": None, "storage_dtype": None}


@dataclass(frozen=True)
class QuantizationSpec:
    """bitsandbytes quantization of the backbone's linear layers at load time (QLoRA with training_mode lora).

    Args:
        bits: Bits per weight: 4 (NF4 or FP4 blocks, QLoRA) or 8 (LLM.int8).
        quant_type: 4-bit only: the 4-bit data type, nf4 (normal float, QLoRA's) or fp4.
        double_quant: 4-bit only: quantize the quantization constants too (about 0.4 bit a weight less).
        compute_dtype: 4-bit only: dtype of the matrix products (float32, bfloat16, float16); default:
            the backbone's dtype.
        storage_dtype: 4-bit only: dtype the packed 4-bit weights are stored in (bnb_4bit_quant_storage:
            float32, bfloat16, float16 or uint8); default: the backbone's dtype, which is the dtype
            FSDP shards, so that 4-bit weights shard under FSDP with use_orig_params.
    """

    bits: Literal[4, 8] = 4
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = False
    compute_dtype: Literal["float32", "bfloat16", "float16"] | None = None
    storage_dtype: Literal["float32", "bfloat16", "float16", "uint8"] | None = None

    def __post_init__(self) -> None:
        _check_choice("bits", self.bits, (4, 8))
        _check_choice("quant_type", self.quant_type, ("nf4", "fp4"))
        _check_choice("double_quant", self.double_quant, (True, False))
        _check_choice("compute_dtype", self.compute_dtype, (*DTYPES, None))
        _check_choice("storage_dtype", self.storage_dtype, (*STORAGE_DTYPES, None))
        if self.bits == 8:
            for name, default in FOUR_BIT_ONLY.items():
                if getattr(self, name) != default:
                    raise InputError(
                        f"{WHERE}.{name}: {getattr(self, name)!r} applies to 4-bit weights only; "
                        f"remove it or set {WHERE}.bits to 4"
                    )

    @property
    def label(self) -> str:
        """A short name of the setting: ``4bit``, ``4bit-fp4-dq-bfloat16``, ``8bit``."""
        parts = [f"{self.bits}bit"]
        if self.bits == 4:
            parts += [self.quant_type] if self.quant_type != "nf4" else []
            parts += ["dq"] if self.double_quant else []
            parts += [d for d in (self.compute_dtype, self.storage_dtype) if d is not None]
        return "-".join(parts)

    def bitsandbytes_config(self, dtype: torch.dtype) -> Any:
        """transformers' ``BitsAndBytesConfig``; ``dtype`` (the backbone's) fills the unset dtypes."""
        from transformers import BitsAndBytesConfig

        if self.bits == 8:
            return BitsAndBytesConfig(load_in_8bit=True)
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=self.quant_type,
            bnb_4bit_use_double_quant=self.double_quant,
            bnb_4bit_compute_dtype=getattr(torch, self.compute_dtype) if self.compute_dtype else dtype,
            bnb_4bit_quant_storage=getattr(torch, self.storage_dtype) if self.storage_dtype else dtype,
        )


def _check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    # bool is an int: True must not pass for bits, nor 1 for double_quant
    if not any(value is c or (type(value) is type(c) and value == c) for c in choices):
        shown = ", ".join("null" if c is None else str(c).lower() if isinstance(c, bool) else str(c) for c in choices)
        raise InputError(f"{WHERE}.{name}: unknown value {value!r}; expected one of {shown}")


def as_quantization(value: Any) -> QuantizationSpec | None:
    """A ``QuantizationSpec`` from what a config, a checkpoint or an export holds: the spec itself,
    None, its fields as a dict (``dataclasses.asdict``), or an old string (``4bit``, ``8bit``, ``none``)."""
    if value is None or isinstance(value, QuantizationSpec):
        return value
    if isinstance(value, str):
        if value not in LEGACY:
            raise InputError(
                f"{WHERE}: unknown value {value!r}; give an object such as {{bits: 4, quant_type: nf4}}, or null"
            )
        bits = LEGACY[value]
        return QuantizationSpec(bits=bits) if bits is not None else None  # type: ignore[arg-type]
    if not isinstance(value, dict):
        raise InputError(f"{WHERE}: must be an object such as {{bits: 4, quant_type: nf4}} or null, got {value!r}")
    known = [f.name for f in dataclasses.fields(QuantizationSpec)]
    for key in value:
        if key not in known:
            raise InputError(f"{WHERE}.{key}: unknown field{did_you_mean(str(key), known)}")
    return QuantizationSpec(**value)


def backbone_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A backbone spec's fields as written by any version: the old ``quantization: 4bit`` with its
    separate ``quant_type`` become ``quantization: {bits: 4, quant_type: ...}``."""
    fields = dict(fields)
    old = fields.get("quantization")
    quant_type = fields.pop("quant_type", "nf4")
    if isinstance(old, str) and old in LEGACY:  # the old spelling; anything else is checked by QuantizationSpec
        bits = LEGACY[old]
        fields["quantization"] = (
            {"bits": 4, "quant_type": quant_type} if bits == 4 else (None if bits is None else {"bits": 8})
        )
    return fields


def keep_4bit_weights_trainable(model: nn.Module) -> None:
    """Stop bitsandbytes from repacking 4-bit weights for CPU inference at the first eval-mode forward.

    On CPUs with AVX512-BF16, bitsandbytes 0.50 converts a Linear4bit's weights to an
    inference-only layout the first time it runs in eval mode without gradients, and the next
    training forward then fails in autograd ("a view of a leaf Variable ... in-place operation").
    A model trained through its 4-bit layers (LoRA) that also runs in eval mode between steps
    keeps the training layout: a policy for its rollouts, a reward model for validation and
    ``score()``.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            setattr(module, "support_avx512bf16_for_cpu", False)  # noqa: B010 (a plain attribute, not a parameter)


def copy_out_of_the_file(model: nn.Module) -> None:
    """Give the tensors a quantized CPU load left in their own dtype (embeddings, norms, biases)
    memory of their own.

    transformers loads them as views into the memory-mapped safetensors file, and each view keeps
    its whole mapping resident: on SmolLM2 a 4-bit load kept 406 MiB of the fp32 file for 158 MiB
    of such tensors. The quantized weights are already copies (bitsandbytes packs them anew).
    """
    bnb = sys.modules.get("bitsandbytes")
    packed = (bnb.nn.Params4bit, bnb.nn.Int8Params) if bnb is not None else ()
    with torch.no_grad():
        for module in model.modules():
            for param in module._parameters.values():
                if param is not None and not isinstance(param, packed) and param.device.type == "cpu":
                    param.data = param.data.clone()
            for name, buffer in module._buffers.items():
                if buffer is not None and buffer.device.type == "cpu":
                    module._buffers[name] = buffer.clone()


def quantized_state_keys(keys: Iterable[str], model: nn.Module | None, prefix: str) -> set[str]:
    """The state-dict ``keys`` of ``model``'s bitsandbytes layers (``model`` held under ``prefix``):
    their packed weights and the quantization constants saved beside them (``weight.absmax``,
    ``weight.quant_state.*``, ``SCB``), which a model rebuilt from the same pretrained weights holds
    again. These layers never train (LoRA adds its adapters beside them)."""
    bnb = sys.modules.get("bitsandbytes")  # not imported: no model holds its layers
    if bnb is None or model is None:
        return set()
    kinds = (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)
    layers = tuple(f"{prefix}{name}." for name, module in model.named_modules() if isinstance(module, kinds))
    return {key for key in keys if key.startswith(layers)} if layers else set()
