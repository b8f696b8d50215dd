"""Reward server fixtures: the tiny exported reward model of the policy tests, served."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.policy.conftest import tiny_reward_export  # noqa: F401 (a fixture, shared)


@pytest.fixture(scope="session")
def served_export(tiny_reward_export: Path) -> Path:  # noqa: F811
    """A tiny random reward model (frozen backbone, perturbed head) on the shipped matrix, exported
    with its backbone."""
    return tiny_reward_export
