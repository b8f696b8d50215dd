"""RewardModel.score: chat messages and texts in, the data pipeline's rewards and weighted totals out."""

from __future__ import annotations

import pytest
import torch

from lit_mrrml.errors import InputError
from lit_mrrml.modules import reward as reward_module
from lit_mrrml.modules.reward import NonFiniteRewardError, RewardModel, RewardScores
from tests.modules.test_reward_model import make_data, make_model

ROWS = [
    ("I have crushing chest pain, what should I do?", "Call emergency services now."),
    ("Can I take ibuprofen with food?", "Yes, take it with food; ask your doctor or pharmacist first."),
    ("My child has a fever.", "Give fluids and check the temperature."),
    ("Is a mild headache after a long day normal?", "Usually. Rest and drink water; see a doctor if it is sudden."),
]


def chat(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You are a careful assistant."}, {"role": "user", "content": question}]


@pytest.fixture
def model(tiny_spec, matrix) -> RewardModel:
    """A tiny full-mode model whose head is moved off its init, so dimensions give distinct rewards."""
    torch.manual_seed(0)
    model = make_model(tiny_spec, matrix, training_mode="full")
    model.configure_model()
    with torch.no_grad():
        for p in model.head.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return model.eval()


def score_rows(model: RewardModel, **kwargs) -> RewardScores:
    return model.score([chat(q) for q, _ in ROWS], [a for _, a in ROWS], **kwargs)


def test_score_gives_the_rewards_and_totals_of_the_predict_path(model, tiny_spec, unit_files, matrix):
    data = make_data(tiny_spec, unit_files)
    data.setup("predict")
    batch = next(iter(data.predict_dataloader()))
    with torch.no_grad():
        records = model.predict_step(batch, 0)  # one per (unit, response), unit-major
    units = {u.id: u for u in data.units["predict"]}
    rows = [(units[r["id"]], r["response"]) for r in records]
    scores = model.score(
        [u.messages for u, _ in rows], [u.responses[k] for u, k in rows], scenarios=[u.scenario for u, _ in rows]
    )
    assert scores.dimension_names == list(matrix.dimension_ids)
    expected = torch.tensor([[r["rewards"][d] for d in matrix.dimension_ids] for r in records])
    torch.testing.assert_close(scores.rewards, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(scores.totals, torch.tensor([r["total"] for r in records]), rtol=0, atol=1e-6)
    assert scores.rewards.dtype == torch.float32 and scores.rewards.device.type == "cpu"
    assert not scores.rewards.is_inference()  # callers may change it in place


def test_totals_weight_each_row_by_its_scenario(model, matrix):
    scenarios = ["emergency_referrals", None, "hedging", None]
    scores = score_rows(model, scenarios=scenarios)
    for rewards, total, scenario in zip(scores.rewards.tolist(), scores.totals.tolist(), scenarios, strict=True):
        weights = matrix.weights(scenario) if scenario else [1 / 6] * 6
        assert total == pytest.approx(sum(w * r for w, r in zip(weights, rewards, strict=True)), abs=1e-6)
    uniform = score_rows(model)  # no scenarios: uniform weights on every row
    torch.testing.assert_close(uniform.totals, uniform.rewards.mean(1))


def test_the_batch_size_does_not_change_the_scores(model):
    one, three = score_rows(model, batch_size=1), score_rows(model, batch_size=3)
    # other padded widths change float32 summation order only (a few 1e-6); reading a pad would change far more
    torch.testing.assert_close(one.rewards, three.rewards, rtol=1e-5, atol=1e-5)
    assert one.rewards.shape == (4, 6) and not torch.allclose(one.rewards[0], one.rewards[1])


@pytest.mark.parametrize("training", [True, False])
def test_score_runs_in_eval_mode_and_restores_the_mode(model, training, monkeypatch):
    model.train(training)
    seen = []  # (training, grad enabled) at each forward
    score_batch = model.score_batch
    monkeypatch.setattr(
        model, "score_batch", lambda b: seen.append((model.training, torch.is_grad_enabled())) or score_batch(b)
    )
    score_rows(model, batch_size=2)
    assert seen == [(False, False), (False, False)] and model.training is training


def test_the_tokenizer_is_loaded_once(model, monkeypatch):
    calls = []
    load = reward_module.load_tokenizer
    monkeypatch.setattr(reward_module, "load_tokenizer", lambda spec: calls.append(spec) or load(spec))
    score_rows(model)
    score_rows(model)
    assert len(calls) == 1


def test_rows_of_different_lengths_are_refused(model):
    with pytest.raises(InputError, match=r"^RewardModel.score: 2 prompts, 1 responses: give one of each per row$"):
        model.score([chat("a?"), chat("b?")], ["a"])
    with pytest.raises(InputError, match=r"^RewardModel.score: 1 prompts, 1 responses and 2 scenarios: give one"):
        model.score([chat("a?")], ["a"], scenarios=[None, None])


def test_an_unknown_scenario_is_named_with_the_known_ones(model, matrix):
    with pytest.raises(InputError) as info:
        model.score([chat("a?")], ["a"], scenarios=["emergency_referral"])
    assert str(info.value) == (
        "RewardModel.score: unknown scenario 'emergency_referral'; did you mean 'emergency_referrals'? "
        f"(the model's matrix has {list(matrix.scenario_ids)}; None gives uniform weights)"
    )


def test_a_prompt_must_end_with_the_users_turn(model):
    with pytest.raises(InputError, match=r"^RewardModel.score: row 1: the prompt must end with the user's turn$"):
        model.score([chat("a?"), [{"role": "assistant", "content": "hi"}]], ["a", "b"])


def test_empty_input_gives_empty_tensors(model):
    scores = model.score([], [])
    assert scores.rewards.shape == (0, 6) and scores.totals.shape == (0,)
    assert scores.dimension_names == model.dimension_names


def test_non_finite_rewards_name_the_rows(model):
    with torch.no_grad():
        model.head.bias[2] = float("nan")
    with pytest.raises(NonFiniteRewardError, match=r"^RewardModel.score: non-finite rewards .* \['row 0', 'row 1'\]:"):
        model.score([chat("a?"), chat("b?")], ["a", "b"])
    with pytest.raises(NonFiniteRewardError, match=r"^check: non-finite rewards .* \['p1'\]:"):
        model.score([chat("a?")], ["a"], row_ids=["p1"], source="check")
