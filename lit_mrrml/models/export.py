"""Export a RewardModel for use outside Lightning, and load it back (safetensors, JSON; no pickles).

Layout of an export folder:
    reward_config.json   what to rebuild: backbone spec, head settings, dimensions, matrix snapshot
                         and its hash, and the sha256 of every weight file (checked on load)
    head.safetensors     projection, axes, scales and biases
    tokenizer/           the backbone's tokenizer and chat template
    backbone/            the full backbone: always for ``full`` mode and random-init backbones,
                         on request (include_backbone=True) otherwise
    adapter/             LoRA adapter weights for ``lora`` mode (peft format)
A frozen or LoRA export without ``backbone/`` refers to the original backbone spec, and loading
checks that the weights found there have the fingerprint recorded at export.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from safetensors.torch import load_file, save_file

from lit_mrrml.jsonio import dumps
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.matrix.compare import check_trained_matrix
from lit_mrrml.models.backbone import BackboneSpec, base_state_dict, load_tokenizer, rebuild_from_config
from lit_mrrml.models.export_config import (
    CONFIG_FILE,
    FORMAT,
    HEAD_FILE,
    ExportError,
    check_head_shapes,
    read_export_config,
    verify_files,
    weight_digests,
)

if TYPE_CHECKING:
    from lit_mrrml.modules.reward import RewardModel


def _plain_backbone(model: RewardModel) -> torch.nn.Module:
    """The backbone as a plain transformers model that ``save_pretrained`` can write.

    LoRA layers are left out (the adapter is saved on its own), and a GGUF-loaded model is rebuilt
    from its config, since transformers cannot serialise GGUF-quantized weights.
    """
    backbone: Any = model.backbone
    assert backbone is not None
    lora = model.training_mode == "lora"
    if lora:
        backbone = backbone.get_base_model()
    if not lora and not model.spec.gguf_file:
        return backbone
    if model.spec.quantized:
        raise ValueError("include_backbone cannot re-save a bitsandbytes-quantized base model; export without it")
    return cast(torch.nn.Module, rebuild_from_config(backbone, base_state_dict(backbone), model.spec, lm_head=False))


def save_reward_model(model: RewardModel, directory: Path, include_backbone: bool | None = None) -> Path:
    """Write ``model`` to ``directory``; returns the folder."""
    if model.backbone is None or model.head is None:
        raise RuntimeError("save_pretrained: the model has not been built (call configure_model() first)")
    directory.mkdir(parents=True, exist_ok=True)
    include = include_backbone or model.training_mode == "full" or model.spec.path is None
    spec = dataclasses.asdict(model.spec)
    if include:
        cast(Any, _plain_backbone(model)).save_pretrained(directory / "backbone")
        spec.update(path="backbone", gguf_file=None, config=None, quantization=None)
    if model.training_mode == "lora":
        model.backbone.save_pretrained(directory / "adapter")  # type: ignore[operator]
    load_tokenizer(model.spec).save_pretrained(directory / "tokenizer")
    spec["tokenizer"] = "tokenizer"
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}, str(directory / HEAD_FILE)
    )
    files = weight_digests(directory)
    config = {
        "format": FORMAT,
        "backbone": spec,
        "backbone_fingerprint": model.fingerprint if not include else None,
        "training_mode": model.training_mode,
        "lora": dataclasses.asdict(model.lora_spec) if model.training_mode == "lora" else None,
        "embedding_dim": model.embedding_dim,
        "head": model.head_kind,
        "dimension_names": model.dimension_names,
        "matrix": model.matrix_snapshot,
        "matrix_hash": model.matrix_hash,
        "files": files,
    }
    config_path = directory / CONFIG_FILE
    config_path.write_text(dumps(config, str(config_path), indent=2), encoding="utf-8")
    for name in files:  # safetensors writes 0600: give the weights the folder's usual mode
        shutil.copymode(config_path, directory / name)
    return directory


def _local(directory: Path, value: str | None) -> str | None:
    """Paths written relative to the export folder become absolute; others pass through."""
    if value is not None and (directory / value).exists():
        return str(directory / value)
    return value


def load_reward_model(
    directory: Path, map_location: str | torch.device = "cpu", matrix: RubricMatrix | str | Path | None = None
) -> RewardModel:
    """Rebuild a RewardModel written by ``save_reward_model``, in eval mode.

    The config is checked field by field and every weight file against its recorded sha256. With
    ``matrix`` (a RubricMatrix or its YAML file: the matrix in use), a different dimension list is
    refused and other changes are warned about; the model then totals with that matrix's weights.
    """
    from lit_mrrml.modules.reward import RewardModel

    config = read_export_config(directory)
    snapshot = config.matrix
    if matrix is not None:
        current = matrix if isinstance(matrix, RubricMatrix) else RubricMatrix.from_yaml(matrix)
        check_trained_matrix(
            config.dimension_names, snapshot, list(current.dimension_ids), current.to_dict(), str(directory)
        )
        snapshot = current.to_dict()
    verify_files(directory, config.files)
    head_path = directory / HEAD_FILE
    head_state = load_file(str(head_path))
    check_head_shapes(head_path, head_state, config)
    spec_fields = dict(config.backbone)
    spec_fields["path"] = _local(directory, spec_fields.get("path"))
    spec_fields["tokenizer"] = _local(directory, spec_fields.get("tokenizer"))
    model = RewardModel(
        backbone=BackboneSpec(**spec_fields),
        training_mode=config.training_mode,  # type: ignore[arg-type]
        lora=config.lora,
        embedding_dim=config.embedding_dim,
        head=config.head,  # type: ignore[arg-type]
        dimension_names=config.dimension_names,
        num_dimensions=len(config.dimension_names),
        matrix=snapshot,
    )
    model.configure_model()
    assert model.head is not None and model.backbone is not None
    if config.backbone_fingerprint is not None and model.fingerprint != config.backbone_fingerprint:
        raise ExportError(
            f"{directory}: the backbone at {spec_fields['path']!r} is not the one this reward model was "
            "trained on (weights fingerprint differs); export again with include_backbone=True"
        )
    if config.training_mode == "lora":
        from peft import set_peft_model_state_dict

        adapter = load_file(str(directory / "adapter" / "adapter_model.safetensors"))
        set_peft_model_state_dict(model.backbone, adapter)
    model.head.load_state_dict(head_state)
    return model.to(map_location).eval()
