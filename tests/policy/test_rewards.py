"""Reward sources: the reward model through the policy path (check 8 of design/policy.md), and callables."""

from __future__ import annotations

import logging

import jsonargparse
import pytest
import torch

from lit_mrrml import RewardModel
from lit_mrrml.errors import InputError
from lit_mrrml.matrix.compare import DimensionMismatchError
from lit_mrrml.models.backbone import load_tokenizer
from lit_mrrml.models.tiny import build_tiny_tokenizer
from lit_mrrml.policy.rewards import CallableReward, RewardModelReward, RewardSource
from lit_mrrml.testing.policy_rewards import length_and_keyword, target_share, word_share
from tests.modules.test_reward_model import make_data, make_model, swap_accuracy_and_safety, trainer

QUESTIONS = ["I have chest pain, what should I do?", "Can I take ibuprofen with food?", "My son has a fever."]
COMPLETIONS = [
    "Call emergency services now, then see your doctor.",
    "Yes: take it with food, and ask a pharmacist if you take other medications.",
    "Give fluids.",
]


def chat(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


PROMPTS = [chat(q) for q in QUESTIONS]


@pytest.fixture
def reward_export(tiny_spec, matrix, tmp_path):
    """A tiny frozen-mode reward model (tokenizer configs/tokenizers/tiny, vocabulary 1024), exported."""
    torch.manual_seed(1)
    model = make_model(tiny_spec, matrix, training_mode="frozen")
    model.configure_model()
    with torch.no_grad():
        for p in model.head.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return model.save_pretrained(tmp_path / "reward")


def policy_side(texts: list[str]) -> tuple[list[list[int]], list[str]]:
    """What a rollout gives: a policy tokenizer's ids (ending with EOS) and the text decoded from them."""
    tokenizer = build_tiny_tokenizer(vocab_size=300)  # another vocabulary than the reward model's
    ids = [[*tokenizer(t, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id] for t in texts]
    return ids, [tokenizer.decode(row, skip_special_tokens=True) for row in ids]


def test_scoring_a_rollout_equals_calling_the_reward_model_on_the_same_text(reward_export):
    policy_ids, decoded = policy_side(COMPLETIONS)
    assert decoded == COMPLETIONS
    direct_model = RewardModel.from_pretrained(reward_export)
    reward_tokenizer = load_tokenizer(direct_model.spec)
    for ids, text in zip(policy_ids, COMPLETIONS, strict=True):  # policy ids given to the reward model would differ
        assert reward_tokenizer(text, add_special_tokens=False)["input_ids"] != ids[:-1]
    misread = [reward_tokenizer.decode(ids, skip_special_tokens=True) for ids in policy_ids]
    assert misread[0] != COMPLETIONS[0]  # (the byte-level ids of both vocabularies agree: short words may match)

    source = RewardModelReward(path=str(reward_export), batch_size=2)
    rewards = source.score(PROMPTS, decoded)
    direct = direct_model.score(PROMPTS, COMPLETIONS, batch_size=2).rewards
    assert rewards.shape == (3, 6) and rewards.dtype == torch.float32 and rewards.device.type == "cpu"
    torch.testing.assert_close(rewards, direct, rtol=0, atol=1e-6)
    assert not torch.allclose(rewards[0], rewards[1])
    model = source.load()
    assert model is source.load() and not model.training  # loaded once, in eval mode
    assert not any(p.requires_grad for p in model.parameters()) and model.feature_cache is None
    assert source.dimension_names == direct_model.dimension_names and isinstance(source, RewardSource)


def test_a_lightning_checkpoint_is_a_source_too(tiny_spec, unit_files, matrix, tmp_path):
    model = make_model(tiny_spec, matrix, training_mode="full")
    t = trainer(tmp_path)
    t.fit(model, datamodule=make_data(tiny_spec, unit_files))
    t.save_checkpoint(tmp_path / "m.ckpt")
    source = RewardModelReward(path=str(tmp_path / "m.ckpt"))
    direct = RewardModel.load_from_checkpoint(tmp_path / "m.ckpt").score(PROMPTS, COMPLETIONS).rewards
    torch.testing.assert_close(source.score(PROMPTS, COMPLETIONS), direct, rtol=0, atol=1e-6)
    assert source.dimension_names == list(matrix.dimension_ids)


def test_loading_waits_for_first_use_and_names_a_wrong_path(tmp_path):
    source = RewardModelReward(path=str(tmp_path / "missing"))  # nothing read yet
    with pytest.raises(FileNotFoundError, match=r"^RewardModelReward.path: .*missing is neither an export folder"):
        source.load()


def test_the_policy_device_is_used_unless_one_was_given(reward_export):
    chosen = RewardModelReward(path=str(reward_export), device="cpu").to("cuda:1")
    assert chosen.placement == "cpu"
    follows = RewardModelReward(path=str(reward_export)).to("cuda:1")
    assert follows.placement == "cuda:1" and follows.model is None  # not loaded yet: nothing moved


def test_the_run_matrix_is_checked_against_the_reward_model(reward_export, matrix, caplog):
    source = RewardModelReward(path=str(reward_export))
    reordered = matrix.to_dict()
    swap_accuracy_and_safety(reordered)
    names = [d["id"] for d in reordered["dimensions"]]
    with pytest.raises(DimensionMismatchError) as info:
        source.check_matrix(names, reordered)
    assert str(info.value).startswith(
        f"{reward_export} was trained with the dimensions {list(matrix.dimension_ids)}, but the matrix in use has "
        f"{names} (the same names in another order): its rewards would be reported under the wrong names."
    )
    reweighted = matrix.to_dict()
    reweighted["scenarios"][0]["weights"] = {"safety": 1.0}
    with caplog.at_level(logging.WARNING, logger="lit_mrrml"):
        changes = source.check_matrix(list(matrix.dimension_ids), reweighted)
    assert changes == ["scenarios.emergency_referrals.weights"] and "total reward follows" in caplog.text
    assert source.check_matrix(list(matrix.dimension_ids), matrix.to_dict()) == []


# ---- callables --------------------------------------------------------------------------------


def test_rule_rewards_by_hand():
    assert word_share("see a doctor now doctor") == pytest.approx(2 / 5)
    assert word_share("Doctor DOCTOR doctor. nurse") == pytest.approx(2 / 4)  # case ignored, punctuation not
    assert word_share("") == 0.0
    completions = ["see a doctor now doctor", " ".join(["word"] * 60)]
    assert target_share(PROMPTS[:2], completions) == [[0.4], [0.0]]
    assert length_and_keyword(PROMPTS[:2], completions) == [[0.1, 0.4], [1.0, 0.0]]


def test_a_callable_reward_gives_an_n_by_l_tensor():
    source = CallableReward(length_and_keyword, ["length", "doctor"])
    rewards = source.score(PROMPTS[:2], ["see a doctor now doctor", "no"])
    torch.testing.assert_close(rewards, torch.tensor([[0.1, 0.4], [0.02, 0.0]]))
    assert rewards.dtype == torch.float32 and source.dimension_names == ["length", "doctor"]
    assert source.to("cuda") is source


def flat(prompts, completions):
    return [word_share(c) for c in completions]


def as_tensor(prompts, completions):
    return torch.tensor([[1.0, 2.0]] * len(completions), dtype=torch.float64)


def one_row(prompts, completions):
    return [[1.0, 2.0]]


def three_wide(prompts, completions):
    return [[1.0, 2.0, 3.0] for _ in completions]


def with_nan(prompts, completions):
    return [[1.0, 2.0], [1.0, float("nan")]]


def with_text(prompts, completions):
    return [[1.0, 2.0], ["high", 2.0]]


def test_a_flat_list_passes_when_there_is_one_dimension_and_tensors_pass_too():
    rewards = CallableReward(flat, ["share"]).score(PROMPTS[:2], ["doctor", "a doctor"])
    torch.testing.assert_close(rewards, torch.tensor([[1.0], [0.5]]))
    rewards = CallableReward(as_tensor, ["a", "b"]).score(PROMPTS[:2], ["x", "y"])
    assert rewards.dtype == torch.float32 and rewards.tolist() == [[1.0, 2.0], [1.0, 2.0]]
    with pytest.raises(InputError, match=r"row 0 is 1.0, not a list of 2 numbers$"):
        CallableReward(flat, ["a", "b"]).score(PROMPTS[:1], ["doctor"])


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (one_row, "one_row returned 1 rows for 2 completions"),
        (three_wide, "three_wide: row 0 has 3 values for the 2 ['length', 'doctor']"),
        (with_nan, "with_nan: row 1, doctor: nan is not finite"),
        (with_text, "with_text: row 1, length: 'high' is not a number"),
    ],
)
def test_a_bad_result_is_refused_naming_the_function_and_the_row(function, message):
    source = CallableReward(function, ["length", "doctor"])
    with pytest.raises(InputError) as info:
        source.score(PROMPTS[:2], ["a", "b"])
    assert str(info.value) == f"reward function {__name__}.{message}"


def test_the_dimensions_must_be_distinct_names():
    with pytest.raises(InputError, match=r"^CallableReward.dimensions: give one or more distinct names, got \[\]"):
        CallableReward(flat, [])
    with pytest.raises(InputError, match="distinct"):
        CallableReward(flat, ["a", "a"])


def test_an_import_path_on_the_command_line_becomes_the_function():
    parser = jsonargparse.ArgumentParser()
    parser.add_class_arguments(CallableReward, "r")
    config = parser.parse_args(["--r.function=lit_mrrml.testing.policy_rewards.target_share", "--r.dimensions=[share]"])
    source = parser.instantiate_classes(config).r
    assert isinstance(source, CallableReward) and source.function is target_share
    torch.testing.assert_close(source.score(PROMPTS[:1], ["see a doctor now doctor"]), torch.tensor([[0.4]]))
