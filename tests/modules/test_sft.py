"""SFTPolicy: the assistant-token loss by hand, two-step CPU runs (full and LoRA), the Hugging Face
export, the command line, and the LoRA reference of the RL stage (design/policy.md, check 7)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from torch.testing import assert_close
from transformers import AutoModelForCausalLM, AutoTokenizer

from lit_mrrml import SFTDataModule, SFTPolicy
from lit_mrrml.data.chat import IGNORE
from lit_mrrml.models.backbone import BackboneSpec, QuantizationSpec
from lit_mrrml.models.lora import LoraSpec
from lit_mrrml.models.policy_model import POLICY_FILE, build_policy_model
from lit_mrrml.models.tiny import TINY_QWEN2
from lit_mrrml.modules.sft import assistant_token_loss
from lit_mrrml.policy.masks import IM_END
from tests.conftest import DEMO, MATRIX_PATH, TINY_TOKENIZER
from tests.test_cli import run_cli

Batch = dict[str, torch.Tensor]


# ---- the loss by hand ------------------------------------------------------------------------
def test_assistant_token_loss_by_hand() -> None:
    # T = 4, vocabulary 3; the prompt is positions 0-1 (label -100), the answer positions 2-3.
    logits = torch.tensor(
        [
            [
                [5.0, -5.0, 0.0],  # t=0 scores label 1 (-100): unused
                [0.0, 0.0, 0.0],  # t=1 scores label 2 = 2: softmax 1/3 each, -log = log 3
                [math.log(2.0), 0.0, 0.0],  # t=2 scores label 3 = 0: softmax (2, 1, 1) / 4, -log = log 2
                [9.0, 0.0, -9.0],  # t=3 has nothing after it: unused
            ]
        ]
    )  # (B=1, T=4, V=3)
    labels = torch.tensor([[IGNORE, IGNORE, 2, 0]])  # (B, T)
    loss, count = assistant_token_loss(logits, labels)
    assert int(count) == 2
    assert_close(loss, torch.tensor((math.log(3.0) + math.log(2.0)) / 2), atol=1e-6, rtol=0)


def test_a_batch_without_labelled_tokens_gives_0_and_a_zero_gradient() -> None:
    logits = torch.randn(2, 5, 3, requires_grad=True)
    loss, count = assistant_token_loss(logits, torch.full((2, 5), IGNORE))
    loss.backward()
    assert int(count) == 0 and loss.item() == 0.0
    assert logits.grad is not None and torch.equal(logits.grad, torch.zeros_like(logits))


def test_the_logits_before_unlabelled_tokens_do_not_matter() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 3, requires_grad=True)  # (B, T, V)
    labels = torch.tensor([[IGNORE, IGNORE, IGNORE, 1, 2, IGNORE], [IGNORE, 0, 2, IGNORE, IGNORE, IGNORE]])
    loss, count = assistant_token_loss(logits, labels)
    loss.backward()
    scored = torch.zeros(2, 6, dtype=torch.bool)  # the logit at t scores label t + 1
    scored[:, :-1] = labels[:, 1:] != IGNORE
    assert int(count) == 4 and logits.grad is not None
    assert torch.all(logits.grad[~scored] == 0) and torch.all(logits.grad[scored].abs().sum(-1) > 0)
    perturbed = logits.detach().clone()
    perturbed[~scored] += 100 * torch.randn_like(perturbed[~scored])  # the prompt's and padding's logits
    assert torch.equal(assistant_token_loss(perturbed, labels)[0], loss.detach())


# ---- two-step CPU runs -----------------------------------------------------------------------
def policy_spec() -> BackboneSpec:
    return BackboneSpec(config=dict(TINY_QWEN2), tokenizer=str(TINY_TOKENIZER))


def sft_data(spec: BackboneSpec) -> SFTDataModule:
    return SFTDataModule(
        matrix=str(MATRIX_PATH), train_files=[str(DEMO / "train.jsonl")], backbone=spec, max_length=256, batch_size=2
    )


@dataclass
class Trained:
    """A policy after a two-step fit, its parameters before it, and a training batch."""

    module: SFTPolicy
    before: dict[str, torch.Tensor]
    batch: Batch


def train_two_steps(mode: str, root: Path) -> Trained:
    L.seed_everything(0)
    spec = policy_spec()
    module, data = SFTPolicy(spec, training_mode=mode), sft_data(spec)  # type: ignore[arg-type]
    module.configure_model()
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        precision="32-true",
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
    )
    trainer.fit(module, datamodule=data)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert trainer.callback_metrics["train/assistant_tokens"] > 0
    return Trained(module.eval(), before, next(iter(data.train_dataloader())))


@pytest.fixture(scope="module")
def trained_full(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train_two_steps("full", tmp_path_factory.mktemp("full"))


@pytest.fixture(scope="module")
def trained_lora(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train_two_steps("lora", tmp_path_factory.mktemp("lora"))


def changed(trained: Trained) -> dict[str, bool]:
    """Parameter name -> whether the fit moved it."""
    return {n: not torch.equal(trained.before[n], p.detach()) for n, p in trained.module.named_parameters()}


def test_two_full_steps_change_every_parameter(trained_full: Trained) -> None:
    params = dict(trained_full.module.named_parameters())
    assert all(p.requires_grad for p in params.values())
    assert all(changed(trained_full).values()), [n for n, c in changed(trained_full).items() if not c]


def test_two_lora_steps_train_the_adapter_only(trained_lora: Trained) -> None:
    params = dict(trained_lora.module.named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    moved = changed(trained_lora)
    assert all(moved[n] for n in trainable), [n for n in trainable if not moved[n]]
    assert not any(moved[n] for n in params if n not in trainable)  # base weights bit-identical


def logits(model: Any, batch: Batch) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def test_the_step_loss_is_the_mean_over_assistant_tokens_only(trained_full: Trained) -> None:
    module, batch = SFTPolicy(policy_spec(), training_mode="full"), trained_full.batch  # no Trainer: log warns
    module.configure_model()
    with torch.no_grad(), pytest.warns(Warning, match="self.log"):
        loss = module.training_step(batch, 0)
    out = logits(module.policy, batch).log_softmax(-1)  # (B, T, V)
    terms = [
        -out[row, t, batch["input_ids"][row, t + 1]]  # labels equal the input ids where trained on
        for row in range(batch["labels"].shape[0])
        for t in range(batch["labels"].shape[1] - 1)
        if batch["labels"][row, t + 1] != IGNORE
    ]
    assert 0 < len(terms) < int(batch["attention_mask"].sum())  # some tokens, not all of them
    assert_close(loss, torch.stack(terms).mean(), atol=1e-5, rtol=0)
    unlabelled = {**batch, "labels": torch.full_like(batch["labels"], IGNORE)}  # assistant labels off too
    with torch.no_grad(), pytest.warns(Warning, match="self.log"):
        assert module.training_step(unlabelled, 0).item() == 0.0


# ---- export ----------------------------------------------------------------------------------
def test_a_full_export_loads_with_transformers_and_gives_the_same_logits(trained_full: Trained, tmp_path) -> None:
    module, batch = trained_full.module, trained_full.batch
    generation = module.policy.generation_config.to_dict()
    folder = module.save_pretrained(tmp_path / "export")
    assert module.policy.generation_config.to_dict() == generation  # the stop ids go to the export only
    loaded = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert_close(logits(loaded, batch), logits(module.policy, batch), atol=1e-5, rtol=0)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert tokenizer.chat_template and str(rendered).endswith("<|im_start|>assistant\n")
    stop = module.stop_ids
    assert tokenizer.convert_tokens_to_ids(IM_END) in stop
    assert list(loaded.generation_config.eos_token_id) == stop
    info = json.loads((folder / POLICY_FILE).read_text())
    assert info["merged"] is True and info["training_mode"] == "full" and info["stop_ids"] == stop


def test_a_lora_export_is_merged_without_touching_the_live_adapter(trained_lora: Trained, tmp_path) -> None:
    module, batch = trained_lora.module, trained_lora.batch
    policy = module.policy
    state_before = {n: p.detach().clone() for n, p in policy.state_dict().items()}
    live, generation = logits(policy, batch), policy.generation_config.to_dict()
    folder = module.save_pretrained(tmp_path / "export")
    assert policy.generation_config.to_dict() == generation
    merged = logits(AutoModelForCausalLM.from_pretrained(folder).eval(), batch)
    assert_close(merged, live, atol=1e-5, rtol=0)
    with policy.disable_adapter():
        assert (merged - logits(policy, batch)).abs().max() > 1e-4  # the adapter is not a no-op
    assert hasattr(policy, "peft_config") and any(".lora_B." in n for n in policy.state_dict())
    state_after = policy.state_dict()
    assert state_after.keys() == state_before.keys()
    assert all(torch.equal(state_after[n], v) for n, v in state_before.items())  # not merged in place
    assert torch.equal(logits(policy, batch), live)
    assert not (folder / "adapter_config.json").exists()
    assert json.loads((folder / POLICY_FILE).read_text())["merged"] is True


def test_a_lora_export_without_merge_is_a_peft_adapter_folder(trained_lora: Trained, tmp_path) -> None:
    folder = trained_lora.module.save_pretrained(tmp_path / "adapter", merge=False)
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == LoraSpec().r
    assert (folder / "adapter_model.safetensors").exists() and not (folder / "model.safetensors").exists()
    assert AutoTokenizer.from_pretrained(folder).chat_template
    info = json.loads((folder / POLICY_FILE).read_text())
    assert info["merged"] is False and info["training_mode"] == "lora" and info["lora"]["r"] == LoraSpec().r


def test_fit_from_the_command_line_exports_a_loadable_folder(tmp_path) -> None:
    out = run_cli("fit", "--config", "configs/policy/tiny_sft.yaml", f"--trainer.default_root_dir={tmp_path}")
    assert out.returncode == 0, out.stderr
    export = tmp_path / "export"
    assert export.is_dir() and f"exported to {export}" in out.stdout
    model = AutoModelForCausalLM.from_pretrained(export).eval()
    assert model.config.num_hidden_layers == 2 and AutoTokenizer.from_pretrained(export).chat_template
    assert json.loads((export / POLICY_FILE).read_text())["training_mode"] == "full"
    last = SFTPolicy.load_from_checkpoint(tmp_path / "checkpoints" / "last.ckpt", weights_only=True).eval()
    batch = {"input_ids": torch.tensor([[5, 17, 42, 99]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    assert_close(logits(last.policy, batch), logits(model, batch), atol=1e-5, rtol=0)  # the export is the last step


# ---- the RL stage's reference (design/policy.md, check 7) -------------------------------------
def test_a_fresh_adapter_on_the_sft_export_disabled_gives_the_export(trained_lora: Trained, tmp_path) -> None:
    export = trained_lora.module.save_pretrained(tmp_path / "sft")
    policy: Any = build_policy_model(BackboneSpec(path=str(export)), "lora", LoraSpec())
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if ".lora_B." in name:
                param.fill_(0.1)  # a fresh adapter is a no-op (B = 0): move it
    policy.eval()
    batch = trained_lora.batch
    reference = logits(AutoModelForCausalLM.from_pretrained(export).eval(), batch)
    with policy.disable_adapter():
        assert_close(logits(policy, batch), reference, atol=1e-5, rtol=0)
    assert (logits(policy, batch) - reference).abs().max() > 1e-3


# ---- bad settings ----------------------------------------------------------------------------
def test_settings_that_cannot_train_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="lora settings were given but training_mode is 'full': set it to 'lora'"):
        SFTPolicy(policy_spec(), training_mode="full", lora=LoraSpec())
    quantized = SFTPolicy(BackboneSpec(path=str(tmp_path), quantization=QuantizationSpec(bits=4)), training_mode="full")
    with pytest.raises(ValueError, match="a quantized policy cannot be trained in full: use training_mode lora"):
        quantized.configure_model()
    with pytest.raises(RuntimeError, match="call configure_model"):
        SFTPolicy(policy_spec()).save_pretrained(tmp_path / "x")
