"""GRPOPolicy on CPU (design/policy.md, checks 5, 6, 7 and 9): the first pass, truncation, the
reference, and a toy run that must learn."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest
import torch
from torch import Tensor

from lit_mrrml.data.prompts import PromptDataModule
from lit_mrrml.losses.grpo import GRPOLoss, GRPOLossOutput
from lit_mrrml.models.backbone import BackboneSpec
from lit_mrrml.modules.grpo import GRPOPolicy
from lit_mrrml.policy.rewards import CallableReward
from lit_mrrml.testing.policy_rewards import letter_share
from tests.conftest import DEMO, MATRIX_PATH


class RecordingLoss(GRPOLoss):
    """GRPOLoss that keeps every call's metrics (one call per micro-batch and pass)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[dict[str, float]] = []

    def forward(self, *args: Any, **kwargs: Any) -> GRPOLossOutput:
        out = super().forward(*args, **kwargs)
        self.calls.append({"loss": float(out.loss.detach()), **{k: float(v) for k, v in out.metrics.items()}})
        return out


def make_policy(tiny_spec: BackboneSpec, **kwargs: Any) -> GRPOPolicy:
    settings: dict[str, Any] = {
        "reward": CallableReward(letter_share, ["e_share"]),
        "training_mode": "full",
        "num_generations": 4,
        "max_new_tokens": 8,
        "micro_batch_size": 4,
        "optimizer": lambda params: torch.optim.AdamW(params, lr=1e-3),
    }
    return GRPOPolicy(backbone=tiny_spec, **(settings | kwargs))


def prompts(tiny_spec: BackboneSpec, batch_size: int = 2) -> PromptDataModule:
    return PromptDataModule(
        str(MATRIX_PATH),
        train_files=[str(DEMO / "train.jsonl")],
        val_files=[str(DEMO / "val.jsonl")],
        backbone=tiny_spec,
        batch_size=batch_size,
        max_val_prompts=2,
        max_prompt_length=128,
    )


def fit(model: GRPOPolicy, data: PromptDataModule, steps: int, tmp_path: Any, **trainer: Any) -> L.Trainer:
    run = L.Trainer(
        accelerator="cpu",
        precision="32-true",
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        **({"limit_val_batches": 0} | trainer),
    )
    run.fit(model, datamodule=data)
    return run


def snapshot(module: torch.nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_first_pass_has_ratio_one_and_later_passes_clip_at_a_high_lr(tiny_spec, tmp_path):
    loss = RecordingLoss(beta=0.0)
    model = make_policy(
        tiny_spec, loss=loss, num_iterations=3, optimizer=lambda p: torch.optim.SGD(p, lr=50.0), max_grad_norm=None
    )
    fit(model, prompts(tiny_spec), steps=3, tmp_path=tmp_path)  # 3 optimizer steps: one rollout batch
    first, later = loss.calls[:2], loss.calls[2:]  # 8 rollouts in micro-batches of 4: 2 calls a pass
    assert all(c["ratio_mean"] == 1.0 and c["clip_frac_low"] == c["clip_frac_high"] == 0.0 for c in first)
    assert max(c["clip_frac_low"] + c["clip_frac_high"] for c in later) > 0


def test_kl_is_zero_before_the_first_update_and_the_reference_stays_frozen(tiny_spec, tmp_path):
    loss = RecordingLoss(beta=0.1)
    model = make_policy(tiny_spec, loss=loss, optimizer=lambda p: torch.optim.AdamW(p, lr=1e-2))
    model.configure_model()
    before = snapshot(model.reference)
    fit(model, prompts(tiny_spec), steps=3, tmp_path=tmp_path)
    assert loss.calls[0]["kl"] == 0.0  # the policy is its reference until the first step
    assert loss.calls[-1]["kl"] > 0.0
    after = model.reference.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in model.reference.parameters())


def test_beta_zero_builds_no_reference(tiny_spec):
    model = make_policy(tiny_spec, loss=GRPOLoss(beta=0.0))
    model.configure_model()
    assert model.reference is None


def test_all_truncated_with_mask_truncated_gives_loss_zero_and_no_change(tiny_spec, tmp_path):
    loss = RecordingLoss()
    model = make_policy(tiny_spec, loss=loss, mask_truncated=True)
    model.configure_model()
    eos = model.stop_ids

    def no_eos(module: Any, args: Any, output: Tensor) -> Tensor:  # EOS can never be drawn: every row truncates
        output[..., eos] = -1e9
        return output

    model.policy.lm_head.register_forward_hook(no_eos)
    before = snapshot(model.policy)
    fit(model, prompts(tiny_spec), steps=2, tmp_path=tmp_path)
    assert loss.calls == []  # no completion token in the loss: no forward, no backward
    after = model.policy.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.trainer.global_step == 2  # the steps still count (the schedule moves on)


def test_a_toy_run_learns_the_rule_reward(tiny_spec, tmp_path):
    """A tiny random policy raises the share of 'e' in its completions within 24 steps; every
    trainable parameter changes and the reference stays frozen (check 9)."""
    torch.manual_seed(0)
    model = make_policy(
        tiny_spec,
        loss=GRPOLoss(beta=0.01),
        num_generations=8,
        micro_batch_size=16,
        optimizer=lambda p: torch.optim.AdamW(p, lr=1e-2),
    )
    seen: list[float] = []

    class Track(L.Callback):
        def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
            seen.append(float(trainer.callback_metrics["reward/e_share/mean"]))

    model.configure_model()
    start, reference = snapshot(model.policy), snapshot(model.reference)
    fit(model, prompts(tiny_spec, batch_size=4), steps=24, tmp_path=tmp_path, callbacks=[Track()])
    early, late = sum(seen[:4]) / 4, sum(seen[-4:]) / 4
    print(f"share of e: first 4 steps {early:.3f}, last 4 {late:.3f}")
    assert late > early + 0.15, seen  # measured: 0.111 -> 0.422
    changed = {n for n, p in model.policy.named_parameters() if not torch.equal(p.detach(), start[n])}
    assert changed == {n for n, p in model.policy.named_parameters() if p.requires_grad}
    assert all(torch.equal(reference[k], v) for k, v in model.reference.state_dict().items())


def test_too_few_generations_are_refused(tiny_spec):
    with pytest.raises(ValueError, match="num_generations must be at least 2"):
        make_policy(tiny_spec, num_generations=1)


def test_the_length_penalty_favours_the_shorter_completion_of_a_group(tiny_spec):
    """Equal rewards, lengths 2 and 6 of max_new_tokens 8: the penalty is an extra dimension
    -length/8 = [-0.25, -0.75], standardised in its group to [+0.7071, -0.7071] (sample std
    0.3536, eps 1e-4), weighted by 0.5, then standardised over the batch: [+0.7071, -0.7071]."""
    model = make_policy(tiny_spec, num_generations=2, length_penalty=0.5)
    rewards = torch.tensor([[0.3], [0.3]])  # (B*G, L): one prompt, two completions, equal rewards
    weights = torch.tensor([[1.0]])  # (B, L)
    adv = model.advantages(rewards, weights, torch.tensor([2, 6]))
    torch.testing.assert_close(adv, torch.tensor([0.7071, -0.7071]), atol=1e-3, rtol=0)
    without = make_policy(tiny_spec, num_generations=2).advantages(rewards, weights, torch.tensor([2, 6]))
    assert torch.equal(without, torch.zeros(2))  # no penalty: equal rewards give no signal
