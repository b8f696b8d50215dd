"""Real two-step TRL runs: GRPOTrainer on reward_funcs(export), and GPRCRewardTrainer.

Skipped only when TRL is not installed (the optional extra ``lit_mrrml[trl]``).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("trl")

from datasets import Dataset
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer, RewardConfig

from lit_mrrml.errors import InputError
from lit_mrrml.integrations.trl import GPRCRewardTrainer, reward_funcs, total_reward_func
from lit_mrrml.integrations.trl_trainer import score_head
from lit_mrrml.losses.gprc import GPRCLoss
from lit_mrrml.models.tiny import TINY_QWEN2
from lit_mrrml.modules.reward import RewardModel
from tests.conftest import TINY_TOKENIZER

NAMES = ["accuracy", "safety", "completeness"]
QUIET = {"report_to": "none", "use_cpu": True, "bf16": False, "save_strategy": "no", "logging_steps": 1}


@pytest.fixture
def tokenizer():
    return AutoTokenizer.from_pretrained(TINY_TOKENIZER)


def tiny(kind, seed: int = 0, **config):
    torch.manual_seed(seed)
    return kind.from_config(AutoConfig.for_model(**TINY_QWEN2, **config))


# ---- GRPOTrainer with reward_funcs ----------------------------------------------------------------
def prompts_dataset() -> Dataset:
    rows = [
        {
            "prompt": [{"role": "user", "content": f"Chest pain number {i}, what now?"}],
            "scenario": "emergency_referrals",
        }
        for i in range(4)
    ]
    return Dataset.from_list(rows)


def test_grpo_with_gdpo_logs_every_dimension_from_one_scoring_pass_a_step(
    tiny_reward_export, tokenizer, tmp_path, monkeypatch
):
    """GDPO: each reward function normalised within its group, then summed (TRL's normalize_then_sum);
    the reward functions are called the same way under the default sum_then_normalize."""
    funcs = [*reward_funcs(tiny_reward_export), total_reward_func(tiny_reward_export)]
    scorer = funcs[0].scorer
    calls = []
    score = scorer.source.score
    monkeypatch.setattr(scorer.source, "score", lambda p, c: calls.append((p, c)) or score(p, c))
    monkeypatch.setattr(scorer, "_rows", None)  # forget rows scored by other tests
    args = GRPOConfig(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=6,
        multi_objective_aggregation="normalize_then_sum",
        gradient_checkpointing=False,
        **QUIET,
    )
    policy = tiny(AutoModelForCausalLM)
    trainer = GRPOTrainer(
        model=policy, reward_funcs=funcs, args=args, train_dataset=prompts_dataset(), processing_class=tokenizer
    )
    trainer.train()
    steps = [h for h in trainer.state.log_history if "rewards/total/mean" in h]
    assert len(steps) == 2 and len(calls) == 2  # 7 reward functions, one reward-model pass a step
    model = RewardModel.from_pretrained(tiny_reward_export)
    for log, (prompts, texts) in zip(steps, calls, strict=True):
        assert [p[-1]["role"] for p in prompts] == ["user", "user"] and all(isinstance(t, str) for t in texts)
        expected = model.score(prompts, texts, scenarios=["emergency_referrals"] * 2)
        for column, name in enumerate(model.dimension_names):
            assert log[f"rewards/{name}/mean"] == pytest.approx(expected.rewards[:, column].mean().item(), abs=1e-5)
        assert log["rewards/total/mean"] == pytest.approx(expected.totals.mean().item(), abs=1e-5)


# ---- GPRCRewardTrainer ----------------------------------------------------------------------------
def pairs(n: int = 4, dimension=lambda i: NAMES[i % 3]) -> Dataset:
    rows = [
        {
            "prompt": [{"role": "user", "content": f"Chest pain number {i}, what now?"}],
            "chosen": [{"role": "assistant", "content": "Call emergency services now."}],
            "rejected": [{"role": "assistant", "content": f"Wait {i} days."}],
            "dimension": dimension(i),
        }
        for i in range(n)
    ]
    return Dataset.from_list(rows)


def classifier(num_labels: int = 3):
    return tiny(AutoModelForSequenceClassification, num_labels=num_labels, id2label=dict(enumerate(NAMES)))


class RecordingTrainer(GPRCRewardTrainer):
    """Keeps each training batch and the loss computed on it."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        self.seen.append(({k: v.clone() for k, v in inputs.items()}, loss.detach().clone()))
        return loss


def reward_args(tmp_path: Path, **kwargs) -> RewardConfig:
    options = {"max_steps": 2, "per_device_train_batch_size": 2, **QUIET, **kwargs}
    return RewardConfig(output_dir=str(tmp_path), **options)


def gprc_by_hand(model, batch, pad: int, alpha: float = 0.1) -> torch.Tensor:
    """The GPRC loss of a batch of pairs, from the backbone's hidden states and the head's weight."""
    ids, mask, dimension = batch["input_ids"], batch["attention_mask"], batch["dimension"]
    hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state  # (2B, T, H)
    last = [max(t for t in range(ids.shape[1]) if ids[n, t] != pad) for n in range(ids.shape[0])]
    h = hidden[torch.arange(ids.shape[0]), last]  # (2B, H)
    weight = model.score.weight  # (L, H)
    b = dimension.shape[0]
    r_chosen = (h[:b] * weight[dimension]).sum(-1)  # (B,): w_i . h on each pair's dimension
    r_rejected = (h[b:] * weight[dimension]).sum(-1)
    rank = -F.logsigmoid(r_chosen - r_rejected).mean()
    axis = (1 - F.cosine_similarity(h[:b] - h[b:], weight[dimension], dim=-1)).mean()
    direct = GPRCLoss()(torch.stack([h[:b], h[b:]], 1), torch.stack([r_chosen, r_rejected], 1), weight[dimension])
    torch.testing.assert_close(direct.loss, rank + alpha * axis)
    return direct.loss


def test_gprc_reward_trainer_trains_two_steps_on_the_gprc_loss(tokenizer, tmp_path):
    model = classifier()
    start = copy.deepcopy(model)
    trainer = RecordingTrainer(
        model=model, args=reward_args(tmp_path), train_dataset=pairs(), processing_class=tokenizer
    )
    trainer.seen = []
    assert model.config.num_labels == 3 and model.config.id2label == dict(enumerate(NAMES))  # given back
    trainer.train()
    (first, loss_1), (_, loss_2) = trainer.seen
    assert first["input_ids"].shape[0] == 4 and first["dimension"].shape == (2,)
    with torch.no_grad():
        expected = gprc_by_hand(start, first, tokenizer.pad_token_id)
    torch.testing.assert_close(loss_1, expected, rtol=1e-5, atol=1e-6)
    assert torch.isfinite(loss_2)
    assert not torch.equal(start.score.weight, model.score.weight)
    logs = trainer.state.log_history[0]
    for key in ("loss_rank", "loss_axis", "loss_perp", "loss_center", "accuracy", "margin", "axis_cos"):
        assert key in logs
    assert logs["loss"] == pytest.approx(loss_1.item(), abs=1e-4) and logs["loss_perp"] == 0.0
    assert {k for k in logs if k.startswith("accuracy/")} <= {f"accuracy/{n}" for n in NAMES}
    assert any(k.startswith("accuracy/") for k in logs)


def test_dimension_indices_and_a_model_given_by_name_work(tokenizer, tmp_path):
    classifier().save_pretrained(tmp_path / "model")
    trainer = GPRCRewardTrainer(
        model=str(tmp_path / "model"),
        args=reward_args(tmp_path / "out", max_steps=1),
        train_dataset=pairs(dimension=lambda i: i % 3),
        processing_class=tokenizer,
        dimension_names=["a", "b", "c"],
        loss=GPRCLoss(alpha=0.0),
    )
    assert trainer.model.config.id2label == {0: "a", 1: "b", 2: "c"}
    assert trainer.train_dataset["dimension"] == [0, 1, 2, 0]
    trainer.train()
    assert trainer.state.log_history[0]["loss"] == pytest.approx(trainer.state.log_history[0]["loss_rank"], abs=1e-4)


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        (
            pairs(dimension=lambda i: "safty" if i == 2 else "safety"),
            "train dataset, row 2: dimension 'safty' is not one of the model's dimensions; did you mean 'safety'? "
            "(expected one of ['accuracy', 'safety', 'completeness'] or an index in [0, 3))",
        ),
        (pairs(dimension=lambda i: i), "train dataset, row 3: dimension index 3 is out of range"),
        (pairs().remove_columns("dimension"), "GPRCRewardTrainer: train dataset has no 'dimension' column"),
        (pairs().add_column("margin", [1.0] * 4), "GPRCRewardTrainer: train dataset: a 'margin' column is not used"),
    ],
)
def test_a_bad_dimension_column_is_refused_naming_the_row(dataset, message, tokenizer, tmp_path):
    with pytest.raises(InputError) as info:
        GPRCRewardTrainer(
            model=classifier(), args=reward_args(tmp_path), train_dataset=dataset, processing_class=tokenizer
        )
    assert str(info.value).startswith(message)


