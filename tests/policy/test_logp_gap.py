"""GRPOPolicy with an engine that reports its own sampler log-probabilities (what VLLMEngine does),
faked on CPU: HFGenerateEngine's rollouts with the policy's own eval-mode log-probabilities, shifted
by a known amount. ``rollout/logp_gap`` must equal the shift, the truncated importance weights must
reach the loss, and exact log-probabilities must change nothing."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest
import torch

from lit_mrrml.losses.grpo import GRPOLoss, GRPOLossOutput
from lit_mrrml.policy.logprobs import sequence_logprobs
from lit_mrrml.policy.rollout import HFGenerateEngine, Rollouts
from tests.modules.test_grpo import fit, make_policy, prompts, snapshot

LR = 0.5


class ShiftedEngine(HFGenerateEngine):
    """HFGenerateEngine whose sampler log-probabilities are the policy's own (eval mode, the
    rollout temperature) plus ``shift`` on every completion token; counts the weight syncs."""

    def __init__(self, shift: float) -> None:
        super().__init__()
        self.shift, self.syncs = shift, 0

    def generate(
        self, model: Any, prompt_ids: list[list[int]], num_generations: int, sampling: Any, *args: Any
    ) -> Rollouts:
        r = super().generate(model, prompt_ids, num_generations, sampling, *args)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            own, _ = sequence_logprobs(
                model, r.prompt_ids, r.prompt_mask, r.completion_ids, r.completion_mask, sampling.temperature or 1.0
            )
        model.train(was_training)
        r.sampler_logprobs = torch.where(r.completion_mask, own + self.shift, torch.zeros_like(own))
        return r

    def sync(self, model: Any, root: Any = None) -> None:
        self.syncs += 1


class KeepingLoss(GRPOLoss):
    """GRPOLoss that keeps each call's loss and metrics, and whether sampler log-probs came in."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[dict[str, float]] = []

    def forward(self, *args: Any, sampler_logp: torch.Tensor | None = None, **kwargs: Any) -> GRPOLossOutput:
        out = super().forward(*args, sampler_logp=sampler_logp, **kwargs)
        record = {"loss": float(out.loss.detach()), "sampler": float(sampler_logp is not None)}
        self.calls.append(record | {k: float(v) for k, v in out.metrics.items()})
        return out


class Metrics(L.Callback):
    """The logged training metrics after every step."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.steps.append({k: float(v) for k, v in trainer.callback_metrics.items()})


def run(tiny_spec, tmp_path, engine: HFGenerateEngine, loss: KeepingLoss, steps: int = 1, **kwargs: Any):
    """One rollout batch of the tiny policy from the same start, plain SGD (updates scale with the loss)."""
    torch.manual_seed(0)
    settings = {"optimizer": lambda p: torch.optim.SGD(p, lr=LR), "max_grad_norm": None}
    model = make_policy(tiny_spec, engine=engine, loss=loss, **(settings | kwargs))
    model.configure_model()
    start = snapshot(model.policy)
    metrics = Metrics()
    fit(model, prompts(tiny_spec), steps=steps, tmp_path=tmp_path, callbacks=[metrics])
    return model, start, metrics.steps


def test_logp_gap_is_the_known_shift_and_the_capped_weights_reach_the_loss(tiny_spec, tmp_path):
    # sampler = old - 0.5 on every token: |gap| = 0.5; w = min(exp(0.5), 1.5) = 1.5, every token capped.
    loss = KeepingLoss(tis_cap=1.5)
    _, _, steps = run(tiny_spec, tmp_path, ShiftedEngine(-0.5), loss)
    assert steps[-1]["rollout/logp_gap"] == pytest.approx(0.5, abs=1e-4)
    assert steps[-1]["tis/weight_mean"] == pytest.approx(1.5, abs=1e-5)
    assert steps[-1]["tis/clipped_frac"] == pytest.approx(1.0)
    assert all(c["sampler"] == 1.0 and c["tis_weight_mean"] == pytest.approx(1.5, abs=1e-5) for c in loss.calls)


def test_uncapped_weights_scale_the_first_step_by_exp_of_the_gap(tiny_spec, tmp_path):
    # sampler = old + 0.2: w = exp(-0.2) = 0.818731 on every token, below the cap. The first pass
    # has rho = 1, so each micro-batch loss is w times the plain one, and one SGD step moves every
    # parameter w times as far as the plain run's.
    w = float(torch.exp(torch.tensor(-0.2)))
    plain_loss, tis_loss = KeepingLoss(), KeepingLoss(tis_cap=3.0)
    plain, start, _ = run(tiny_spec, tmp_path / "plain", HFGenerateEngine(), plain_loss)
    corrected, start_again, steps = run(tiny_spec, tmp_path / "tis", ShiftedEngine(0.2), tis_loss)
    assert all(torch.equal(start[k], start_again[k]) for k in start)
    assert steps[-1]["rollout/logp_gap"] == pytest.approx(0.2, abs=1e-4)
    assert steps[-1]["tis/clipped_frac"] == 0.0
    assert [c["sampler"] for c in plain_loss.calls] == [0.0, 0.0]  # HFGenerateEngine reports none
    for plain_call, tis_call in zip(plain_loss.calls, tis_loss.calls, strict=True):
        assert tis_call["loss"] == pytest.approx(w * plain_call["loss"], rel=1e-4, abs=1e-7)
    moved = {k: corrected.policy.state_dict()[k] - start[k] for k in start}
    plain_moved = {k: plain.policy.state_dict()[k] - start[k] for k in start}
    assert any(float(d.abs().max()) > 0 for d in plain_moved.values())
    for k, d in moved.items():
        torch.testing.assert_close(d, w * plain_moved[k], rtol=1e-3, atol=1e-6)


def test_exact_sampler_logprobs_give_no_gap_and_the_uncorrected_update(tiny_spec, tmp_path):
    plain, start, _ = run(tiny_spec, tmp_path / "plain", HFGenerateEngine(), KeepingLoss())
    exact, _, steps = run(tiny_spec, tmp_path / "exact", ShiftedEngine(0.0), KeepingLoss(tis_cap=2.0))
    assert steps[-1]["rollout/logp_gap"] < 1e-5
    assert steps[-1]["tis/weight_mean"] == pytest.approx(1.0, abs=1e-5)
    for k, v in exact.policy.state_dict().items():
        torch.testing.assert_close(v, plain.policy.state_dict()[k], rtol=1e-4, atol=1e-6)
    assert any(not torch.equal(v, start[k]) for k, v in exact.policy.state_dict().items())


def test_the_engine_is_synced_at_the_start_and_after_every_optimizer_step(tiny_spec, tmp_path):
    engine = ShiftedEngine(0.0)
    model, _, _ = run(tiny_spec, tmp_path, engine, KeepingLoss(), steps=2, num_iterations=2)
    assert model.trainer.global_step == 2  # one rollout batch, two optimizer steps
    assert engine.syncs == 1 + 2
