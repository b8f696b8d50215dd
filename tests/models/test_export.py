"""save_pretrained / from_pretrained: same rewards after reload, in every training mode."""

from __future__ import annotations

import json

import pytest
import torch

from lit_mrrml import RewardModel
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.matrix.compare import DimensionMismatchError
from lit_mrrml.models.backbone import BackboneSpec, build_backbone
from lit_mrrml.models.export_config import ExportError
from lit_mrrml.models.tiny import TINY_QWEN2
from lit_mrrml.textio import NotUTF8Error
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


@pytest.fixture
def export(tiny_spec, matrix, tmp_path):
    """A full-mode export (backbone included) of the tiny model."""
    model = make_model(tiny_spec, matrix, training_mode="full")
    model.configure_model()
    return model.save_pretrained(tmp_path / "export")


def edit_config(folder, **fields):
    path = folder / "reward_config.json"
    config = json.loads(path.read_text())
    config.update(fields)
    path.write_text(json.dumps(config))
    return path


def test_the_config_records_the_matrix_hash_and_every_weight_file(export, matrix):
    from lit_mrrml.models.export_config import sha256_file

    config = json.loads((export / "reward_config.json").read_text())
    assert config["format"] == "lit_mrrml.reward/2" and config["matrix_hash"] == matrix.content_hash()
    assert sorted(config["files"]) == ["backbone/model.safetensors", "head.safetensors"]
    assert config["files"]["head.safetensors"] == sha256_file(export / "head.safetensors")


def test_weight_files_get_the_folders_permissions(export):
    mode = (export / "reward_config.json").stat().st_mode
    assert (export / "head.safetensors").stat().st_mode == mode  # safetensors itself writes 0600
    assert (export / "backbone" / "model.safetensors").stat().st_mode == mode


def test_a_corrupt_weight_file_is_named(export):
    head = export / "head.safetensors"
    data = bytearray(head.read_bytes())
    data[-3] ^= 0xFF  # one flipped byte in a tensor: it would load, as a wrong reward
    head.write_bytes(bytes(data))
    with pytest.raises(ExportError) as info:
        RewardModel.from_pretrained(export)
    assert str(info.value) == (
        f"{head}: sha256 differs from the one recorded in reward_config.json ({len(data)} bytes): the file is "
        "corrupt or truncated; copy it again or export again"
    )


def test_a_truncated_backbone_is_named(export):
    weights = export / "backbone" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ExportError, match=rf"^{weights}: sha256 differs .*\(1000 bytes\)"):
        RewardModel.from_pretrained(export)


def test_a_missing_weight_file_is_named(export):
    (export / "backbone" / "model.safetensors").unlink()
    with pytest.raises(ExportError, match=r"model\.safetensors: missing \(listed in reward_config\.json\)"):
        RewardModel.from_pretrained(export)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"training_mode": "halfway"}, "training_mode: unknown value 'halfway'; expected one of frozen, lora, full"),
        ({"head": "deep"}, "head: unknown value 'deep'; expected one of linear, mlp"),
        ({"embedding_dim": 0}, "embedding_dim: must be a positive integer, got 0"),
        ({"dimension_names": ["a", "a"]}, "dimension_names: repeats a dimension: ['a', 'a']"),
        ({"lora": {"r": 4}}, "lora: must be null for training_mode 'full'"),
        ({"heads": "linear"}, "heads: unknown field; did you mean 'head'?"),
        ({"format": "lit_mrrml.reward/1"}, "format: unsupported format 'lit_mrrml.reward/1', expected "),
        ({"matrix_hash": "0" * 64}, "matrix_hash: '" + "0" * 64 + "' is not the hash of the matrix snapshot"),
        ({"files": {"head.safetensors": "xyz"}}, "files.head.safetensors: must be a relative path inside the"),
    ],
)
def test_fields_that_are_not_the_projects_are_refused_naming_the_file_and_field(export, fields, message):
    path = edit_config(export, **fields)
    with pytest.raises(ExportError) as info:
        RewardModel.from_pretrained(export)
    assert str(info.value).startswith(f"{path}: {message}")


def test_unknown_backbone_fields_and_values_are_named(export):
    config = json.loads((export / "reward_config.json").read_text())
    path = edit_config(export, backbone={**config["backbone"], "dtype": "float8"})
    with pytest.raises(ExportError, match=r"backbone\.dtype: unknown value 'float8'; expected one of float32, "):
        RewardModel.from_pretrained(export)
    edit_config(export, backbone={**config["backbone"], "quantisation": "4bit"})
    with pytest.raises(ExportError, match=rf"^{path}: backbone\.quantisation: unknown field; did you mean"):
        RewardModel.from_pretrained(export)


