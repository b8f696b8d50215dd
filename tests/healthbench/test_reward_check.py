"""The internalised-reward check: rewards of every answer, matched to axes, Spearman against the judge."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lit_mrrml import RewardModel
from lit_mrrml.data.encode import render_ids
from lit_mrrml.healthbench.command import healthbench_command
from lit_mrrml.healthbench.fingerprint import files_fingerprint
from lit_mrrml.healthbench.options import RewardCheckOptions
from lit_mrrml.healthbench.reward_check import (
    Correlation,
    average_ranks,
    axis_dimensions,
    load_reward_model,
    rank_correlation,
    spearman,
)
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.matrix.compare import DimensionMismatchError
from lit_mrrml.models.backbone import load_tokenizer
from lit_mrrml.modules.checkpoint import CheckpointError
from lit_mrrml.modules.reward import NonFiniteRewardError
from tests.healthbench.conftest import GRADED_ROWS, make_eval
from tests.healthbench.test_command import flags
from tests.modules.test_reward_model import make_data, make_model, trainer


def test_spearman_by_hand():
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(1 - 6 * 2 / (4 * 15))  # 0.8
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(1.5 / np.sqrt(3))  # tied ranks share 1.5
    assert spearman([3, 2, 1], [10, 20, 30]) == pytest.approx(-1.0)
    assert average_ranks([10, 20, 10]).tolist() == [1.5, 3.0, 1.5]
    assert spearman([1, 2], [1, 2]) is None and spearman([1, 1, 1], [1, 2, 3]) is None
    with pytest.raises(ValueError):
        spearman([1, 2, 3], [1, 2])


@pytest.fixture
def reward_export(tiny_spec, matrix, tmp_path):
    model = make_model(tiny_spec, matrix, training_mode="frozen")
    model.configure_model()
    torch.manual_seed(3)
    with torch.no_grad():
        for p in model.head.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return model.save_pretrained(tmp_path / "reward")


def direct_rewards(model: RewardModel, messages: list[dict], answer: str) -> list[float]:
    """The reward model's output for one answer, tokenized here without the data pipeline."""
    tokenizer = load_tokenizer(model.spec)
    prompt = render_ids(tokenizer, messages, generation_prompt=True)
    full = render_ids(tokenizer, [*messages, {"role": "assistant", "content": answer}], generation_prompt=False)
    assert full[: len(prompt)] == prompt
    anchor = len(prompt) - 1  # the last prompt token
    ids = torch.tensor([full])
    with torch.no_grad():
        out = model(ids, torch.ones_like(ids), torch.tensor([anchor]))
    return out.rewards[0].tolist()


def test_every_answer_is_scored_and_each_axis_is_correlated(tmp_path, judge_server, rows_file, reward_export):
    options = RewardCheckOptions(model=str(reward_export), batch_size=2)
    outcome = make_eval(tmp_path / "out", judge_server, rows_file, reward_check=options).run()
    check = outcome.results["reward_check"]
    assert check["path"] == str(reward_export) and check["reward_model"].startswith("reward@")
    axes = check["axes"]
    assert set(axes) == {
        "overall",
        "axis:accuracy",
        "axis:completeness",
        "axis:communication_quality",
        "axis:context_awareness",
        "axis:instruction_following",
    }
    assert axes["overall"] == {"dimension": "total", "spearman": axes["overall"]["spearman"], "reason": None, "n": 3}
    assert axes["axis:completeness"]["dimension"] == "completeness" and axes["axis:completeness"]["n"] == 2
    assert axes["axis:accuracy"] == {  # one row: no correlation, and the report says why
        "dimension": "accuracy",
        "spearman": None,
        "reason": "1 graded row(s): at least 3 are needed",
        "n": 1,
    }
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| axis:accuracy | accuracy | - (1 graded row(s): at least 3 are needed) | 1 |" in summary

    model = RewardModel.from_pretrained(reward_export)
    cached = [json.loads(line) for line in (tmp_path / "out" / "cache" / "rewards.jsonl").read_text().splitlines()]
    assert len(cached) == 3
    rows = {json.loads(line)["prompt_id"]: json.loads(line) for line in (tmp_path / "out" / "graded.jsonl").open()}

    matrix = RubricMatrix.from_dict(model.matrix_snapshot)
    totals, overall = [], []
    for raw in GRADED_ROWS:
        rewards = direct_rewards(model, raw["prompt"], raw["ideal_completions_data"]["ideal_completion"])
        assert any(np.allclose(rewards, c["rewards"], atol=1e-5) for c in cached)
        weights = matrix.weights(raw["example_tags"][0].removeprefix("theme:"))  # scenario ids are the theme names
        totals.append(sum(w * r for w, r in zip(weights, rewards, strict=True)))
        overall.append(rows[raw["prompt_id"]]["scores"]["overall"])
    assert axes["overall"]["spearman"] == pytest.approx(spearman(totals, overall))


def test_a_rerun_reads_rewards_from_the_cache(tmp_path, judge_server, rows_file, reward_export, monkeypatch):
    options = RewardCheckOptions(model=str(reward_export))
    first = make_eval(tmp_path / "out", judge_server, rows_file, reward_check=options).run()
    monkeypatch.setattr(RewardModel, "score_batch", lambda *a: pytest.fail("scored again"))
    again = make_eval(tmp_path / "out", judge_server, rows_file, reward_check=options).run()
    assert again.results["reward_check"] == first.results["reward_check"]


