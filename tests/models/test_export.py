"""save_pretrained / from_pretrained: same rewards after reload, in every training mode."""

from __future__ import annotations

import json

import pytest
import torch

from lit_mrrml import RewardModel
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.models.backbone import BackboneSpec, build_backbone
from lit_mrrml.models.tiny import TINY_QWEN2
from tests.modules.test_reward_model import make_data, make_model


def rewards_of(model: RewardModel, batch: dict) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model.score_batch(batch)[0].rewards


def perturb(model: RewardModel) -> None:
    """Move every trainable weight, as training would, so a reload that drops one is caught."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))


@pytest.fixture
def saved_backbone(tiny_spec, tmp_path) -> BackboneSpec:
    folder = tmp_path / "pretrained"
    build_backbone(tiny_spec).save_pretrained(folder)
    return BackboneSpec(path=str(folder), tokenizer=tiny_spec.tokenizer)


@pytest.mark.parametrize("mode", ["frozen", "lora", "full"])
def test_reload_gives_the_same_rewards(mode, saved_backbone, unit_files, matrix, tmp_path):
    model = make_model(saved_backbone, matrix, training_mode=mode)
    model.configure_model()
    perturb(model)
    data = make_data(saved_backbone, unit_files)
    data.setup("test")
    batch = next(iter(data.test_dataloader()))
    expected = rewards_of(model, batch)

    out = model.save_pretrained(tmp_path / "export")
    files = {p.name for p in out.iterdir()}
    assert {"reward_config.json", "head.safetensors", "tokenizer"} <= files
    assert ("backbone" in files) == (mode == "full")
    assert ("adapter" in files) == (mode == "lora")
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.pt")) and not list(out.rglob("*.ckpt"))

    reloaded = RewardModel.from_pretrained(out)
    assert not reloaded.training and reloaded.dimension_names == list(matrix.dimension_ids)
    torch.testing.assert_close(rewards_of(reloaded, batch), expected)
    config = json.loads((out / "reward_config.json").read_text())
    assert RubricMatrix.from_dict(config["matrix"]).content_hash() == matrix.content_hash()


def test_random_init_backbone_is_always_exported(tiny_spec, unit_files, matrix, tmp_path):
    model = make_model(tiny_spec, matrix, training_mode="frozen")
    model.configure_model()
    out = model.save_pretrained(tmp_path / "export")
    assert (out / "backbone" / "config.json").is_file()
    data = make_data(tiny_spec, unit_files)
    data.setup("test")
    batch = next(iter(data.test_dataloader()))
    torch.testing.assert_close(rewards_of(RewardModel.from_pretrained(out), batch), rewards_of(model, batch))


def test_include_backbone_copies_a_frozen_backbone(saved_backbone, matrix, tmp_path):
    model = make_model(saved_backbone, matrix, training_mode="frozen")
    model.configure_model()
    out = model.save_pretrained(tmp_path / "export", include_backbone=True)
    assert (out / "backbone" / "config.json").is_file()
    assert json.loads((out / "reward_config.json").read_text())["backbone"]["path"] == "backbone"


def test_reload_refuses_a_changed_backbone(saved_backbone, matrix, tmp_path):
    model = make_model(saved_backbone, matrix, training_mode="frozen")
    model.configure_model()
    out = model.save_pretrained(tmp_path / "export")
    torch.manual_seed(123)  # other random weights of the same architecture
    other = build_backbone(BackboneSpec(config=dict(TINY_QWEN2), tokenizer=saved_backbone.tokenizer))
    other.save_pretrained(saved_backbone.path)  # the referenced weights change under the export
    with pytest.raises(ValueError, match="fingerprint"):
        RewardModel.from_pretrained(out)


def test_missing_or_foreign_folder_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"reward_config\.json"):
        RewardModel.from_pretrained(tmp_path)
    (tmp_path / "reward_config.json").write_text(json.dumps({"format": "something/9"}))
    with pytest.raises(ValueError, match="unsupported format"):
        RewardModel.from_pretrained(tmp_path)


def test_unbuilt_model_cannot_be_saved(tiny_spec, matrix, tmp_path):
    with pytest.raises(RuntimeError, match="configure_model"):
        make_model(tiny_spec, matrix).save_pretrained(tmp_path)


def test_lora_export_with_backbone_saves_plain_base_weights(saved_backbone, unit_files, matrix, tmp_path):
    model = make_model(saved_backbone, matrix, training_mode="lora")
    model.configure_model()
    perturb(model)
    out = model.save_pretrained(tmp_path / "export", include_backbone=True)
    from safetensors.torch import load_file

    saved = load_file(str(out / "backbone" / "model.safetensors"))
    assert not any("lora_" in k or "base_layer" in k for k in saved)
    data = make_data(saved_backbone, unit_files)
    data.setup("test")
    batch = next(iter(data.test_dataloader()))
    torch.testing.assert_close(rewards_of(RewardModel.from_pretrained(out), batch), rewards_of(model, batch))
