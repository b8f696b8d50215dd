"""CausalLMModule: what SFTPolicy and GRPOPolicy share: the causal LM built from a BackboneSpec
(full or LoRA), its tokenizer, its optimizer, lean checkpoints and the Hugging Face export."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch.distributed.device_mesh import DeviceMesh
from transformers import PreTrainedTokenizerBase

from lit_mrrml.models.backbone import BackboneSpec, load_tokenizer
from lit_mrrml.models.lora import LoraSpec
from lit_mrrml.models.policy_model import PolicyMode, build_policy_model, save_policy
from lit_mrrml.models.quantization import quantized_state_keys
from lit_mrrml.models.sharding import shard_causal_lm
from lit_mrrml.modules.optim import trainable_optimizers
from lit_mrrml.policy.masks import stop_token_ids


class CausalLMModule(L.LightningModule):
    """A causal language model to fine-tune; subclasses add the training steps."""

    def __init__(
        self,
        backbone: BackboneSpec,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
        training_mode: PolicyMode = "lora",
        lora: LoraSpec | None = None,
        gradient_checkpointing: bool = False,
        disable_dropout: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(backbone, dict):  # from a checkpoint's hyperparameters
            backbone = BackboneSpec.from_dict(backbone)
        if isinstance(lora, dict):
            lora = LoraSpec(**lora)
        if training_mode != "lora" and lora is not None:
            raise ValueError(f"lora settings were given but training_mode is {training_mode!r}: set it to 'lora'")
        self.spec, self.training_mode = backbone, training_mode
        self.lora_spec = lora or LoraSpec()
        self.gradient_checkpointing, self.disable_dropout = gradient_checkpointing, disable_dropout
        self.optimizer_factory, self.scheduler_factory = optimizer, lr_scheduler
        self.policy: Any = None
        self._tokenizer: PreTrainedTokenizerBase | None = None

    def _plain_hparams(self) -> None:
        """Plain data in the hyperparameters (call after ``save_hyperparameters``), so that
        checkpoints load with ``weights_only=True``."""
        self.hparams["backbone"] = dataclasses.asdict(self.spec)
        self.hparams["lora"] = dataclasses.asdict(self.lora_spec) if self.training_mode == "lora" else None

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The policy's tokenizer (its chat template renders prompts), loaded once."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.spec)
        return self._tokenizer

    @property
    def stop_ids(self) -> list[int]:
        """Token ids that end a completion: the tokenizer's and the generation config's EOS ids."""
        config = getattr(self.policy, "generation_config", None) if self.policy is not None else None
        return stop_token_ids(self.tokenizer, config)

    def configure_model(self) -> None:
        """Build the causal LM (idempotent, so strategies may shard at build time), then the
        companions made from it (``build_companions``), then, under ModelParallelStrategy, shard
        them with FSDP2 (``shard``: without it that strategy would not synchronise gradients)."""
        if self.policy is not None:
            return
        self.policy = build_policy_model(
            self.spec,
            self.training_mode,
            self.lora_spec,
            self.gradient_checkpointing,
            self.disable_dropout,
            device=self.device,
        )
        # from_pretrained returns eval mode and Lightning keeps submodules' modes: train as this module
        # does, else dropout and gradient checkpointing would silently be off (see RewardModel)
        self.policy.train(self.training)
        self.build_companions()
        if self.device_mesh is not None:
            self.shard(self.device_mesh)

    def build_companions(self) -> None:
        """Models made from the freshly built, not yet sharded policy (GRPO's frozen reference)."""

    def shard(self, mesh: DeviceMesh) -> None:
        """FSDP2 over the mesh's data-parallel dimension: each decoder block, then the rest of the
        policy (see ``lit_mrrml.models.sharding`` for what each rank holds)."""
        shard_causal_lm(self.policy, mesh)

    def configure_optimizers(self) -> Any:
        return trainable_optimizers(self, self.optimizer_factory, self.scheduler_factory)

    # ---- checkpoints and export ---------------------------------------------------------------
    def _reloadable_keys(self) -> set[str]:
        """Frozen pretrained weights (a LoRA base loaded from ``path``) that configure_model rebuilds;
        none when sharded (a sharded checkpoint must hold every key the strategy loads back)."""
        sharded = self.device_mesh is not None
        if self.policy is None or self.spec.path is None or self.training_mode != "lora" or sharded:
            return set()
        frozen = self.policy.named_parameters(remove_duplicate=False)  # a tied lm_head.weight too
        return {f"policy.{n}" for n, p in frozen if not p.requires_grad}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Leave out frozen pretrained weights: they reload from the backbone's path."""
        skip = self._reloadable_keys()
        if skip:  # a quantized base's bitsandbytes state too: packed weights and their constants
            skip |= quantized_state_keys(checkpoint["state_dict"], self.policy, "policy.")
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k not in skip}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Fill the left-out frozen weights from the rebuilt model (a sharded checkpoint has no
        ``state_dict`` here: ModelParallelStrategy loads the weights into the shards itself)."""
        state = checkpoint.get("state_dict")
        if state is None:
            return
        own = self.state_dict()
        for key in self._reloadable_keys() - set(state):
            state[key] = own[key]

    def save_pretrained(self, directory: str | Path, merge: bool = True) -> Path:
        """Write a Hugging Face folder that ``AutoModelForCausalLM`` loads: weights (LoRA merged
        unless ``merge=False``), generation config, tokenizer and chat template."""
        if self.policy is None:
            raise RuntimeError("save_pretrained: the model has not been built (call configure_model() first)")
        lora = self.lora_spec if self.training_mode == "lora" else None
        return save_policy(
            self.policy, self.spec, self.tokenizer, Path(directory), self.stop_ids, self.training_mode, lora, merge
        )
