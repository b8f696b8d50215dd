"""Is the service there at all? Attempts in a row that got no response, over all requests.

One request's retries cannot tell a flaky service from a missing one; thousands of requests that
each retry to their last attempt against a dead address take many minutes to fail. So a backend
counts the attempts in a row that got no HTTP response at all (connection refused or reset, DNS,
timeouts), over all its requests: the first is reported once, with the URL, and at the limit the
whole run stops with one error. Any HTTP response, whatever its status, resets the count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NoReturn

from lit_mrrml.backends.base import BackendError

log = logging.getLogger(__name__)


class FailureStreak:
    """Counts consecutive attempts without a response; ``stopped`` holds the error once at ``limit``."""

    def __init__(self, url: str, limit: int | None, max_attempts: int, on_stop: Callable[[], None]) -> None:
        """
        Args:
            url: The endpoint, for the messages.
            limit: Attempts in a row without a response that stop the run (None: never).
            max_attempts: Attempts per request, for the warning when there is no limit.
            on_stop: Called once at the limit, before the error is raised (to cancel the other requests).
        """
        if limit is not None and limit < 1:
            raise ValueError(f"max_connection_failures must be at least 1 (or null: never stop), got {limit}")
        self.url, self.limit, self.max_attempts, self.on_stop = url, limit, max_attempts, on_stop
        self.reset()

    def reset(self) -> None:
        """Forget the streak (a new session may find the service up again)."""
        self.count = 0
        self.first = ""  # the first error of the streak, for the final message
        self.warned = False  # the first failure is logged once, not once per request
        self.stopped: BackendError | None = None

    def answered(self) -> None:
        """An HTTP response came: the service is there."""
        self.count = 0

    def check(self) -> None:
        """Raise the stop's error if the run was stopped (before an attempt, or when cancelled)."""
        if self.stopped is not None:
            raise self.stopped

    def failed(self, error: str) -> None:
        """Count one attempt without a response; raises BackendError at the limit."""
        self.check()
        self.count += 1
        if self.count == 1:
            self.first = error
        if not self.warned:
            self.warned = True
            then = (
                f"the run stops after {self.limit} consecutive failures"
                if self.limit is not None
                else f"each request gives up after {self.max_attempts} attempt(s)"
            )
            log.warning("cannot reach %s: %s; retrying, %s", self.url, error, then)
        if self.limit is not None and self.count >= self.limit:
            self._stop(self.limit)

    def _stop(self, limit: int) -> NoReturn:
        self.stopped = BackendError(
            f"cannot reach {self.url}: {limit} attempts in a row got no response (max_connection_failures; "
            f"the first: {self.first}); finished work is saved: rerun the same command once the service answers"
        )
        self.on_stop()
        raise self.stopped
