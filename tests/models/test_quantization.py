"""backbone.quantization: the setting and its checks, 4- and 8-bit loading of the reward model and
both policies (bitsandbytes on CPU), a QLoRA step of the reward model with its full-precision head,
and the adapter-plus-head round trip through an export and a lean Lightning checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import yaml
from transformers import AutoModel, AutoModelForCausalLM

from lit_mrrml import RewardModel, SFTPolicy
from lit_mrrml.cli import main
from lit_mrrml.errors import InputError
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.models.backbone import BackboneSpec, QuantizationSpec, build_backbone
from lit_mrrml.models.tiny import TINY_QWEN2
from tests.conftest import MATRIX_PATH, ROOT, TINY_TOKENIZER, make_unit, write_jsonl
from tests.modules.test_grpo import make_policy
from tests.modules.test_reward_model import make_data, make_model

bnb = pytest.importorskip("bitsandbytes")

NF4 = QuantizationSpec(bits=4)
FP4 = QuantizationSpec(bits=4, quant_type="fp4", double_quant=True, compute_dtype="bfloat16", storage_dtype="uint8")
INT8 = QuantizationSpec(bits=8)
SETTINGS = [NF4, FP4, INT8]
LINEARS = 2 * 7  # 2 decoder layers x (q, k, v, o, gate, up, down)


# ---- the setting ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("setting", "dtype", "expected"),
    [
        (NF4, torch.bfloat16, {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": False,
                               "bnb_4bit_compute_dtype": torch.bfloat16, "bnb_4bit_quant_storage": torch.bfloat16}),
        (FP4, torch.float32, {"load_in_4bit": True, "bnb_4bit_quant_type": "fp4", "bnb_4bit_use_double_quant": True,
                              "bnb_4bit_compute_dtype": torch.bfloat16, "bnb_4bit_quant_storage": torch.uint8}),
        (INT8, torch.float32, {"load_in_8bit": True, "load_in_4bit": False}),
    ],
)  # fmt: skip
def test_the_setting_becomes_transformers_bitsandbytes_config(setting, dtype, expected):
    config = setting.bitsandbytes_config(dtype)  # unset dtypes: the backbone's (the FSDP dtype)
    assert {key: getattr(config, key) for key in expected} == expected


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"bits": 8, "quant_type": "fp4"}, "quant_type: 'fp4' applies to 4-bit weights only; remove it or set "
                                           "backbone.quantization.bits to 4"),
        ({"bits": 8, "double_quant": True}, "double_quant: True applies to 4-bit weights only"),
        ({"bits": 8, "storage_dtype": "bfloat16"}, "storage_dtype: 'bfloat16' applies to 4-bit weights only"),
        ({"bits": 8, "compute_dtype": "float16"}, "compute_dtype: 'float16' applies to 4-bit weights only"),
        ({"bits": 3}, "bits: unknown value 3; expected one of 4, 8"),
        ({"bits": True}, "bits: unknown value True; expected one of 4, 8"),
        ({"quant_type": "nf8"}, "quant_type: unknown value 'nf8'; expected one of nf4, fp4"),
        ({"storage_dtype": "int4"}, "storage_dtype: unknown value 'int4'; expected one of float32, bfloat16, "
                                    "float16, uint8, null"),
        ({"bitz": 4}, "bitz: unknown field; did you mean 'bits'?"),
    ],
)  # fmt: skip
def test_bad_settings_are_refused_naming_the_field(fields, message):
    with pytest.raises(InputError) as info:
        BackboneSpec(path="somewhere", quantization=fields)
    assert str(info.value).startswith(f"backbone.quantization.{message}")


def test_a_string_setting_is_refused_unless_it_is_an_older_spelling():
    with pytest.raises(InputError, match=r"^backbone\.quantization: unknown value '16bit'; give an object such as"):
        BackboneSpec(path="somewhere", quantization="16bit")
    with pytest.raises(InputError, match=r"^BackboneSpec: quantization loads pretrained weights; it needs `path`$"):
        BackboneSpec(config={"model_type": "qwen2"}, tokenizer="t", quantization=NF4)


def test_dicts_and_older_spellings_become_the_setting():
    spec = BackboneSpec(path="somewhere", quantization={"bits": 4, "quant_type": "fp4"})
    assert spec.quantization == QuantizationSpec(bits=4, quant_type="fp4") and spec.quantized
    assert BackboneSpec.from_dict(dataclasses.asdict(spec)) == spec  # a checkpoint's hyperparameters
    older = {"path": "somewhere", "dtype": "float32", "quantization": "4bit", "quant_type": "fp4"}
    assert BackboneSpec.from_dict(older).quantization == QuantizationSpec(bits=4, quant_type="fp4")
    assert BackboneSpec.from_dict(older | {"quantization": "8bit", "quant_type": "nf4"}).quantization == INT8
    assert not BackboneSpec.from_dict(older | {"quantization": "none"}).quantized
    model = RewardModel(backbone=older, num_dimensions=1)  # load_from_checkpoint's path
    assert model.spec.quantization == QuantizationSpec(bits=4, quant_type="fp4")
    assert model.hparams["backbone"]["quantization"] == dataclasses.asdict(model.spec.quantization)
    assert [s.label for s in SETTINGS] == ["4bit", "4bit-fp4-dq-bfloat16-uint8", "8bit"]


def test_a_bad_setting_in_a_yaml_config_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    config = yaml.safe_load((ROOT / "configs/reward/tiny.yaml").read_text())
    backbone = {
        "path": str(tmp_path),
        "tokenizer": str(TINY_TOKENIZER),
        "quantization": {"bits": 8, "quant_type": "fp4"},
    }
    config["model"]["init_args"].update(backbone=backbone, training_mode="lora")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(path), f"--trainer.default_root_dir={tmp_path}"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        "error: backbone.quantization.quant_type: 'fp4' applies to 4-bit weights only; remove it or set "
        "backbone.quantization.bits to 4"
    )
    assert not (tmp_path / "checkpoints").exists()


# ---- loading ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pretrained:
    """A tiny causal LM saved to a folder, and the fp32 memory of its base model and of itself."""

    folder: Path
    base_bytes: int
    causal_lm_bytes: int

    def spec(self, quantization: QuantizationSpec | None, dtype: str = "float32") -> BackboneSpec:
        return BackboneSpec(
            path=str(self.folder), tokenizer=str(TINY_TOKENIZER), dtype=dtype, quantization=quantization
        )


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Pretrained:
    folder = tmp_path_factory.mktemp("pretrained")
    torch.manual_seed(0)
    config = dict(TINY_QWEN2, hidden_size=128, intermediate_size=256)  # wide enough for 64-weight 4-bit blocks
    build_backbone(BackboneSpec(config=config, tokenizer=str(TINY_TOKENIZER)), lm_head=True).save_pretrained(folder)
    base = AutoModel.from_pretrained(folder).get_memory_footprint()
    return Pretrained(folder, base, AutoModelForCausalLM.from_pretrained(folder).get_memory_footprint())


def assert_quantized(model: Any, setting: QuantizationSpec, fp32_bytes: int, dtype: torch.dtype) -> None:
    """Every decoder linear layer is bitsandbytes', in the setting asked for, and the model is smaller."""
    kind = bnb.nn.Linear4bit if setting.bits == 4 else bnb.nn.Linear8bitLt
    layers = [m for m in model.modules() if isinstance(m, kind)]
    assert len(layers) == LINEARS
    config = model.config.quantization_config
    for layer in layers:
        weights = layer.in_features * layer.out_features
        assert layer.weight.untyped_storage().nbytes() == weights * setting.bits // 8  # 4 or 8 bits a weight
    if setting.bits == 4:
        storage = getattr(torch, setting.storage_dtype) if setting.storage_dtype else dtype
        compute = getattr(torch, setting.compute_dtype) if setting.compute_dtype else dtype
        assert (config.bnb_4bit_quant_storage, config.bnb_4bit_compute_dtype) == (storage, compute)
        assert config.bnb_4bit_use_double_quant == setting.double_quant
        assert all(layer.weight.dtype == storage and layer.compute_dtype == compute for layer in layers)
        states = [layer.weight.quant_state for layer in layers]
        assert all(s.quant_type == setting.quant_type and s.nested == setting.double_quant for s in states)
    else:
        assert config.load_in_8bit and all(layer.weight.dtype == torch.int8 for layer in layers)
    assert model.get_memory_footprint() < fp32_bytes


