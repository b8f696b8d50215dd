"""Backbones, their quantization, the reward head, LoRA, feature caching and export."""

from lit_mrrml.models.backbone import BackboneSpec, build_backbone, load_tokenizer
from lit_mrrml.models.head import HeadOutput, RewardHead
from lit_mrrml.models.lora import LoraSpec
from lit_mrrml.models.quantization import QuantizationSpec

__all__ = [
    "BackboneSpec",
    "HeadOutput",
    "LoraSpec",
    "QuantizationSpec",
    "RewardHead",
    "build_backbone",
    "load_tokenizer",
]
