"""Losses: GPRC, GRPO and the pure functions behind them.

The names import lazily (lit_mrrml.lazy): importing the package imports none of its modules.
"""

from typing import TYPE_CHECKING

from lit_mrrml.lazy import lazy_exports

_EXPORTS = {
    "GPRCLoss": "lit_mrrml.losses.gprc",
    "GPRCOutput": "lit_mrrml.losses.gprc",
    "GRPOLoss": "lit_mrrml.losses.grpo",
    "GRPOLossOutput": "lit_mrrml.losses.grpo",
    "group_advantages": "lit_mrrml.losses.grpo",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["GPRCLoss", "GPRCOutput", "GRPOLoss", "GRPOLossOutput", "group_advantages"]

if TYPE_CHECKING:
    from lit_mrrml.losses.gprc import GPRCLoss, GPRCOutput
    from lit_mrrml.losses.grpo import GRPOLoss, GRPOLossOutput, group_advantages