def mapped_files() -> set[str]:
    """The files this process has memory-mapped (Linux)."""
    lines = Path("/proc/self/maps").read_text().splitlines()
    return {fields[5].strip() for fields in (line.split(maxsplit=5) for line in lines) if len(fields) == 6}


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="reads /proc/self/maps (Linux)")
@pytest.mark.parametrize("setting", [NF4, INT8], ids=lambda s: s.label)
def test_a_quantized_load_lets_go_of_the_weights_file(pretrained, setting):
    # the unquantized tensors (embedding, norms) are copied out of the mapped safetensors file, which
    # otherwise stays resident whole: 406 MiB for SmolLM2's 158 MiB of such tensors
    weights = str((pretrained.folder / "model.safetensors").resolve())
    model = build_backbone(pretrained.spec(setting))
    assert weights not in mapped_files()
    plain = build_backbone(pretrained.spec(None))  # the check can fail: an unquantized load maps it
    assert weights in mapped_files()
    assert model.embed_tokens.weight.dtype == torch.float32 and plain is not None


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.label)
@pytest.mark.parametrize("mode", ["lora", "frozen"])
def test_the_reward_model_loads_its_backbone_quantized(pretrained, setting, mode):
    matrix = RubricMatrix.from_yaml(MATRIX_PATH)
    model = make_model(pretrained.spec(setting), matrix, training_mode=mode)
    model.configure_model()
    backbone: Any = model.backbone
    assert_quantized(
        backbone.get_base_model() if mode == "lora" else backbone, setting, pretrained.base_bytes, torch.float32
    )
    assert model.head is not None and all(p.dtype == torch.float32 and p.requires_grad for p in model.head.parameters())


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.label)
@pytest.mark.parametrize("kind", ["sft", "grpo"])
def test_both_policies_load_their_model_quantized(pretrained, setting, kind):
    spec = pretrained.spec(setting, dtype="bfloat16")
    module = SFTPolicy(spec, training_mode="lora") if kind == "sft" else make_policy(spec, training_mode="lora")
    module.configure_model()
    assert_quantized(module.policy.get_base_model(), setting, pretrained.causal_lm_bytes, torch.bfloat16)
    assert all(".lora_" in n for n, p in module.policy.named_parameters() if p.requires_grad)


