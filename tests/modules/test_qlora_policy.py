"""QLoRA policies: a 4-bit base (bitsandbytes on CPU) trained with LoRA, in SFT and in GRPO; the
4-bit base cannot be merged on export, so the adapter is exported instead."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from lit_mrrml import GRPOLoss, GRPOPolicy, SFTPolicy
from lit_mrrml.models.backbone import BackboneSpec, build_backbone
from tests.conftest import TINY_TOKENIZER
from tests.modules.test_grpo import make_policy, prompts
from tests.modules.test_sft import policy_spec, sft_data

pytest.importorskip("bitsandbytes")


@pytest.fixture(scope="module")
def four_bit(tmp_path_factory: pytest.TempPathFactory) -> BackboneSpec:
    """A tiny causal LM saved to a folder (hidden 128: wide enough for 4-bit blocks), loaded in 4 bits."""
    folder = tmp_path_factory.mktemp("base")
    torch.manual_seed(0)
    spec = policy_spec()
    config = dict(spec.config or {}, hidden_size=128, intermediate_size=256)
    build_backbone(BackboneSpec(config=config, tokenizer=spec.tokenizer), lm_head=True).save_pretrained(folder)
    return BackboneSpec(path=str(folder), tokenizer=str(TINY_TOKENIZER), quantization="4bit")


def fit(module: L.LightningModule, data: L.LightningDataModule, root: Path) -> L.Trainer:
    trainer = L.Trainer(
        accelerator="cpu",
        precision="32-true",
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        default_root_dir=root,
    )
    trainer.fit(module, datamodule=data)
    return trainer


def trainable(module: SFTPolicy | GRPOPolicy) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.policy.named_parameters() if p.requires_grad}


def test_sft_trains_lora_on_a_4bit_base_and_exports_the_adapter(four_bit, tmp_path):
    module = SFTPolicy(four_bit, training_mode="lora")
    module.configure_model()
    assert any("Linear4bit" in type(m).__name__ for m in module.policy.modules())
    before = trainable(module)
    assert before and all("lora_" in n for n in before)
    trainer = fit(module, sft_data(four_bit), tmp_path)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert all(not torch.equal(p, before[n]) for n, p in trainable(module).items())
    with pytest.raises(ValueError, match="cannot merge LoRA into a bitsandbytes-quantized base"):
        module.save_pretrained(tmp_path / "merged")
    assert (module.save_pretrained(tmp_path / "adapter", merge=False) / "adapter_config.json").is_file()


def test_grpo_trains_lora_on_a_4bit_base_against_its_disabled_adapter(four_bit, tmp_path):
    module = make_policy(four_bit, training_mode="lora", loss=GRPOLoss(beta=0.1))
    module.configure_model()
    before = trainable(module)
    trainer = fit(module, prompts(four_bit), tmp_path)
    assert torch.isfinite(trainer.callback_metrics["policy/loss"])
    assert float(trainer.callback_metrics["policy/kl"]) >= 0.0
    assert module.reference is None  # LoRA: the reference is the base with the adapter disabled
    assert any(not torch.equal(p, before[n]) for n, p in trainable(module).items())
