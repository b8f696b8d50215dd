"""BlockFSDPStrategy: Lightning's FSDPStrategy with the backbone's transformer block as the wrap unit.

Every Hugging Face model declares the classes that must stay whole on one device in
``_no_split_modules`` (``Qwen2DecoderLayer``, ``LlamaDecoderLayer``...): those are the blocks
FSDP wraps one by one, and the ones activation checkpointing recomputes. The strategy reads them
from the model that ``configure_model`` built (LoRA-wrapped or not), in ``_setup_model``, the hook
where Lightning wraps the model, so no class is hard-coded and any family works. The rest (the
embeddings, the final norm, a reward head) lands in the root unit.
"""

from __future__ import annotations

from typing import Any, Literal

from lightning.fabric.strategies.fsdp import _activation_checkpointing_kwargs, _auto_wrap_policy_kwargs
from lightning.pytorch.strategies import FSDPStrategy
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn
from torch import nn

from lit_mrrml.errors import InputError
from lit_mrrml.models.sharding import block_classes

COMPUTED = ("auto_wrap_policy", "activation_checkpointing", "activation_checkpointing_policy")


def block_types(model: nn.Module) -> set[type[nn.Module]]:
    """The classes of ``model``'s transformer blocks: those its submodules name in ``_no_split_modules``.

    Raises InputError when there are none (a model that is not a Hugging Face transformer).
    """
    names = block_classes(model)
    found = {type(m) for m in model.modules() if type(m).__name__ in names}
    if not found:
        raise InputError(
            f"BlockFSDPStrategy: {type(model).__name__} has no transformer block to wrap (no submodule lists a "
            "class of the model in _no_split_modules): use strategy ddp, or Lightning's FSDPStrategy with an "
            "explicit auto_wrap_policy"
        )
    return found


class BlockFSDPStrategy(FSDPStrategy):
    """FSDP (one unit a transformer block, found from the loaded model), sharded checkpoints by default."""

    def __init__(
        self,
        checkpoint_blocks: bool = False,
        sharding_strategy: Literal["FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD"] = "FULL_SHARD",
        state_dict_type: Literal["full", "sharded"] = "sharded",
        use_orig_params: bool = True,
        cpu_offload: bool = False,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            checkpoint_blocks: Activation checkpointing of every transformer block (recomputed in
                backward: less memory, about a third more compute). Leave the module's own
                ``gradient_checkpointing`` off then: both recompute the same blocks.
            sharding_strategy: What FSDP shards: ``FULL_SHARD`` (parameters, gradients and optimizer
                state, ZeRO-3), ``SHARD_GRAD_OP`` (gradients and optimizer state), ``NO_SHARD``
                (DDP) or ``HYBRID_SHARD`` (full within a node, replicated across nodes).
            state_dict_type: ``sharded``: every rank writes its shard (a checkpoint folder, fast and
                without gathering the model on one rank); ``full``: rank 0 writes one file.
            use_orig_params: Keep the original parameters visible to the optimizer: needed for
                mixed trainable and frozen weights in one unit (LoRA, a frozen backbone under a
                trained head) and for 4-bit weights.
            cpu_offload: Keep parameters and gradients on the CPU between uses.
            kwargs: Other arguments of Lightning's ``FSDPStrategy`` and of torch's
                ``FullyShardedDataParallel`` (``limit_all_gathers``, ``sync_module_states``...); the wrap
                and checkpointing policies are computed, not given.
        """
        given = [k for k in COMPUTED if kwargs.get(k) is not None]
        if given:
            raise InputError(
                f"BlockFSDPStrategy computes the wrap and checkpointing policies from the model's blocks; "
                f"remove {given} (set checkpoint_blocks instead), or use lightning's FSDPStrategy to set them by hand"
            )
        kwargs = {k: v for k, v in kwargs.items() if k not in COMPUTED}
        super().__init__(
            sharding_strategy=sharding_strategy,
            state_dict_type=state_dict_type,
            cpu_offload=cpu_offload,
            use_orig_params=use_orig_params,
            **kwargs,
        )
        self.checkpoint_blocks = checkpoint_blocks
        self.blocks: set[type[nn.Module]] = set()

    def configure_policies(self, model: nn.Module) -> set[type[nn.Module]]:
        """Set the wrap policy (and, with ``checkpoint_blocks``, the checkpointing policy) to
        ``model``'s block classes, as FSDPStrategy does for a set of classes given by hand."""
        self.blocks = block_types(model)
        self.kwargs = _auto_wrap_policy_kwargs(set(self.blocks), self.kwargs)
        if self.checkpoint_blocks:
            self._activation_checkpointing_kwargs = _activation_checkpointing_kwargs(None, set(self.blocks))
            blocks = [m for m in model.modules() if type(m) in self.blocks]
            if any(getattr(m, "gradient_checkpointing", False) is True for m in blocks):  # transformers' own
                rank_zero_warn(
                    "checkpoint_blocks and the module's gradient_checkpointing are both on: the blocks are "
                    "recomputed twice in backward; turn one of them off"
                )
        names = sorted(t.__name__ for t in self.blocks)
        rank_zero_info(f"FSDP: one unit a transformer block {names}, activation checkpointing {self.checkpoint_blocks}")
        return self.blocks

    def _setup_model(self, model: nn.Module) -> nn.Module:
        """Compute the policies from the built model, then let Lightning wrap it."""
        self.configure_policies(model)
        return super()._setup_model(model)
