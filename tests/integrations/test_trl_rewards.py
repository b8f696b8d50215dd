"""reward_funcs / total_reward_func: TRL-shaped reward functions over an exported reward model
(no TRL needed)."""

from __future__ import annotations

import pickle
import sys

import pytest
import torch

from lit_mrrml.errors import InputError
from lit_mrrml.integrations import trl as bridge
from lit_mrrml.integrations.trl import reward_funcs, total_reward_func
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.modules.reward import RewardModel
from tests.conftest import MATRIX_PATH, run_fresh

PROMPTS = [
    [{"role": "user", "content": "Chest pain spreading to my arm, what now?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Dose of paracetamol?"}],
    "Fever for three days?",  # a standard (string) prompt
]
COMPLETIONS = [
    [{"role": "assistant", "content": "Call emergency services now."}],
    [{"role": "assistant", "content": "Follow the label; ask your pharmacist."}],
    "See a doctor if it persists.",
]
AS_MESSAGES = [PROMPTS[0], PROMPTS[1], [{"role": "user", "content": PROMPTS[2]}]]
AS_TEXT = ["Call emergency services now.", "Follow the label; ask your pharmacist.", "See a doctor if it persists."]


@pytest.fixture
def spy(tiny_reward_export, monkeypatch):
    """The shared scorer of the default settings, with a count of the reward model's score calls."""
    scorer = reward_funcs(tiny_reward_export)[0].scorer
    calls: list[int] = []
    score = scorer.source.score

    def counted(prompts, completions):
        calls.append(len(prompts))
        return score(prompts, completions)

    monkeypatch.setattr(scorer.source, "score", counted)
    monkeypatch.setattr(scorer, "_rows", None)  # forget rows scored by other tests
    return calls


def test_one_function_per_dimension_named_after_it_with_the_models_rewards(tiny_reward_export, spy):
    funcs = reward_funcs(tiny_reward_export)
    model = RewardModel.from_pretrained(tiny_reward_export)
    assert [f.__name__ for f in funcs] == model.dimension_names and len(funcs) == 6
    expected = model.score(AS_MESSAGES, AS_TEXT).rewards  # (3, 6)
    got = torch.tensor([f(prompts=PROMPTS, completions=COMPLETIONS, completion_ids=None, scenario=None) for f in funcs])
    torch.testing.assert_close(got.T, expected, rtol=0, atol=1e-6)  # column l of the model is function l
    assert spy == [3]  # six functions, one scoring pass


def test_new_rows_are_scored_again_and_repeated_rows_are_not(tiny_reward_export, spy):
    first, second = reward_funcs(tiny_reward_export)[:2]
    first(PROMPTS, COMPLETIONS)
    second(PROMPTS, COMPLETIONS)
    first(PROMPTS[:2], COMPLETIONS[:2])  # the next step's rollouts
    second(PROMPTS[:2], COMPLETIONS[:2])
    assert spy == [3, 2]


def test_the_total_is_the_scenario_weighted_sum_from_the_same_pass(tiny_reward_export, spy):
    model = RewardModel.from_pretrained(tiny_reward_export)
    scenarios = ["emergency_referrals", "hedging", None]
    expected = model.score(AS_MESSAGES, AS_TEXT, scenarios=scenarios)
    funcs = [*reward_funcs(tiny_reward_export), total_reward_func(tiny_reward_export)]
    values = [f(prompts=PROMPTS, completions=COMPLETIONS, scenario=scenarios, trainer_state=None) for f in funcs]
    assert funcs[-1].__name__ == "total"
    torch.testing.assert_close(torch.tensor(values[-1]), expected.totals, rtol=0, atol=1e-6)
    emergency = torch.tensor(RubricMatrix.from_yaml(MATRIX_PATH).weights("emergency_referrals"))  # (6,)
    by_hand = [(expected.rewards[0] * emergency).sum(), expected.rewards[2].sum() / 6]  # row 2: uniform 1/L
    torch.testing.assert_close(torch.tensor([values[-1][0], values[-1][2]]), torch.stack(by_hand), rtol=0, atol=1e-6)
    assert spy == [3]
    uniform = total_reward_func(tiny_reward_export)(PROMPTS, COMPLETIONS)  # no scenario column
    torch.testing.assert_close(torch.tensor(uniform), expected.rewards.mean(1), rtol=0, atol=1e-6)


def test_bad_rows_and_scenarios_are_refused_with_the_row_named(tiny_reward_export):
    func = reward_funcs(tiny_reward_export)[0]
    with pytest.raises(InputError, match=r"^reward function accuracy: prompts\[1\]: a prompt must be a string"):
        func(["ok", []], ["a", "b"])
    with pytest.raises(InputError, match="row 0: the prompt must end with the user's turn"):
        func([[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]], ["b"])
    total = total_reward_func(tiny_reward_export)
    with pytest.raises(InputError, match="unknown scenario 'emergency'; did you mean 'emergency_referrals'"):
        total(["q"], ["a"], scenario=["emergency"])


def test_functions_pickle_without_the_model_and_score_the_same(tiny_reward_export):
    func = reward_funcs(tiny_reward_export)[3]
    data = pickle.dumps(func)
    assert len(data) < 1000  # the settings, not the weights
    copy = pickle.loads(data)
    assert copy.__name__ == func.__name__ and copy(PROMPTS, COMPLETIONS) == func(PROMPTS, COMPLETIONS)


def test_a_missing_export_fails_when_the_functions_are_built(tmp_path):
    with pytest.raises(FileNotFoundError, match="is neither an export folder nor a checkpoint file"):
        reward_funcs(tmp_path / "nowhere")


def test_the_trainer_needs_trl_and_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "trl", None)  # import trl now raises ImportError
    monkeypatch.delitem(vars(bridge), "GPRCRewardTrainer", raising=False)
    with pytest.raises(ImportError, match=r"GPRCRewardTrainer needs TRL: pip install 'lit_mrrml\[trl\]'"):
        _ = bridge.GPRCRewardTrainer
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        _ = bridge.Nope


def test_importing_the_bridge_imports_neither_torch_nor_trl():
    assert run_fresh("import lit_mrrml.integrations.trl", ["torch", "trl", "lightning"]).imported == set()
