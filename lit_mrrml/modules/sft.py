"""SFTPolicy: the cold start of the policy, next-token cross-entropy on assistant tokens only.

loss = - sum_t [label_t != -100] log p(label_t | tokens < t) / #(label_t != -100), over the
batch: the prompt, the template's tokens and the padding carry label -100 (SFTDataModule), so
only the assistant's words and its end-of-turn token are learned, each token weighing the same.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from lit_mrrml.models.backbone import BackboneSpec
from lit_mrrml.models.lora import LoraSpec
from lit_mrrml.models.policy_model import PolicyMode
from lit_mrrml.modules.batch_info import log_effective_batch
from lit_mrrml.modules.causal_lm import CausalLMModule

IGNORE = -100


def assistant_token_loss(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """(mean cross-entropy over labelled tokens, their count); logits (B, T, V), labels (B, T).

    The logit at position t scores label t + 1. A batch without any labelled token gives 0.
    """
    shifted = labels[:, 1:]  # (B, T-1)
    count = (shifted != IGNORE).sum()
    total = F.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), shifted.flatten(), ignore_index=IGNORE, reduction="sum"
    )
    return total / count.clamp(min=1), count


class SFTPolicy(CausalLMModule):
    """Supervised fine-tuning of the policy on good answers (the SFT cold start)."""

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
        """
        Args:
            backbone: Where the causal LM comes from (hub id, folder, GGUF file or random-init config;
                4 or 8 bits with ``quantization``, then trained with LoRA: QLoRA).
            optimizer: Optimizer factory, called with the trainable parameters.
            lr_scheduler: Optional scheduler factory, stepped every optimizer step.
            training_mode: ``full`` trains every weight; ``lora`` trains LoRA adapters only.
            lora: LoRA settings for ``training_mode: lora`` (defaults when omitted).
            gradient_checkpointing: Recompute activations in backward to save memory.
            disable_dropout: Set every dropout probability to 0.
        """
        super().__init__(
            backbone, optimizer, lr_scheduler, training_mode, lora, gradient_checkpointing, disable_dropout
        )
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self._plain_hparams()

    def on_fit_start(self) -> None:
        """Say the effective batch (conversations per device x devices x nodes x accumulation)."""
        log_effective_batch(self, "conversations")

    def _step(self, batch: dict[str, Any], stage: str) -> Tensor:
        logits = self.policy(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss, count = assistant_token_loss(logits, batch["labels"])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{stage}: non-finite loss {loss.item()} over {int(count)} assistant tokens")
        b = batch["input_ids"].shape[0]
        self.log(f"{stage}/loss", loss, batch_size=b, prog_bar=True, sync_dist=stage != "train")
        self.log(f"{stage}/assistant_tokens", count.float(), batch_size=b, reduce_fx="sum", sync_dist=stage != "train")
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._step(batch, "test")
