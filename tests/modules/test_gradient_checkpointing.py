"""The ``gradient_checkpointing`` switch of the reward model and of both policies: on, every block's
forward runs again in backward (it is really applied), and the loss and the gradients are those of
the run without it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from torch import Tensor, nn

from lit_mrrml import GRPOPolicy, PromptDataModule, RewardModel, SFTDataModule, SFTPolicy
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.models.backbone import BackboneSpec, build_backbone
from lit_mrrml.models.sharding import block_classes
from lit_mrrml.modules.sft import assistant_token_loss
from lit_mrrml.policy.rewards import CallableReward
from tests.conftest import DEMO, MATRIX_PATH, TINY_QWEN2, TINY_TOKENIZER
from tests.modules.test_reward_model import make_data, make_model, trainer


def count_block_forwards(module: nn.Module) -> Counter[str]:
    """Runs of every transformer block's body, counted from now on by block name: the calls of its
    first submodule (transformers checkpoints a block's ``forward``, inside its hooks, so the block's
    own hooks fire once either way)."""
    calls: Counter[str] = Counter()
    names = block_classes(module)
    for name, block in module.named_modules():
        if type(block).__name__ in names:
            first = next(block.children())
            first.register_forward_hook(lambda *_, name=name: calls.update([name]))
    return calls


def loss_and_grads(module: nn.Module, loss_fn: Callable[[], Tensor]) -> tuple[Tensor, dict[str, Tensor], Counter]:
    """The loss in train mode (seeded: LoRA dropout draws the same masks), its gradients and the block calls."""
    module.train()
    calls = count_block_forwards(module)
    torch.manual_seed(3)
    loss = loss_fn()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    return loss.detach(), grads, calls


def reward_loss(model: RewardModel, batch: dict[str, Any]) -> Callable[[], Tensor]:
    def run() -> Tensor:
        out, _ = model.score_batch(batch)
        index = batch["dimension"][:, None, None].expand(-1, out.rewards.shape[1], 1)
        rewards = out.rewards.gather(2, index).squeeze(2)  # (B, K) on each unit's dimension
        return model.loss(out.z, rewards, out.axes[:, 0], batch["num_responses"], batch["dimension"]).loss

    return run


def policy_loss(module: SFTPolicy | GRPOPolicy, batch: dict[str, Any]) -> Callable[[], Tensor]:
    def run() -> Tensor:
        logits = module.policy(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return assistant_token_loss(logits, batch["labels"])[0]

    return run


def build_twice(make: Callable[[bool], nn.Module]) -> tuple[nn.Module, nn.Module]:
    """The module without and with gradient checkpointing, holding the same weights."""
    off, on = make(False), make(True)
    for module in (off, on):
        module.configure_model()  # type: ignore[operator]
    on.load_state_dict(off.state_dict())
    return off, on


def assert_same_and_recomputed(off: nn.Module, on: nn.Module, loss_off: Callable, loss_on: Callable) -> None:
    plain, plain_grads, plain_calls = loss_and_grads(off, loss_off)
    checked, checked_grads, checked_calls = loss_and_grads(on, loss_on)
    assert plain_calls and set(plain_calls.values()) == {1}  # one forward a block
    assert checked_calls.keys() == plain_calls.keys() and set(checked_calls.values()) == {2}  # again in backward
    torch.testing.assert_close(checked, plain)
    assert checked_grads.keys() == plain_grads.keys() and plain_grads
    for name, grad in plain_grads.items():
        torch.testing.assert_close(checked_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_the_reward_model_recomputes_its_blocks(mode, tiny_spec, unit_files, matrix: RubricMatrix) -> None:
    data = make_data(tiny_spec, unit_files)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    off, on = build_twice(lambda gc: make_model(tiny_spec, matrix, training_mode=mode, gradient_checkpointing=gc))
    assert isinstance(off, RewardModel) and isinstance(on, RewardModel)
    assert_same_and_recomputed(off, on, reward_loss(off, batch), reward_loss(on, batch))


def policy(kind: str, spec: BackboneSpec, mode: str, gc: bool) -> SFTPolicy | GRPOPolicy:
    """An SFT or GRPO policy (the latter with a constant reward: only its model matters here)."""
    if kind == "sft":
        return SFTPolicy(spec, training_mode=mode, gradient_checkpointing=gc)  # type: ignore[arg-type]
    reward = CallableReward(lambda prompts, completions: [1.0] * len(completions), ["score"])
    return GRPOPolicy(spec, reward, training_mode=mode, gradient_checkpointing=gc)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["sft", "grpo"])
@pytest.mark.parametrize("mode", ["full", "lora"])
def test_both_policies_recompute_their_blocks(kind, mode, tiny_spec: BackboneSpec, tmp_path: Path) -> None:
    data = SFTDataModule(
        matrix=str(MATRIX_PATH), train_files=[str(DEMO / "train.jsonl")], backbone=tiny_spec, max_length=128
    )
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    off, on = build_twice(lambda gc: policy(kind, tiny_spec, mode, gc))
    assert_same_and_recomputed(off, on, policy_loss(off, batch), policy_loss(on, batch))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> BackboneSpec:
    """The tiny model saved and loaded back by ``from_pretrained``, which hands it over in eval mode."""
    folder = tmp_path_factory.mktemp("pretrained")
    torch.manual_seed(0)
    spec = BackboneSpec(config=dict(TINY_QWEN2), tokenizer=str(TINY_TOKENIZER))
    build_backbone(spec, lm_head=True).save_pretrained(folder)
    return BackboneSpec(path=str(folder), tokenizer=str(TINY_TOKENIZER))


class BlockModes(L.Callback):
    """Records, for every run of a block's body with gradients on, whether the block was in train
    mode: the forward and, under gradient checkpointing, the recompute in backward."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.modes: set[bool] = set()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        names = block_classes(pl_module)
        for name, block in pl_module.named_modules():
            if type(block).__name__ in names:
                first = next(block.children())
                first.register_forward_pre_hook(lambda *_, name=name, block=block: self.record(name, block))

    def record(self, name: str, block: nn.Module) -> None:
        if torch.is_grad_enabled():
            self.runs.update([name])
            self.modes.add(block.training)


