"""The policy's causal language model: built from a ``BackboneSpec``, trained in full or with LoRA,
exported as a plain Hugging Face folder.

An export is what ``AutoModelForCausalLM.from_pretrained`` loads: the weights (LoRA merged in by
default, computed as W + scale * B A without touching the live model), its generation config
with the stop ids, the tokenizer and its chat template, and ``lit_mrrml_policy.json`` saying what
was trained. A GGUF-loaded model is rebuilt from its config first (transformers cannot write
GGUF-quantized weights); a bitsandbytes-quantized base cannot be merged, so it exports its adapter.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from lit_mrrml.jsonio import dumps
from lit_mrrml.models.backbone import BackboneSpec, base_state_dict, build_backbone, rebuild_from_config
from lit_mrrml.models.lora import LoraSpec, add_lora, merged_weight

PolicyMode = Literal["full", "lora"]
POLICY_FILE = "lit_mrrml_policy.json"


def build_policy_model(
    spec: BackboneSpec,
    mode: PolicyMode,
    lora: LoraSpec,
    gradient_checkpointing: bool = False,
    disable_dropout: bool = True,
    device: torch.device | None = None,
) -> nn.Module:
    """The causal LM of ``spec``, with LoRA adapters in ``lora`` mode (QLoRA on a quantized base).

    ``disable_dropout`` sets every dropout to 0, so that the training forward computes the same
    log-probabilities as the eval-mode rollout (the importance ratio starts at exactly 1).
    """
    quantized = spec.quantized
    if quantized and mode == "full":
        raise ValueError("a quantized policy cannot be trained in full: use training_mode lora (QLoRA)")
    model: Any = build_backbone(spec, device=device, lm_head=True)
    if mode == "lora":
        model = add_lora(model, lora, quantized, gradient_checkpointing, task_type="CAUSAL_LM")
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if disable_dropout:
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.0
    return model


def merged_causal_lm(model: nn.Module, spec: BackboneSpec) -> PreTrainedModel:
    """A plain transformers model holding ``model``'s weights, LoRA updates merged in.

    The live model is left as it is: each adapted layer's weight comes from
    ``lit_mrrml.models.lora.merged_weight`` (W + scale * B A, not merged in place).
    """
    wrapped: Any = model  # a peft model or a plain transformers one
    base: Any = wrapped.get_base_model() if hasattr(wrapped, "get_base_model") else wrapped
    lora_layers = {n: m for n, m in base.named_modules() if hasattr(m, "get_delta_weight") and hasattr(m, "base_layer")}
    if not lora_layers and not spec.gguf_file:
        return base
    if spec.quantized:
        raise ValueError("cannot merge LoRA into a bitsandbytes-quantized base: export with merge=False")
    state = base_state_dict(base)
    for name, layer in lora_layers.items():
        state[f"{name}.weight"] = merged_weight(layer)
    clone = rebuild_from_config(base, state, spec, lm_head=True)
    clone.generation_config = copy.deepcopy(base.generation_config)  # the export's to edit, not the live model's
    return clone


def save_policy(
    model: nn.Module,
    spec: BackboneSpec,
    tokenizer: PreTrainedTokenizerBase,
    directory: Path,
    stop_ids: list[int],
    mode: PolicyMode,
    lora: LoraSpec | None,
    merge: bool = True,
) -> Path:
    """Write ``model`` as a Hugging Face folder (see the module docstring); returns the folder."""
    directory.mkdir(parents=True, exist_ok=True)
    adapter_only = mode == "lora" and not merge
    if adapter_only:
        model.save_pretrained(directory)  # type: ignore[operator]  # peft: adapter_config.json + weights
    else:
        plain: Any = merged_causal_lm(model, spec)  # full mode: the live model itself
        generation = copy.deepcopy(plain.generation_config)  # set the stop ids on the export only
        generation.eos_token_id, generation.pad_token_id = stop_ids, tokenizer.pad_token_id
        plain.save_pretrained(directory)
        generation.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    info = {
        "format": "lit_mrrml.policy/1",
        "base": dataclasses.asdict(spec),
        "training_mode": mode,
        "lora": dataclasses.asdict(lora) if lora is not None and mode == "lora" else None,
        "merged": not adapter_only,
        "stop_ids": stop_ids,
    }
    (directory / POLICY_FILE).write_text(dumps(info, str(directory / POLICY_FILE), indent=2), encoding="utf-8")
    return directory
