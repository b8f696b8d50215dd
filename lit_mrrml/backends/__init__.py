"""LLM backends shared by data generation, HealthBench grading and the policy."""

from lit_mrrml.backends.base import (
    BackendError,
    ChatBackend,
    ChatReply,
    ChatRequest,
    ReplyFormatError,
    Usage,
)
from lit_mrrml.backends.cache import CachedBackend
from lit_mrrml.backends.hf_local import HFLocalBackend
from lit_mrrml.backends.openai import OpenAIChatBackend
from lit_mrrml.backends.retry import RetryPolicy

__all__ = [
    "BackendError",
    "CachedBackend",
    "ChatBackend",
    "ChatReply",
    "ChatRequest",
    "HFLocalBackend",
    "OpenAIChatBackend",
    "ReplyFormatError",
    "RetryPolicy",
    "Usage",
]
