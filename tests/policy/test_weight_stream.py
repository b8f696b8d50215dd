"""lit_mrrml/policy/weight_stream.py: the weights a colocated engine receives are the plain model's,
LoRA merged (as the export merges it), 4-bit dequantized, FSDP2 shards gathered, the live model untouched."""

from __future__ import annotations

import copy
import socket

import pytest
import torch
import torch.distributed as dist
from torch import Tensor
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor

from lit_mrrml.models.backbone import BackboneSpec, QuantizationSpec, build_backbone
from lit_mrrml.models.lora import LoraSpec
from lit_mrrml.models.policy_model import build_policy_model, merged_causal_lm
from lit_mrrml.models.sharding import shard_causal_lm
from lit_mrrml.policy.weight_stream import owners, plain_name, stream_merged_weights
from tests.conftest import TINY_TOKENIZER

LORA = LoraSpec(r=4, alpha=8, dropout=0.0)


def collect(model: torch.nn.Module, root: torch.nn.Module | None = None) -> tuple[dict[str, Tensor], list[int]]:
    """Every (name, tensor) the stream sends, cloned, and the size of each load call."""
    got: dict[str, Tensor] = {}
    calls: list[int] = []

    def load(pairs):
        before = len(got)
        for name, tensor in pairs:
            assert name not in got, f"{name} sent twice"
            got[name] = tensor.detach().clone()
        calls.append(len(got) - before)

    sent = stream_merged_weights(model, load, root)
    assert sent == list(got)
    return got, calls


def lora_policy(spec: BackboneSpec) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_policy_model(spec, "lora", LORA)
    with torch.no_grad():  # a trained adapter: B != 0, so the merge matters
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model


def test_plain_names_fold_wrappers_and_peft_away() -> None:
    assert plain_name("base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight") == (
        "model.layers.0.self_attn.q_proj.weight"
    )
    assert plain_name("model._fsdp_wrapped_module.layers.1._checkpoint_wrapped_module.mlp.up_proj.weight") == (
        "model.layers.1.mlp.up_proj.weight"
    )


def test_a_full_model_streams_its_own_parameters(tiny_spec):
    model = build_policy_model(tiny_spec, "full", LORA)
    got, calls = collect(model)
    params = dict(model.named_parameters())
    assert list(got) == list(params)  # the tied LM head once, as the embedding
    assert "lm_head.weight" not in got and calls == [len(params)]
    assert all(torch.equal(got[n], p) for n, p in params.items())


def test_lora_is_merged_as_the_export_merges_it_and_the_live_model_is_untouched(tiny_spec):
    model = lora_policy(tiny_spec)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    got, _ = collect(model)
    export = merged_causal_lm(model, tiny_spec).state_dict()
    assert set(got) == set(export) - {"lm_head.weight"}  # tied to model.embed_tokens.weight
    for name, tensor in got.items():
        torch.testing.assert_close(tensor, export[name], rtol=0, atol=1e-6)
    q = "model.layers.0.self_attn.q_proj"
    base = before[f"base_model.model.{q}.base_layer.weight"]
    delta = (
        before[f"base_model.model.{q}.lora_B.default.weight"] @ before[f"base_model.model.{q}.lora_A.default.weight"]
    )
    torch.testing.assert_close(got[f"{q}.weight"], base + (LORA.alpha / LORA.r) * delta)  # W + scale * B A
    assert not torch.equal(got[f"{q}.weight"], base)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_4bit_weights_are_dequantized_to_their_full_shape(tmp_path, tiny_spec):
    pytest.importorskip("bitsandbytes")
    torch.manual_seed(0)
    config = dict(tiny_spec.config or {}, hidden_size=128, intermediate_size=256)
    dense = build_backbone(BackboneSpec(config=config, tokenizer=str(TINY_TOKENIZER)), lm_head=True)
    dense.save_pretrained(tmp_path)
    spec = BackboneSpec(path=str(tmp_path), tokenizer=str(TINY_TOKENIZER), quantization=QuantizationSpec(bits=4))
    model = lora_policy(spec)
    got, _ = collect(model)
    original = dense.state_dict()
    q = "model.layers.0.self_attn.q_proj.weight"
    assert got[q].shape == original[q].shape == (128, 128)  # not bitsandbytes' packed (n / 2, 1) bytes
    up = "model.layers.1.mlp.up_proj.weight"
    layer = model.get_base_model().model.layers[1].mlp.up_proj
    delta = layer.get_delta_weight("default").detach()
    # nf4 keeps every weight within a small fraction of its block's largest magnitude
    error = (got[up] - delta - original[up]).abs().mean() / original[up].abs().mean()
    assert got[up].shape == original[up].shape and float(error) < 0.15


@pytest.fixture
def one_rank_mesh():
    """A one-process gloo group and CPU mesh, so that FSDP2 shards (into one piece) in this process."""
    if dist.is_initialized():
        pytest.skip("a process group is already initialised")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        yield init_device_mesh("cpu", (1,))
    finally:
        dist.destroy_process_group()


def test_fsdp2_units_are_gathered_one_at_a_time(tiny_spec, one_rank_mesh):
    model = lora_policy(tiny_spec)
    expected, _ = collect(copy.deepcopy(model))
    shard_causal_lm(model, one_rank_mesh)
    assert any(isinstance(p, DTensor) for p in model.parameters())
    groups = owners(model)
    assert len([u for u in groups if "layers." in u]) == 2  # one unit a decoder block, deepest first
    got, calls = collect(model)
    assert set(got) == set(expected)
    assert calls == [12, 12, 2]  # a block: 7 weights, 3 q/k/v biases, 2 norms; the root: embeddings, norm
    assert groups[""] == []  # the peft wrapper holds no weight of its own: no call for it
    for name, tensor in got.items():
        assert not isinstance(tensor, DTensor)
        torch.testing.assert_close(tensor, expected[name])
    assert all(isinstance(p, DTensor) for p in model.parameters())  # resharded afterwards
