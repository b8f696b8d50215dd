"""lit_mrrml: multi-dimensional rubric-oriented reward models with GPRC, and the policies trained
against them (SFT, then GRPO/GDPO), on PyTorch Lightning."""

from lit_mrrml.data import PromptDataModule, RubricDataModule, SFTDataModule
from lit_mrrml.losses import GPRCLoss, GRPOLoss
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.models import BackboneSpec, LoraSpec
from lit_mrrml.modules import GRPOPolicy, RewardModel, SFTPolicy

__version__ = "0.1.0"
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
