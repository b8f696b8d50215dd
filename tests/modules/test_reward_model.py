"""RewardModel: two-step CPU Trainer runs in every training mode, caching, checkpoints, predict."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from callbacks import RewardPredictionWriter
from lit_mrrml import GPRCLoss, RewardModel, RubricDataModule
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.matrix.compare import DimensionMismatchError
from lit_mrrml.models.backbone import BackboneSpec
from lit_mrrml.modules.reward import NonFiniteRewardError, check_finite_rewards
from tests.conftest import MATRIX_PATH


def make_data(spec: BackboneSpec, files: dict[str, Path], matrix: Path = MATRIX_PATH, **kwargs) -> RubricDataModule:
    return RubricDataModule(
        matrix=str(matrix),
        train_files=[str(files["train"])],
        val_files=[str(files["val"])],
        test_files=[str(files["test"])],
        backbone=spec,
        max_length=96,
        batch_size=4,
        **kwargs,
    )


def make_model(spec: BackboneSpec, matrix: RubricMatrix, **kwargs) -> RewardModel:
    return RewardModel(
        backbone=spec,
        embedding_dim=16,
        num_dimensions=len(matrix.dimensions),
        dimension_names=list(matrix.dimension_ids),
        matrix=matrix.to_dict(),
        **kwargs,
    )


def trainer(tmp_path: Path, **kwargs) -> L.Trainer:
    options = dict(
        accelerator="cpu",
        devices=1,
        precision="32-true",
        max_steps=2,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    options.update(kwargs)
    return L.Trainer(**options)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("mode", ["frozen", "lora", "full"])
def test_two_steps_train_in_every_mode(mode, tiny_spec, unit_files, matrix, tmp_path):
    L.seed_everything(0)
    model = make_model(tiny_spec, matrix, training_mode=mode)
    data = make_data(tiny_spec, unit_files)
    model.configure_model()
    before = snapshot(model)
    frozen_before = {n: p.detach().clone() for n, p in model.backbone.named_parameters() if not p.requires_grad}
    trainer(tmp_path).fit(model, datamodule=data)
    after = snapshot(model)
    assert torch.isfinite(trainer_loss(model))
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    assert any(n.startswith("head.") for n in changed)
    backbone_changed = [n for n in changed if n.startswith("backbone.")]
    if mode == "frozen":
        assert not backbone_changed and not any(p.requires_grad for p in model.backbone.parameters())
    elif mode == "lora":
        assert backbone_changed and all("lora_" in n for n in backbone_changed)
    else:
        assert backbone_changed
    for name, value in frozen_before.items():  # frozen weights never move
        assert torch.equal(dict(model.backbone.named_parameters())[name], value)


def trainer_loss(model: RewardModel) -> torch.Tensor:
    return model.trainer.callback_metrics["train/loss"]


def test_one_forward_scores_every_dimension(tiny_spec, unit_files, matrix):
    model = make_model(tiny_spec, matrix)
    data = make_data(tiny_spec, unit_files)
    data.setup("fit")
    model.configure_model()
    batch = next(iter(data.train_dataloader()))
    out, valid = model.score_batch(batch)
    b, k = valid.shape
    assert out.rewards.shape == (b, k, 6) and out.z.shape == (b, k, 16)
    assert torch.all(out.rewards[~valid] == 0)  # padding rows are not scored


def test_frozen_features_are_cached_after_first_pass(tiny_spec, unit_files, matrix, tmp_path, monkeypatch):
    model = make_model(tiny_spec, matrix, training_mode="frozen", feature_cache_dir=str(tmp_path / "cache"))
    data = make_data(tiny_spec, unit_files)
    model.configure_model()
    calls = []
    encode = model.encode
    monkeypatch.setattr(model, "encode", lambda *a: calls.append(a[0].shape[0]) or encode(*a))
    trainer(tmp_path, max_steps=-1, max_epochs=3, limit_val_batches=0).fit(model, datamodule=data)
    sequences = sum(len(u.input_ids) for u in data.datasets["train"].units)
    assert sum(calls) == sequences  # the backbone ran once per training sequence over three epochs
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1

    # a second model of the same backbone reuses the cache on disk: no backbone pass at all
    torch.manual_seed(0)
    again = make_model(tiny_spec, matrix, training_mode="frozen", feature_cache_dir=str(tmp_path / "cache"))
    again.configure_model()
    again.backbone.load_state_dict(model.backbone.state_dict())
    again.feature_cache = type(model.feature_cache)(model.feature_cache.fingerprint, tmp_path / "cache")
    assert again.feature_cache.load() == sequences
    monkeypatch.setattr(again, "encode", lambda *a: pytest.fail("backbone ran despite a full cache"))
    trainer(tmp_path, max_steps=-1, max_epochs=1, limit_val_batches=0).fit(again, datamodule=data)


def test_non_finite_loss_stops_with_unit_ids(tiny_spec, unit_files, matrix, tmp_path):
    model = make_model(tiny_spec, matrix, training_mode="full")
    model.configure_model()
    with torch.no_grad():
        model.head.bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match=r"non-finite loss .*units \['u"):
        trainer(tmp_path).fit(model, datamodule=make_data(tiny_spec, unit_files))


def test_validation_logs_metrics_per_dimension(tiny_spec, unit_files, matrix, tmp_path):
    model = make_model(tiny_spec, matrix)
    t = trainer(tmp_path, max_steps=-1, max_epochs=1, limit_val_batches=None)
    t.fit(model, datamodule=make_data(tiny_spec, unit_files))
    metrics = t.callback_metrics
    for name in ("pair_acc", "order_acc", "betweenness", "axis_cos", "margin"):
        assert f"val/{name}" in metrics
    assert all(f"val/pair_acc/{d}" in metrics for d in matrix.dimension_ids)
    assert 0.0 <= float(metrics["val/pair_acc"]) <= 1.0


def test_predict_writes_rewards_and_weighted_total(tiny_spec, unit_files, matrix, tmp_path):
    model = make_model(tiny_spec, matrix)
    out = tmp_path / "pred.jsonl"
    t = trainer(tmp_path, callbacks=[RewardPredictionWriter(str(out))])
    t.predict(model, datamodule=make_data(tiny_spec, unit_files))
    records = [json.loads(line) for line in out.read_text().splitlines()]
    units = [json.loads(line) for line in unit_files["test"].read_text().splitlines()]
    assert len(records) == sum(len(u["responses"]) for u in units)
    first = records[0]
    assert set(first["rewards"]) == set(matrix.dimension_ids)
    weights = matrix.weights("emergency_referrals")
    expected = sum(w * first["rewards"][d] for w, d in zip(weights, matrix.dimension_ids, strict=True))
    assert first["total"] == pytest.approx(expected, rel=1e-5)


def test_checkpoint_leaves_out_frozen_pretrained_weights(tiny_spec, unit_files, matrix, tmp_path):
    from transformers import AutoModel

    from lit_mrrml.models.backbone import build_backbone

    folder = tmp_path / "backbone"
    build_backbone(tiny_spec).save_pretrained(folder)
    spec = BackboneSpec(path=str(folder), tokenizer=tiny_spec.tokenizer)
    assert AutoModel.from_pretrained(folder) is not None
    model = make_model(spec, matrix, training_mode="frozen")
    t = trainer(tmp_path)
    t.fit(model, datamodule=make_data(spec, unit_files))
    t.save_checkpoint(tmp_path / "m.ckpt")
    state = torch.load(tmp_path / "m.ckpt", weights_only=False)["state_dict"]
    assert not any(k.startswith("backbone.") for k in state)
    assert any(k.startswith("head.") for k in state)

    reloaded = make_model(spec, matrix, training_mode="frozen")
    results = trainer(tmp_path).test(reloaded, datamodule=make_data(spec, unit_files), ckpt_path=tmp_path / "m.ckpt")
    assert 0.0 <= results[0]["test/pair_acc"] <= 1.0
    torch.testing.assert_close(reloaded.head.axes, model.head.axes)


def test_baseline_loss_is_plain_ranking(tiny_spec, unit_files, matrix):
    model = make_model(tiny_spec, matrix, loss=GPRCLoss(alpha=0.0, beta=0.0))
    data = make_data(tiny_spec, unit_files)
    data.setup("fit")
    model.configure_model()
    batch = next(iter(data.train_dataloader()))
    out, _ = model.score_batch(batch)
    index = batch["dimension"][:, None, None].expand(-1, out.rewards.shape[1], 1)
    rewards = out.rewards.gather(2, index).squeeze(2)
    loss, metrics = model.loss(out.z, rewards, out.axes[:, 0], batch["num_responses"])
    assert metrics["loss_axis"] > 0 and metrics["loss_perp"] >= 0  # the geometric terms exist but carry no weight
    torch.testing.assert_close(loss, metrics["loss_rank"])


def test_mismatched_dimensions_are_refused(tiny_spec, matrix):
    with pytest.raises(ValueError, match="num_dimensions"):
        RewardModel(backbone=tiny_spec, num_dimensions=3, dimension_names=["a", "b"])


def test_lora_settings_need_lora_mode(tiny_spec, matrix):
    from lit_mrrml.models.lora import LoraSpec

    with pytest.raises(ValueError, match="training_mode"):
        make_model(tiny_spec, matrix, training_mode="full", lora=LoraSpec())


def test_load_from_checkpoint_rebuilds_the_model(tiny_spec, unit_files, matrix, tmp_path):
    model = make_model(tiny_spec, matrix, training_mode="full")
    t = trainer(tmp_path)
    t.fit(model, datamodule=make_data(tiny_spec, unit_files))
    t.save_checkpoint(tmp_path / "m.ckpt")
    checkpoint = torch.load(tmp_path / "m.ckpt", weights_only=True)  # plain data only: no pickled objects
    assert checkpoint["hyper_parameters"]["backbone"]["tokenizer"] == tiny_spec.tokenizer
    reloaded = RewardModel.load_from_checkpoint(tmp_path / "m.ckpt")
    assert reloaded.dimension_names == list(matrix.dimension_ids)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[name], value)


def matrix_file(matrix: RubricMatrix, folder: Path, edit) -> tuple[RubricMatrix, Path]:
    """A copy of ``matrix`` changed by ``edit(data)``, and its YAML file."""
    data = matrix.to_dict()
    edit(data)
    path = folder / "edited_matrix.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return RubricMatrix.from_yaml(path), path


def swap_accuracy_and_safety(data: dict) -> None:
    dims = data["dimensions"]
    i, j = [d["id"] for d in dims].index("accuracy"), [d["id"] for d in dims].index("safety")
    dims[i], dims[j] = dims[j], dims[i]


@pytest.fixture
def fitted(tiny_spec, unit_files, matrix, tmp_path) -> Path:
    """A checkpoint of a full-mode tiny model trained two steps on the shipped matrix."""
    model = make_model(tiny_spec, matrix, training_mode="full")
    t = trainer(tmp_path)
    t.fit(model, datamodule=make_data(tiny_spec, unit_files))
    t.save_checkpoint(tmp_path / "m.ckpt")
    return tmp_path / "m.ckpt"


def test_a_checkpoint_records_its_dimensions_and_matrix_hash(fitted, matrix):
    meta = torch.load(fitted, weights_only=True)["lit_mrrml"]
    assert meta["dimensions"] == list(matrix.dimension_ids)
    assert meta["matrix_hash"] == matrix.content_hash()


@pytest.mark.parametrize("stage", ["predict", "test", "validate"])
def test_a_checkpoint_is_refused_under_a_matrix_with_its_dimensions_reordered(
    stage, fitted, tiny_spec, unit_files, matrix, tmp_path
):
    other, path = matrix_file(matrix, tmp_path, swap_accuracy_and_safety)
    model = make_model(tiny_spec, other, training_mode="full")
    with pytest.raises(DimensionMismatchError) as info:
        getattr(trainer(tmp_path), stage)(model, datamodule=make_data(tiny_spec, unit_files, path), ckpt_path=fitted)
    trained, in_use = list(matrix.dimension_ids), list(other.dimension_ids)
    assert str(info.value).startswith(
        f"checkpoint {fitted} was trained with the dimensions {trained}, but the matrix in use has {in_use} "
        "(the same names in another order): its rewards would be reported under the wrong names."
    )


def test_a_reweighted_matrix_is_accepted_with_a_warning_and_its_weights_total(
    fitted, tiny_spec, unit_files, matrix, tmp_path, caplog
):
    def edit(data: dict) -> None:
        data["scenarios"][0]["weights"] = {"safety": 1.0}  # emergency_referrals: all on safety
        data["dimensions"][0]["levels"]["good"] = "Reworded."

    other, path = matrix_file(matrix, tmp_path, edit)
    writer = RewardPredictionWriter(str(tmp_path / "p.jsonl"))
    model = make_model(tiny_spec, other, training_mode="full")
    with caplog.at_level(logging.WARNING, logger="lit_mrrml"):
        trainer(tmp_path, callbacks=[writer], limit_predict_batches=1).predict(
            model, datamodule=make_data(tiny_spec, unit_files, path), ckpt_path=fitted, return_predictions=False
        )
    assert f"checkpoint {fitted} was trained with another version of this matrix (changed: " in caplog.text
    assert "dimensions.accuracy.levels.good, scenarios.emergency_referrals.weights)" in caplog.text
    assert "the total reward follows the new scenario weights" in caplog.text
    first = json.loads((tmp_path / "p.jsonl").read_text().splitlines()[0])  # unit u200: emergency_referrals
    assert first["total"] == pytest.approx(first["rewards"]["safety"], rel=1e-6)


def corrupt(checkpoint: Path, out: Path) -> Path:
    """The checkpoint with one head bias set to NaN, as a bad copy or a diverged run would have it."""
    state = torch.load(checkpoint, weights_only=True)
    state["state_dict"]["head.bias"][2] = float("nan")
    torch.save(state, out)
    return out


@pytest.mark.parametrize("stage", ["predict", "test"])
def test_non_finite_rewards_from_a_loaded_model_name_the_units(stage, fitted, tiny_spec, unit_files, matrix, tmp_path):
    bad = corrupt(fitted, tmp_path / "bad.ckpt")
    model = make_model(tiny_spec, matrix, training_mode="full")
    with pytest.raises(NonFiniteRewardError) as info:
        getattr(trainer(tmp_path), stage)(model, datamodule=make_data(tiny_spec, unit_files), ckpt_path=bad)
    assert str(info.value) == (
        f"{stage}: non-finite rewards (NaN or inf) for unit(s) ['u200', 'u201', 'u202', 'u203']: the model's "
        "weights may be corrupt (check the checkpoint or export, or train again), or the inputs overflow its dtype"
    )


def test_check_finite_rewards_looks_at_real_rows_only():
    rewards = torch.zeros(3, 2, 2)  # (B, K, L)
    rewards[1, 1, 0] = float("inf")  # unit b's second response
    rewards[2, 1, 1] = float("nan")  # unit c's padding row: not a response
    valid = torch.tensor([[True, True], [True, True], [True, False]])
    with pytest.raises(NonFiniteRewardError, match=r"^x: non-finite rewards \(NaN or inf\) for unit\(s\) \['b'\]:"):
        check_finite_rewards(rewards, valid, ["a", "b", "c"], "x")
    check_finite_rewards(
        rewards, valid & torch.tensor([[True, True], [True, False], [True, False]]), ["a", "b", "c"], "x"
    )
