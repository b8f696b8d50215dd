"""LightningModules: the reward model, and the policy's SFT and GRPO stages.

The names import lazily (lit_mrrml.lazy): importing the package imports none of its modules.
"""

from typing import TYPE_CHECKING

from lit_mrrml.lazy import lazy_exports

_EXPORTS = {
    "GRPOPolicy": "lit_mrrml.modules.grpo",
    "RewardModel": "lit_mrrml.modules.reward",
    "SFTPolicy": "lit_mrrml.modules.sft",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["GRPOPolicy", "RewardModel", "SFTPolicy"]

if TYPE_CHECKING:
    from lit_mrrml.modules.grpo import GRPOPolicy
    from lit_mrrml.modules.reward import RewardModel
    from lit_mrrml.modules.sft import SFTPolicy
