"""FSDP2 sharding of the reward model and the policy under Lightning's ModelParallelStrategy.

Each transformer block (the model's ``_no_split_modules`` classes, as transformers declares them
for any family) becomes its own FSDP unit, then the rest of the model (embeddings, final norm,
LM head; tied embeddings stay one parameter because both ends sit in that last unit), over the
mesh's data-parallel dimension. Without this call ModelParallelStrategy trains with no gradient
synchronisation at all, so it is not optional.

Placement (what each rank holds):

- the trained model (reward backbone and head, or the policy, LoRA adapters included): sharded,
  with its gradients and optimizer state; a block is all-gathered only while it runs;
- the frozen reference of full GRPO fine-tuning: its own FSDP2 units (``shard_frozen``), outside
  the trained model's units and optimizer, without gradients, resharded after every forward;
- the LoRA reference: the policy itself with its adapter disabled, nothing extra;
- the reward model behind ``RewardModelReward``: not a submodule of the policy (a plain
  attribute of a ``RewardSource``), so no strategy wraps or shards it: a whole frozen copy on
  every rank, in eval mode.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.distributed.device_mesh import DeviceMesh


def block_classes(model: nn.Module) -> set[str]:
    """Class names of the model's transformer blocks, as transformers declares them."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or [])
    return names


def decoder_blocks(model: nn.Module) -> list[nn.Module]:
    """The model's transformer blocks, outermost first; refuses a model without any."""
    classes = block_classes(model)
    blocks = [m for m in model.modules() if type(m).__name__ in classes]
    if not blocks:
        raise ValueError(f"cannot shard {type(model).__name__}: no transformer blocks found (_no_split_modules)")
    return blocks


def data_parallel_mesh(mesh: DeviceMesh) -> DeviceMesh:
    """The data-parallel dimension of Lightning's (data_parallel, tensor_parallel) mesh."""
    names = mesh.mesh_dim_names or ()
    return mesh["data_parallel"] if "data_parallel" in names else mesh


def shard_blocks_and_root(model: nn.Module, mesh: DeviceMesh, reshard_after_forward: bool | None = None) -> int:
    """fully_shard every block, then ``model`` itself; returns the number of blocks.

    ``reshard_after_forward=None`` is FSDP2's default: blocks free their gathered weights after
    forward, the root keeps its own until backward (no second all-gather right away).
    """
    from torch.distributed.fsdp import fully_shard

    dp_mesh = data_parallel_mesh(mesh)
    blocks = decoder_blocks(model)
    kwargs: dict[str, Any] = {} if reshard_after_forward is None else {"reshard_after_forward": reshard_after_forward}
    for block in blocks:
        fully_shard(block, mesh=dp_mesh, **kwargs)
    fully_shard(model, mesh=dp_mesh, **kwargs)
    return len(blocks)


def shard_reward_model(backbone: nn.Module, head: nn.Module, mesh: DeviceMesh) -> int:
    """fully_shard every block, then the backbone and the head; returns the number of blocks."""
    from torch.distributed.fsdp import fully_shard

    count = shard_blocks_and_root(backbone, mesh)
    fully_shard(head, mesh=data_parallel_mesh(mesh))
    return count


def transformers_model(model: nn.Module) -> nn.Module:
    """The transformers model inside a peft wrapper (the model itself when it is not wrapped)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def shard_causal_lm(model: nn.Module, mesh: DeviceMesh) -> int:
    """Shard a causal LM, peft-wrapped or not; returns the number of blocks.

    The root unit is the transformers model inside a peft wrapper, not the wrapper: ``generate``
    on a ``PeftModel`` calls the inner model's ``generate`` and forward, never the wrapper's own
    forward, so a hook on the wrapper would never gather the embeddings and the LM head.
    """
    inner = transformers_model(model)
    count = shard_blocks_and_root(inner, mesh)
    check_tied_embeddings(inner)
    return count


def shard_frozen(model: nn.Module, mesh: DeviceMesh) -> int:
    """Shard a frozen copy (GRPO's full-mode reference) in its own units, resharded after every
    forward (it never runs backward, which is where a root frees its gathered weights)."""
    model.requires_grad_(False)
    inner = transformers_model(model)
    count = shard_blocks_and_root(inner, mesh, reshard_after_forward=True)
    check_tied_embeddings(inner)
    return count


def check_tied_embeddings(model: nn.Module) -> None:
    """Refuse a sharded model whose tied input and output embeddings came apart."""
    config = getattr(model, "config", None)
    if not getattr(config, "tie_word_embeddings", False):
        return
    get_in, get_out = getattr(model, "get_input_embeddings", None), getattr(model, "get_output_embeddings", None)
    inputs, outputs = (get_in() if callable(get_in) else None), (get_out() if callable(get_out) else None)
    if inputs is not None and outputs is not None and inputs.weight is not outputs.weight:
        raise RuntimeError(f"sharding {type(model).__name__} untied its tied input and output embeddings")


def is_sharded(model: nn.Module) -> bool:
    """Whether any part of ``model`` is an FSDP2 unit (its forwards all-gather across ranks)."""
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in model.modules())