# ---- a QLoRA step of the reward model, and its round trips --------------------------------------
ROWS = (
    [
        [{"role": "user", "content": "Chest pain since this morning, what now?"}],
        [{"role": "user", "content": "A rash?"}],
    ],
    ["Call emergency services now.", "See a doctor if it spreads."],
)


@dataclass
class TrainedReward:
    """A QLoRA reward model after a two-step fit, its state before it, its rewards and checkpoint."""

    model: RewardModel
    trainer: L.Trainer
    before: dict[str, torch.Tensor]
    rewards: torch.Tensor  # (2, L) of ROWS after training
    checkpoint: Path


SPLITS = (("train", 0, 8), ("val", 100, 4), ("test", 200, 4))
DIMS = ["accuracy", "completeness", "communication_quality", "context_awareness", "instruction_following", "safety"]


def write_units(root: Path, split: str, offset: int, n: int) -> Path:
    units = [make_unit(offset + i, k=2 + i % 2, dimension=DIMS[i % 6]) for i in range(n)]
    return write_jsonl(root / f"{split}.jsonl", units)


def bnb_state(model: RewardModel) -> dict[str, torch.Tensor]:
    """The packed weights of every bitsandbytes layer, and every trainable parameter, by name."""
    kinds = (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)
    # as bytes: packed 4-bit blocks read as bfloat16 may be NaN, which no comparison finds equal
    packed = {f"{n}.weight": m.weight.data.view(torch.uint8) for n, m in model.named_modules() if isinstance(m, kinds)}
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    return {n: t.detach().clone() for n, t in (packed | trainable).items()}