def test_a_lightning_checkpoint_works_too(tmp_path, tiny_spec, unit_files, matrix):
    model = make_model(tiny_spec, matrix, training_mode="full")
    t = trainer(tmp_path)
    t.fit(model, datamodule=make_data(tiny_spec, unit_files))
    t.save_checkpoint(tmp_path / "m.ckpt")
    loaded = load_reward_model(str(tmp_path / "m.ckpt"))
    assert not loaded.training and loaded.dimension_names == list(matrix.dimension_ids)
    with pytest.raises(FileNotFoundError, match="neither an export folder nor a checkpoint"):
        load_reward_model(str(tmp_path / "missing"))


def test_axes_come_from_the_matrix_and_the_axis_map(reward_export):
    model = RewardModel.from_pretrained(reward_export)
    axes = axis_dimensions(model, None)
    assert axes == {
        f"axis:{d}": model.dimension_names.index(d)
        for d in ("accuracy", "completeness", "communication_quality", "context_awareness", "instruction_following")
    }
    assert axis_dimensions(model, {"accuracy": "safety"})["axis:accuracy"] == model.dimension_names.index("safety")
    with pytest.raises(ValueError, match="unknown reward dimension 'safty'"):
        axis_dimensions(model, {"axis:accuracy": "safty"})


def test_an_undefined_correlation_says_why():
    assert rank_correlation([1, 2], [1, 2]) == Correlation(None, "2 graded row(s): at least 3 are needed")
    assert rank_correlation([1, 1, 1], [1, 2, 3]) == Correlation(None, "the reward is the same on every row")
    assert rank_correlation([1, 2, 3], [0.5] * 3) == Correlation(
        None, "the judge-graded score is the same on every row"
    )
    assert rank_correlation([1, float("nan"), 3], [1, 2, 3]) == Correlation(None, "non-finite values")
    assert rank_correlation([1, 2, 3], [1, 3, 2]) == Correlation(pytest.approx(0.5), None)


def test_cached_non_finite_rewards_are_scored_again(tmp_path, judge_server, rows_file, reward_export):
    options = RewardCheckOptions(model=str(reward_export))
    first = make_eval(tmp_path / "out", judge_server, rows_file, reward_check=options).run()
    cache = tmp_path / "out" / "cache" / "rewards.jsonl"
    records = [json.loads(line) for line in cache.read_text().splitlines()]
    records[0]["rewards"][0] = float("nan")  # as an older version could have written it
    cache.write_text("".join(json.dumps(r) + "\n" for r in records))  # Python writes NaN unless told not to
    again = make_eval(tmp_path / "out", judge_server, rows_file, reward_check=options).run()
    assert again.results["reward_check"] == first.results["reward_check"]
    assert "NaN" not in cache.read_text().splitlines()[-1]  # the answer was scored again, and finite


def test_the_matrix_in_use_is_checked_against_the_reward_model(
    tmp_path, judge_server, rows_file, reward_export, matrix
):
    data = matrix.to_dict()
    data["dimensions"].reverse()  # the same dimensions, in another order
    path = tmp_path / "reversed.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    options = RewardCheckOptions(model=str(reward_export), matrix=str(path))
    with pytest.raises(
        DimensionMismatchError,
        match=rf"^{reward_export} was trained with the dimensions .*the same names in another order",
    ):
        make_eval(tmp_path / "out", judge_server, rows_file, reward_check=options).run()


def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path):
    path = tmp_path / "notes.ckpt"
    path.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=rf"^reward_check.model: {path} is not a Lightning checkpoint"):
        load_reward_model(str(path))


def test_non_finite_rewards_name_the_rows(tmp_path, judge_server, rows_file, tiny_spec, matrix):
    model = make_model(tiny_spec, matrix, training_mode="frozen")
    model.configure_model()
    with torch.no_grad():
        model.head.bias[1] = float("inf")  # a diverged head, exported as it is: the checksums match
    export = model.save_pretrained(tmp_path / "diverged")
    options = RewardCheckOptions(model=str(export))
    with pytest.raises(NonFiniteRewardError) as info:
        make_eval(tmp_path / "out", judge_server, rows_file, reward_check=options).run()
    assert str(info.value).startswith(
        f"reward_check.model diverged@{files_fingerprint([export])}: non-finite rewards (NaN or inf) for unit(s) "
        "['r1', 'r2', 'r3']: the model's weights may be corrupt"
    )
    cache = tmp_path / "out" / "cache" / "rewards.jsonl"
    assert not cache.exists() or not cache.read_text()  # nothing cached


def test_a_corrupt_or_mismatched_reward_model_exits_2_with_one_message(
    tmp_path, judge_server, rows_file, reward_export, matrix, capsys
):
    head = reward_export / "head.safetensors"
    good = head.read_bytes()
    head.write_bytes(good[:-8])  # a truncated copy
    argv = flags(judge_server, tmp_path / "out", f"--rows.path={rows_file}", f"--reward_check.model={reward_export}")
    assert healthbench_command(argv) == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: {head}: sha256 differs from the one recorded in reward_config.json")
    assert not (tmp_path / "out" / "results.json").exists()

    head.write_bytes(good)
    data = matrix.to_dict()
    data["dimensions"].reverse()
    path = tmp_path / "reversed.yaml"
    path.write_text(json.dumps(data))
    assert healthbench_command([*argv, f"--reward_check.matrix={path}"]) == 2
    err = capsys.readouterr().err
    assert f"error: {reward_export} was trained with the dimensions ['accuracy'," in err
    assert "(the same names in another order)" in err and not (tmp_path / "out" / "results.json").exists()
