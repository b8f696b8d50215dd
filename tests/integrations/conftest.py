"""Integration fixtures: the policy tests' tiny exported reward model, shared."""

from tests.policy.conftest import tiny_reward_export  # noqa: F401
