"""Use lit_mrrml from Hugging Face TRL.

- ``reward_funcs(directory)``: one reward function per dimension of an exported reward model,
  for ``trl.GRPOTrainer(reward_funcs=...)`` (logged as ``rewards/<dimension>/mean``; GDPO with
  ``GRPOConfig(multi_objective_aggregation="normalize_then_sum")``), and
  ``total_reward_func(directory)``, the scenario-weighted total. They need only lit_mrrml.
- ``GPRCRewardTrainer``: ``trl.RewardTrainer`` with the GPRC loss on a multi-output score head.
  Needs TRL (``pip install lit_mrrml[trl]``); importing this module does not import it.

Example::

    from trl import GRPOConfig, GRPOTrainer
    from lit_mrrml.integrations.trl import reward_funcs

    trainer = GRPOTrainer(model="Qwen/Qwen2.5-0.5B-Instruct", reward_funcs=reward_funcs("exports/rm"),
                          args=GRPOConfig(multi_objective_aggregation="normalize_then_sum"),
                          train_dataset=prompts)  # a "prompt" column (chat messages), optional "scenario"
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lit_mrrml.integrations.trl_rewards import (
    DimensionReward,
    SharedScorer,
    TotalReward,
    reward_funcs,
    total_reward_func,
)

__all__ = [
    "DataCollatorForDimensionPreference",
    "DimensionReward",
    "GPRCRewardTrainer",
    "SharedScorer",
    "TotalReward",
    "reward_funcs",
    "total_reward_func",
]

_NEEDS_TRL = ("GPRCRewardTrainer", "DataCollatorForDimensionPreference")

if TYPE_CHECKING:
    from lit_mrrml.integrations.trl_trainer import DataCollatorForDimensionPreference, GPRCRewardTrainer


def __getattr__(name: str) -> Any:
    """``GPRCRewardTrainer`` and its collator, imported (with TRL) on first access."""
    if name not in _NEEDS_TRL:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        import trl  # noqa: F401
    except ImportError as err:
        raise ImportError(f"lit_mrrml.integrations.trl.{name} needs TRL: pip install 'lit_mrrml[trl]'") from err
    from lit_mrrml.integrations import trl_trainer

    value = getattr(trl_trainer, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
