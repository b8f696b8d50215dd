"""Backoff: exponential ceilings, full jitter, Retry-After, bounds."""

from __future__ import annotations

import random

import pytest

from lit_mrrml.backends.retry import RetryPolicy, backoff_delay, parse_retry_after


def test_delays_stay_under_a_doubling_ceiling_capped_at_max_delay():
    policy = RetryPolicy(max_attempts=8, base_delay=0.5, max_delay=3.0)
    rng = random.Random(0)
    for retry, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (7, 3.0)]:
        delays = [backoff_delay(policy, retry, rng) for _ in range(200)]
        assert min(delays) >= 0.0 and max(delays) <= ceiling
        assert max(delays) > 0.8 * ceiling  # jitter spreads over the whole range


def test_jitter_is_seeded():
    policy = RetryPolicy()
    a = [backoff_delay(policy, 3, random.Random(5)) for _ in range(3)]
    b = [backoff_delay(policy, 3, random.Random(5)) for _ in range(3)]
    assert a == b


def test_retry_after_raises_the_wait_but_not_past_max_delay():
    policy = RetryPolicy(base_delay=0.0, max_delay=10.0)
    assert backoff_delay(policy, 1, random.Random(0), retry_after=2.5) == 2.5
    assert backoff_delay(policy, 1, random.Random(0), retry_after=60.0) == 10.0


def test_retry_after_header_values():
    assert parse_retry_after("3") == 3.0 and parse_retry_after("0.25") == 0.25
    assert parse_retry_after(None) is None and parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT") is None
    assert parse_retry_after("-1") is None


def test_bad_policies_are_refused():
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(base_delay=-1)
