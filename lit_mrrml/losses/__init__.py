"""Losses: GPRC, GRPO and the pure functions behind them."""

from lit_mrrml.losses.gprc import GPRCLoss, GPRCOutput
from lit_mrrml.losses.grpo import GRPOLoss, GRPOLossOutput, group_advantages

__all__ = ["GPRCLoss", "GPRCOutput", "GRPOLoss", "GRPOLossOutput", "group_advantages"]