def fit_one_step(module: L.LightningModule, data: L.LightningDataModule, root: Path) -> BlockModes:
    modes = BlockModes()
    trainer(root, max_steps=1, limit_val_batches=0, callbacks=[modes]).fit(module, datamodule=data)
    return modes


@pytest.mark.parametrize("kind", ["reward/lora", "reward/full", "sft/lora", "grpo/full"])
def test_a_pretrained_backbone_trains_in_train_mode_with_its_blocks_recomputed(
    kind, pretrained: BackboneSpec, unit_files, matrix: RubricMatrix, tmp_path: Path
) -> None:
    # Lightning keeps every submodule's mode at fit start; a from_pretrained model arrives in eval
    # mode, where transformers skips gradient checkpointing (and dropout) without a word
    module_kind, mode = kind.split("/")
    module: L.LightningModule
    if module_kind == "reward":
        data: L.LightningDataModule = make_data(pretrained, unit_files)
        module = make_model(pretrained, matrix, training_mode=mode, gradient_checkpointing=True)
    else:
        data = (SFTDataModule if module_kind == "sft" else PromptDataModule)(
            matrix=str(MATRIX_PATH), train_files=[str(DEMO / "train.jsonl")], backbone=pretrained, batch_size=2
        )
        module = policy(module_kind, pretrained, mode, True)
    modes = fit_one_step(module, data, tmp_path)
    assert modes.modes == {True}
    assert modes.runs and all(n >= 2 and n % 2 == 0 for n in modes.runs.values())  # each forward recomputed once
