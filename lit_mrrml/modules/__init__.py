"""LightningModules."""

from lit_mrrml.modules.reward import RewardModel

__all__ = ["RewardModel"]
