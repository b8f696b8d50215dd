"""FSDP2 sharding of the reward model under Lightning's ModelParallelStrategy.

Each transformer block (the backbone's ``_no_split_modules`` classes) becomes its own FSDP unit,
then the backbone and the head, over the mesh's data-parallel dimension. Without this call,
ModelParallelStrategy trains with no gradient synchronisation at all, so it is not optional.
"""

from __future__ import annotations

from torch import nn
from torch.distributed.device_mesh import DeviceMesh


def block_classes(backbone: nn.Module) -> set[str]:
    """Class names of the backbone's transformer blocks, as transformers declares them."""
    names: set[str] = set()
    for module in backbone.modules():
        names.update(getattr(module, "_no_split_modules", None) or [])
    return names


def shard_reward_model(backbone: nn.Module, head: nn.Module, mesh: DeviceMesh) -> int:
    """fully_shard every block, then the backbone and the head; returns the number of blocks."""
    from torch.distributed.fsdp import fully_shard

    dp_mesh = mesh["data_parallel"] if mesh.mesh_dim_names and "data_parallel" in mesh.mesh_dim_names else mesh
    classes = block_classes(backbone)
    blocks = [m for m in backbone.modules() if type(m).__name__ in classes]
    if not blocks:
        raise ValueError(f"cannot shard {type(backbone).__name__}: no transformer blocks found (_no_split_modules)")
    for block in blocks:
        fully_shard(block, mesh=dp_mesh)
    fully_shard(backbone, mesh=dp_mesh)
    fully_shard(head, mesh=dp_mesh)
    return len(blocks)
