"""The policy's weights as a plain transformers model holds them, streamed one FSDP unit at a time.

For a rollout engine that keeps its own copy of the policy (vLLM): ``stream_merged_weights`` hands
``(name, tensor)`` pairs to a loader under the names of the plain ``AutoModelForCausalLM`` (the
names vLLM's ``load_weights`` maps onto its fused layers), with

- LoRA merged in as W + scale * B A (peft's ``get_delta_weight``), computed per layer without
  touching the live model (as ``lit_mrrml.models.policy_model.merged_causal_lm``), so the base
  weights that serve as the reference keep no rounding error;
- bitsandbytes 4-bit and 8-bit weights dequantized (peft's ``dequantize_module_weight``);
- sharded weights gathered one unit at a time, so the extra memory is one transformer block:
  FSDP2 (``fully_shard``) through each unit's ``unshard()`` / ``reshard()``, FSDP1 (Lightning's
  FSDPStrategy) through ``summon_full_params(unit, recurse=False, writeback=False)``. Under FSDP1
  the weights outside the wrapped blocks (embeddings, final norm, LM head) belong to the wrapper
  around the LightningModule: pass it as ``root``. Every rank must make the same calls (the
  gathers are collectives), and the loader must use each pair before it returns: the gathered
  storage is freed when the unit is resharded.

Parameters only (no buffers: a transformers LM keeps its rotary tables as non-persistent
buffers), each once (a tied LM head is its embedding).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel

from lit_mrrml.models.lora import QUANTIZED, dense, dense_weight, merged_weight

WRAPPER_SEGMENTS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")
PEFT_PREFIX = "base_model.model."
Loader = Callable[[Iterable[tuple[str, Tensor]]], Any]


def plain_name(name: str) -> str:
    """A parameter's name in the plain transformers model: wrapper segments and peft's prefix removed,
    an adapted layer's ``base_layer`` folded back into the layer."""
    for segment in WRAPPER_SEGMENTS:
        name = name.replace(segment, "")
    return name.removeprefix(PEFT_PREFIX).replace(".base_layer.", ".")


def is_unit(module: nn.Module) -> bool:
    """An FSDP1 or FSDP2 unit: a module whose own parameters are gathered together."""
    return isinstance(module, (FullyShardedDataParallel, FSDPModule))


@contextlib.contextmanager
def gathered(unit: nn.Module | None) -> Iterator[None]:
    """The unit's own parameters whole (not those of the units nested in it) inside the block."""
    if isinstance(unit, FullyShardedDataParallel):
        with FullyShardedDataParallel.summon_full_params(unit, recurse=False, writeback=False):
            yield
    elif isinstance(unit, FSDPModule):
        unit.unshard()
        try:
            yield
        finally:
            unit.reshard()
    else:
        yield


def owners(model: nn.Module) -> dict[str, list[str]]:
    """Parameter names of ``model`` grouped by the deepest unit holding them ('' when none does),
    deepest units first, so that each group is gathered once."""
    units = [name for name, module in model.named_modules() if is_unit(module)]
    groups: dict[str, list[str]] = {name: [] for name in sorted(units, key=lambda n: -n.count("."))}
    groups.setdefault("", [])
    for name, _ in model.named_parameters():
        holder = max((u for u in units if u == "" or name.startswith(f"{u}.")), key=len, default="")
        groups[holder].append(name)
    return groups


def _pairs(model: nn.Module, names: list[str]) -> Iterator[tuple[str, Tensor]]:
    """The plain (name, tensor) pairs of the parameters ``names``, one at a time."""
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    for name in names:
        if ".lora_" in name:
            continue  # merged into the adapted layer's weight
        owner_name, _, leaf = name.rpartition(".")
        owner = modules[owner_name]
        layer = modules.get(owner_name.removesuffix(".base_layer"))
        if leaf == "weight" and owner_name.endswith(".base_layer") and hasattr(layer, "get_delta_weight"):
            yield plain_name(name), merged_weight(layer)
        elif leaf == "weight" and type(params[name]).__name__ in QUANTIZED:
            yield plain_name(name), dense_weight(owner)
        else:
            yield plain_name(name), dense(params[name]).detach()


def stream_merged_weights(model: nn.Module, load: Loader, root: nn.Module | None = None) -> list[str]:
    """Call ``load`` once a unit with that unit's (name, tensor) pairs, gathered; returns the names sent.

    Args:
        model: The policy (a transformers causal LM, peft-wrapped or not, sharded or not).
        load: Takes an iterable of (name, tensor) and uses each tensor before returning
            (vLLM's ``model.load_weights``).
        root: The module the strategy wrapped, when it is an FSDP1 unit holding the weights that
            no block of ``model`` holds (Lightning's FSDPStrategy wraps the LightningModule).
    """
    sent: list[str] = []
    modules = dict(model.named_modules())
    with torch.no_grad():
        for unit_name, names in owners(model).items():
            if not names:  # a wrapper without weights of its own (the same on every rank)
                continue
            unit = modules[unit_name] if is_unit(modules[unit_name]) else None
            outer = root if unit is None and root is not None and is_unit(root) else None
            with gathered(unit if unit is not None else outer):
                load(_recording(_pairs(model, names), sent))
    return sent


def _recording(pairs: Iterator[tuple[str, Tensor]], sent: list[str]) -> Iterator[tuple[str, Tensor]]:
    for name, tensor in pairs:
        sent.append(name)
        yield name, tensor
