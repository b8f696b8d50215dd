"""Test doubles that speak real protocols: a chat-completions server on loopback with rule-based
replies and injectable faults, for tests, benchmarks and offline dry runs of configs."""

from lit_mrrml.testing.chat_server import ChatServer, FaultPlan
from lit_mrrml.testing.judge_rules import RubricJudgeRules
from lit_mrrml.testing.rules import GenerationRules

__all__ = ["ChatServer", "FaultPlan", "GenerationRules", "RubricJudgeRules"]
