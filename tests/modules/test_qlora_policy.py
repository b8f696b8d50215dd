"""QLoRA policies: a 4- or 8-bit base (bitsandbytes on CPU) trained with LoRA, in SFT and in GRPO,
the quantized base untouched; the 4-bit base cannot be merged on export, so the adapter is exported
instead, and a lean checkpoint (the quantized base left out) reloads to the same logits."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from lit_mrrml import GRPOLoss, GRPOPolicy, SFTPolicy
from lit_mrrml.models.backbone import BackboneSpec, QuantizationSpec, build_backbone
from tests.conftest import TINY_TOKENIZER
from tests.modules.test_grpo import make_policy, prompts
from tests.modules.test_sft import policy_spec, sft_data

bnb = pytest.importorskip("bitsandbytes")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny causal LM saved to a folder (hidden 128: wide enough for 4-bit blocks)."""
    folder = tmp_path_factory.mktemp("base")
    torch.manual_seed(0)
    spec = policy_spec()
    config = dict(spec.config or {}, hidden_size=128, intermediate_size=256)
    build_backbone(BackboneSpec(config=config, tokenizer=spec.tokenizer), lm_head=True).save_pretrained(folder)
    return folder


def quantized(folder: Path, bits: int) -> BackboneSpec:
    return BackboneSpec(path=str(folder), tokenizer=str(TINY_TOKENIZER), quantization=QuantizationSpec(bits=bits))


@pytest.fixture(scope="module")
def four_bit(pretrained: Path) -> BackboneSpec:
    return quantized(pretrained, 4)


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


def packed(module: SFTPolicy | GRPOPolicy) -> dict[str, torch.Tensor]:
    """The bytes of every bitsandbytes layer's weights (4-bit blocks read as floats may be NaN)."""
    kinds = (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)
    layers = {n: m for n, m in module.policy.named_modules() if isinstance(m, kinds)}
    return {n: m.weight.data.view(torch.uint8).clone() for n, m in layers.items()}


def assert_same(after: dict[str, torch.Tensor], before: dict[str, torch.Tensor]) -> None:
    assert len(before) == 2 * 7 and after.keys() == before.keys()  # 2 layers x 7 linear layers
    assert all(torch.equal(after[n], before[n]) for n in before)


def logits(module: SFTPolicy, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    module.eval()
    with torch.no_grad():
        return module.policy(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def test_sft_trains_lora_on_a_4bit_base_and_exports_the_adapter(four_bit, tmp_path):
    module = SFTPolicy(four_bit, training_mode="lora")
    module.configure_model()
    assert any("Linear4bit" in type(m).__name__ for m in module.policy.modules())
    before, base = trainable(module), packed(module)
    assert before and all("lora_" in n for n in before)
    trainer = fit(module, sft_data(four_bit), tmp_path)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert all(not torch.equal(p, before[n]) for n, p in trainable(module).items())
    assert_same(packed(module), base)
    with pytest.raises(ValueError, match="cannot merge LoRA into a bitsandbytes-quantized base"):
        module.save_pretrained(tmp_path / "merged")
    assert (module.save_pretrained(tmp_path / "adapter", merge=False) / "adapter_config.json").is_file()


@pytest.mark.parametrize("bits", [4, 8])
def test_a_lean_sft_checkpoint_leaves_the_quantized_base_out_and_reloads_to_the_same_logits(pretrained, bits, tmp_path):
    spec = quantized(pretrained, bits)
    module = SFTPolicy(spec, training_mode="lora")
    data = sft_data(spec)
    trainer = fit(module, data, tmp_path)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    trainer.save_checkpoint(tmp_path / "sft.ckpt")
    state = torch.load(tmp_path / "sft.ckpt", weights_only=True)["state_dict"]
    assert state and all(".lora_" in k for k in state)  # no packed weights nor quantization constants
    batch = next(iter(data.train_dataloader()))
    reloaded = SFTPolicy.load_from_checkpoint(tmp_path / "sft.ckpt")
    torch.testing.assert_close(logits(reloaded, batch), logits(module, batch), atol=1e-5, rtol=0)


def test_grpo_trains_lora_on_a_4bit_base_against_its_disabled_adapter(four_bit, tmp_path):
    module = make_policy(four_bit, training_mode="lora", loss=GRPOLoss(beta=0.1))
    module.configure_model()
    before, base = trainable(module), packed(module)
    trainer = fit(module, prompts(four_bit), tmp_path)
    assert torch.isfinite(trainer.callback_metrics["policy/loss"])
    assert float(trainer.callback_metrics["policy/kl"]) >= 0.0
    assert module.reference is None  # LoRA: the reference is the base with the adapter disabled
    assert any(not torch.equal(p, before[n]) for n, p in trainable(module).items())
    assert_same(packed(module), base)  # rollouts in eval mode between steps kept the training layout
