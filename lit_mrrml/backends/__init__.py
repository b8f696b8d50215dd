"""LLM backends shared by data generation, HealthBench grading and the policy.

The names import lazily (lit_mrrml.lazy): importing the package imports none of its modules.
"""

from typing import TYPE_CHECKING

from lit_mrrml.lazy import lazy_exports

_EXPORTS = {
    "BackendError": "lit_mrrml.backends.base",
    "CachedBackend": "lit_mrrml.backends.cache",
    "ChatBackend": "lit_mrrml.backends.base",
    "ChatReply": "lit_mrrml.backends.base",
    "ChatRequest": "lit_mrrml.backends.base",
    "HFLocalBackend": "lit_mrrml.backends.hf_local",
    "OpenAIChatBackend": "lit_mrrml.backends.openai",
    "ReplyFormatError": "lit_mrrml.backends.base",
    "RetryPolicy": "lit_mrrml.backends.retry",
    "Usage": "lit_mrrml.backends.base",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
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

if TYPE_CHECKING:
    from lit_mrrml.backends.base import BackendError, ChatBackend, ChatReply, ChatRequest, ReplyFormatError, Usage
    from lit_mrrml.backends.cache import CachedBackend
    from lit_mrrml.backends.hf_local import HFLocalBackend
    from lit_mrrml.backends.openai import OpenAIChatBackend
    from lit_mrrml.backends.retry import RetryPolicy
