"""Backbones from a config, a folder, a package path, and quantized with bitsandbytes."""

from __future__ import annotations

import pytest
import torch

from lit_mrrml.models.backbone import BackboneSpec, QuantizationSpec, build_backbone, load_tokenizer, resolve_path


def test_config_backbone_is_a_base_model(tiny_spec):
    model = build_backbone(tiny_spec)
    assert not hasattr(model, "lm_head") and model.config.hidden_size == 64
    out = model(input_ids=torch.tensor([[1, 2, 3]])).last_hidden_state
    assert out.shape == (1, 3, 64)


def test_tokenizer_has_pad_token_and_chat_template(tiny_spec):
    tokenizer = load_tokenizer(tiny_spec)
    assert tokenizer.pad_token_id is not None and tokenizer.chat_template


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one"),
        ({"path": "x", "config": {"model_type": "qwen2"}}, "exactly one"),
        ({"config": {"hidden_size": 8}, "tokenizer": "t"}, "model_type"),
        ({"config": {"model_type": "qwen2"}}, "tokenizer"),
        ({"config": {"model_type": "qwen2"}, "tokenizer": "t", "quantization": {"bits": 4}}, "needs `path`"),
    ],
)
def test_bad_specs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BackboneSpec(**kwargs)


def test_package_paths_resolve_without_import():
    assert resolve_path("package:lit_mrrml").endswith("lit_mrrml")
    assert resolve_path("some/dir") == "some/dir"
    with pytest.raises(FileNotFoundError, match="not installed"):
        resolve_path("package:no_such_package_xyz")


@pytest.mark.parametrize("bits", [4, 8])
def test_quantized_loading_saves_memory_and_keeps_outputs_close(bits, tiny_spec, tmp_path):
    pytest.importorskip("bitsandbytes")
    torch.manual_seed(0)
    spec = BackboneSpec(
        config=dict(tiny_spec.config, hidden_size=128, intermediate_size=256), tokenizer=tiny_spec.tokenizer
    )
    build_backbone(spec).save_pretrained(tmp_path)
    full = build_backbone(BackboneSpec(path=str(tmp_path), tokenizer=spec.tokenizer))
    quant = build_backbone(
        BackboneSpec(path=str(tmp_path), tokenizer=spec.tokenizer, quantization=QuantizationSpec(bits))
    )
    assert quant.get_memory_footprint() < full.get_memory_footprint()
    ids = torch.tensor([[5, 6, 7, 8]])
    a, b = full(input_ids=ids).last_hidden_state, quant(input_ids=ids).last_hidden_state
    assert torch.isfinite(b).all()
    assert torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.9
