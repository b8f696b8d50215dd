"""lit_mrrml: multi-dimensional rubric-oriented reward models with GPRC, on PyTorch Lightning."""

from lit_mrrml.data import RubricDataModule
from lit_mrrml.losses import GPRCLoss
from lit_mrrml.matrix import RubricMatrix
from lit_mrrml.models import BackboneSpec, LoraSpec
from lit_mrrml.modules import RewardModel

__version__ = "0.1.0"
__all__ = ["BackboneSpec", "GPRCLoss", "LoraSpec", "RewardModel", "RubricDataModule", "RubricMatrix", "__version__"]
