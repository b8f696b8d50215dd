"""Bounded retries with exponential backoff and full jitter.

The n-th retry waits a uniform random time in [0, min(max_delay, base_delay * 2**(n-1))] ("full
jitter": clients that failed together do not retry together). A server's ``Retry-After`` raises
the wait to at least that many seconds, still capped at ``max_delay``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is retried.

    Args:
        max_attempts: Attempts per request in all, the first included (1: never retry).
        base_delay: Seconds of the first backoff ceiling; it doubles with every retry.
        max_delay: Longest wait between two attempts, in seconds.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("base_delay and max_delay must not be negative")


def backoff_delay(policy: RetryPolicy, retry: int, rng: random.Random, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
    ceiling = min(policy.max_delay, policy.base_delay * 2 ** (retry - 1))
    delay = rng.uniform(0.0, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.max_delay))
    return delay


def parse_retry_after(value: str | None) -> float | None:
    """The seconds of a ``Retry-After`` header given in seconds; None for dates or nonsense."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