@pytest.fixture(scope="module", params=[("bfloat16", QuantizationSpec(bits=4, double_quant=True)), ("float32", INT8)],
                ids=["4bit-dq-bfloat16", "8bit"])  # fmt: skip
def trained_reward(request, pretrained, tmp_path_factory) -> TrainedReward:
    root = tmp_path_factory.mktemp("qlora_reward")
    files = {split: write_units(root, split, offset, n) for split, offset, n in SPLITS}
    dtype, setting = request.param
    spec = pretrained.spec(setting, dtype=dtype)
    torch.manual_seed(0)
    model = make_model(spec, RubricMatrix.from_yaml(MATRIX_PATH), training_mode="lora")
    model.configure_model()
    model.score(*ROWS)  # eval mode under inference_mode before training, as validation is
    before = bnb_state(model)
    trainer = L.Trainer(
        accelerator="cpu",
        precision="32-true",
        max_steps=2,
        limit_val_batches=1,
        num_sanity_val_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    trainer.fit(model, datamodule=make_data(spec, files))
    checkpoint = root / "qlora.ckpt"
    trainer.save_checkpoint(checkpoint)
    return TrainedReward(model, trainer, before, model.score(*ROWS).rewards, checkpoint)


def test_a_qlora_step_trains_the_adapter_and_the_full_precision_head_not_the_quantized_base(trained_reward):
    model, before = trained_reward.model, trained_reward.before
    assert torch.isfinite(trained_reward.trainer.callback_metrics["train/loss"])
    after = bnb_state(model)
    packed = [n for n in before if n.endswith("base_layer.weight")]
    lora = [n for n in before if ".lora_" in n]
    head = [n for n in before if n.startswith("head.")]
    assert len(packed) == LINEARS and len(lora) == 2 * LINEARS and head
    assert set(packed + lora + head) == set(before)  # nothing else trains
    assert all(torch.equal(after[n], before[n]) for n in packed)
    assert all(not torch.equal(after[n], before[n]) for n in lora if ".lora_B." in n)  # B starts at 0 and moves
    assert all(not torch.equal(after[n], before[n]) for n in head)
    assert all(p.dtype == torch.float32 and p.requires_grad for p in model.head.parameters())


def test_the_adapter_and_head_export_reloads_with_the_same_rewards(trained_reward, tmp_path):
    out = trained_reward.model.save_pretrained(tmp_path / "export")
    assert (out / "adapter" / "adapter_model.safetensors").is_file() and not (out / "backbone").exists()
    reloaded = RewardModel.from_pretrained(out)
    assert reloaded.spec.quantization == trained_reward.model.spec.quantization
    torch.testing.assert_close(reloaded.score(*ROWS).rewards, trained_reward.rewards, atol=1e-5, rtol=0)


def test_a_lean_checkpoint_leaves_the_quantized_base_out_and_reloads_with_the_same_rewards(trained_reward):
    state = torch.load(trained_reward.checkpoint, weights_only=True)["state_dict"]
    assert state and all(".lora_" in k for k in state if k.startswith("backbone."))  # no packed weights nor constants
    reloaded = RewardModel.load_from_checkpoint(trained_reward.checkpoint)
    torch.testing.assert_close(reloaded.score(*ROWS).rewards, trained_reward.rewards, atol=1e-5, rtol=0)
