"""Backbones, their quantization, the reward head, LoRA, feature caching and export.

The names import lazily (lit_mrrml.lazy): importing the package imports none of its modules.
"""

from typing import TYPE_CHECKING

from lit_mrrml.lazy import lazy_exports

_EXPORTS = {
    "BackboneSpec": "lit_mrrml.models.backbone",
    "HeadOutput": "lit_mrrml.models.head",
    "LoraSpec": "lit_mrrml.models.lora",
    "QuantizationSpec": "lit_mrrml.models.quantization",
    "RewardHead": "lit_mrrml.models.head",
    "build_backbone": "lit_mrrml.models.backbone",
    "load_tokenizer": "lit_mrrml.models.backbone",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "BackboneSpec",
    "HeadOutput",
    "LoraSpec",
    "QuantizationSpec",
    "RewardHead",
    "build_backbone",
    "load_tokenizer",
]

if TYPE_CHECKING:
    from lit_mrrml.models.backbone import BackboneSpec, build_backbone, load_tokenizer
    from lit_mrrml.models.head import HeadOutput, RewardHead
    from lit_mrrml.models.lora import LoraSpec
    from lit_mrrml.models.quantization import QuantizationSpec
