"""LightningModules: the reward model, and the policy's SFT and GRPO stages."""

from lit_mrrml.modules.grpo import GRPOPolicy
from lit_mrrml.modules.reward import RewardModel
from lit_mrrml.modules.sft import SFTPolicy

__all__ = ["GRPOPolicy", "RewardModel", "SFTPolicy"]
