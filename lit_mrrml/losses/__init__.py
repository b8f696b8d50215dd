"""Losses: GPRC and the pure functions behind it."""

from lit_mrrml.losses.gprc import GPRCLoss, GPRCOutput

__all__ = ["GPRCLoss", "GPRCOutput"]