@pytest.mark.parametrize(
    ("quantization", "message"),
    [
        ({"bits": 3}, "backbone.quantization.bits: unknown value 3; expected one of 4, 8"),
        ({"bits": 4, "double_quant": "yes"}, "backbone.quantization.double_quant: unknown value 'yes'; expected one"),
        ({"bitz": 4}, "backbone.quantization.bitz: unknown field; did you mean 'bits'?"),
        ("16bit", "backbone.quantization: must be an object or null, got '16bit'"),
        ({"bits": 8, "quant_type": "fp4"}, "backbone.quantization.quant_type: 'fp4' applies to 4-bit weights only"),
    ],
)
def test_a_bad_quantization_is_named_field_by_field(export, quantization, message):
    config = json.loads((export / "reward_config.json").read_text())
    path = edit_config(export, backbone={**config["backbone"], "quantization": quantization})
    with pytest.raises(ExportError) as info:
        RewardModel.from_pretrained(export)
    assert str(info.value).startswith(f"{path}: {message}")


def test_an_older_export_spelling_of_the_quantization_still_loads(export, unit_files, tiny_spec):
    data = make_data(tiny_spec, unit_files)
    data.setup("test")
    batch = next(iter(data.test_dataloader()))
    expected = rewards_of(RewardModel.from_pretrained(export), batch)
    config = json.loads((export / "reward_config.json").read_text())
    assert config["backbone"]["quantization"] is None
    path = edit_config(export, backbone={**config["backbone"], "quantization": "none", "quant_type": "nf4"})
    reloaded = RewardModel.from_pretrained(export)
    assert reloaded.spec.quantization is None
    torch.testing.assert_close(rewards_of(reloaded, batch), expected)
    edit_config(export, backbone={**config["backbone"], "quantization": "none", "quant_type": "nf8"})
    with pytest.raises(ExportError, match=rf"^{path}: backbone\.quant_type: unknown value 'nf8'; expected one of nf4"):
        RewardModel.from_pretrained(export)


def test_a_dimension_list_that_does_not_fit_the_head_is_refused(export, matrix):
    names = list(matrix.dimension_ids)
    path = edit_config(export, dimension_names=names[:5])  # the snapshot still lists six
    with pytest.raises(ExportError, match=rf"^{path}: matrix: its dimensions \[.*\] are not dimension_names"):
        RewardModel.from_pretrained(export)
    edit_config(export, matrix=None, matrix_hash=None)  # without a snapshot, the head's size is the check
    with pytest.raises(ExportError) as info:
        RewardModel.from_pretrained(export)
    assert str(info.value) == (
        f"{export / 'head.safetensors'}: the head has 6 dimension axes of size 16, but reward_config.json gives "
        f"dimension_names (5: {names[:5]}) and embedding_dim 16"
    )


def test_a_config_that_is_not_json_or_not_utf8_is_named(export):
    path = export / "reward_config.json"
    path.write_text('{"format": "lit_mrrml.reward/2",\n  oops}')
    with pytest.raises(
        ExportError, match=rf"^{path}: not valid JSON \(Expecting property name .* at line 2, column 3\)"
    ):
        RewardModel.from_pretrained(export)
    path.write_bytes(b'{"format": "caf\xe9"}')
    with pytest.raises(NotUTF8Error, match=rf"^{path}: not UTF-8 text: byte 0xe9 at byte offset 15 "):
        RewardModel.from_pretrained(export)


def test_from_pretrained_checks_the_matrix_in_use(export, matrix, tiny_spec, caplog):
    data = matrix.to_dict()
    data["dimensions"].reverse()
    with pytest.raises(DimensionMismatchError, match=rf"^{export} was trained with the dimensions \['accuracy'"):
        RewardModel.from_pretrained(export, matrix=RubricMatrix.from_dict(data))
    data = matrix.to_dict()
    data["scenarios"][0]["weights"] = {"safety": 1.0}
    with caplog.at_level("WARNING", logger="lit_mrrml"):
        model = RewardModel.from_pretrained(export, matrix=RubricMatrix.from_dict(data))
    assert "changed: scenarios.emergency_referrals.weights" in caplog.text
    assert model.total_weights(torch.tensor([0])).tolist() == [[0, 0, 0, 0, 0, 1.0]]  # the new weights total