def test_settings_that_gprc_does_not_use_are_refused(tokenizer, tmp_path):
    with pytest.raises(InputError, match="center_rewards_coefficient is not used by the GPRC loss"):
        GPRCRewardTrainer(
            model=classifier(), args=reward_args(tmp_path, center_rewards_coefficient=0.01), train_dataset=pairs()
        )
    with pytest.raises(InputError, match="is given by name: pass dimension_names"):
        GPRCRewardTrainer(model=str(tmp_path), args=reward_args(tmp_path), train_dataset=pairs())
    with pytest.raises(InputError, match=r"2 dimension names \['a', 'b'\] for a score head of 3 outputs"):
        GPRCRewardTrainer(model=classifier(), train_dataset=pairs(), dimension_names=["a", "b"])
    with pytest.raises(InputError, match="Linear has no linear 'score' head"):
        score_head(torch.nn.Linear(2, 2))


def test_lora_on_standard_text_pairs_trains_the_head_and_evaluates(tokenizer, tmp_path):
    from peft import LoraConfig

    rows = [
        {"prompt": f"Chest pain {i}?", "chosen": " Call for help.", "rejected": " Wait.", "dimension": i % 3}
        for i in range(4)
    ]
    data = Dataset.from_list(rows)
    model = classifier()
    before = model.score.weight.detach().clone()
    trainer = GPRCRewardTrainer(
        model=model,
        args=reward_args(tmp_path),
        train_dataset=data,
        eval_dataset=data,
        processing_class=tokenizer,
        peft_config=LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["q_proj", "v_proj"]),
    )
    trainer.train()
    head = score_head(trainer.model)  # PEFT's trainable copy of the score head
    assert type(head).__name__ == "ModulesToSaveWrapper" and not torch.equal(before, head.weight)
    metrics = trainer.evaluate()
    assert all(torch.isfinite(torch.tensor(metrics[f"eval_{k}"])) for k in ("loss", "loss_rank", "loss_axis"))
    assert {f"eval_accuracy/{n}" for n in NAMES} <= set(metrics)  # the 4 pairs cover the 3 dimensions
