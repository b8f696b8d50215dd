"""lit_mrrml: multi-dimensional rubric-oriented reward models with GPRC, and the policies trained
against them (SFT, then GRPO/GDPO), on PyTorch Lightning.

The names below import lazily: ``import lit_mrrml`` costs nothing, ``lit_mrrml.RewardModel``
imports torch and Lightning on first use (lit_mrrml.lazy).
"""

from typing import TYPE_CHECKING

from lit_mrrml.lazy import lazy_exports

__version__ = "0.1.0"
_EXPORTS = {
    "BackboneSpec": "lit_mrrml.models.backbone",
    "GPRCLoss": "lit_mrrml.losses.gprc",
    "GRPOLoss": "lit_mrrml.losses.grpo",
    "GRPOPolicy": "lit_mrrml.modules.grpo",
    "LoraSpec": "lit_mrrml.models.lora",
    "PromptDataModule": "lit_mrrml.data.prompts",
    "RewardModel": "lit_mrrml.modules.reward",
    "RubricDataModule": "lit_mrrml.data.datamodule",
    "RubricMatrix": "lit_mrrml.matrix.model",
    "SFTDataModule": "lit_mrrml.data.sft",
    "SFTPolicy": "lit_mrrml.modules.sft",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "BackboneSpec",
    "GPRCLoss",
    "GRPOLoss",
    "GRPOPolicy",
    "LoraSpec",
    "PromptDataModule",
    "RewardModel",
    "RubricDataModule",
    "RubricMatrix",
    "SFTDataModule",
    "SFTPolicy",
    "__version__",
]

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from lit_mrrml.data.datamodule import RubricDataModule
    from lit_mrrml.data.prompts import PromptDataModule
    from lit_mrrml.data.sft import SFTDataModule
    from lit_mrrml.losses.gprc import GPRCLoss
    from lit_mrrml.losses.grpo import GRPOLoss
    from lit_mrrml.matrix.model import RubricMatrix
    from lit_mrrml.models.backbone import BackboneSpec
    from lit_mrrml.models.lora import LoraSpec
    from lit_mrrml.modules.grpo import GRPOPolicy
    from lit_mrrml.modules.reward import RewardModel
    from lit_mrrml.modules.sft import SFTPolicy
