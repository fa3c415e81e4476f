"""Retry of transient failures, shared by every HTTP client in the project.

One mechanism for the Finale connector and the alert channels: exponential backoff with full
jitter on a bounded budget, a server's ``Retry-After`` honoured exactly, and the one parser
of that header. Only ``TransientError`` is retried; anything else propagates at once. The
budget is both a number of retries and a total of seconds spent sleeping, so a stubborn
outage ends in an error the caller (a Prefect task retry, a person) can act on instead of a
client that sleeps for hours.

No Prefect and nothing of the connectors' own here, so anything may import it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header into seconds to wait.

    Args:
        value: the header: delay seconds (``"120"``, ``"1.5"``) or an HTTP date.
        now: the current time in epoch seconds; an HTTP date is only understood with it.

    Returns:
        Seconds to wait (never negative), or None for a missing or unreadable header.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    if now is None:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


class TransientError(Exception):
    """A failure that another attempt may cure: what ``Retrier`` retries.

    Attributes:
        message: what went wrong; the retrier appends why it stopped retrying.
        retry_after: seconds the server asked us to wait (``Retry-After``), if it said.
        maybe_processed: False when the request certainly did not take effect (connection
            refused, 429), so even a non-idempotent write may be repeated.
        attempts: how many attempts were made before giving up.
        unreachable: True when the server could not be reached at all; such failures are
            retried only for ``RetryPolicy.max_unreachable_seconds``.
    """

    unreachable = False

    def __init__(
        self, message: str, *, retry_after: float | None = None, maybe_processed: bool = True
    ) -> None:
        """Build the error; see the class attributes."""
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.maybe_processed = maybe_processed
        self.attempts = 1

    def __str__(self) -> str:
        return self.message


@dataclass
class RetryPolicy:
    """When and how long to wait before the next attempt.

    Attributes:
        max_retries: retries after the first attempt (0 = never retry).
        base_delay: backoff scale: attempt n waits up to ``base_delay * 2**n`` seconds.
        max_delay: cap for one backoff delay.
        max_total_wait: cap for the sum of all waits of one request; a ``Retry-After``
            beyond it ends the retries at once (waiting less would only earn another 429).
        max_unreachable_seconds: how long (attempts included) to keep retrying while the
            server cannot be reached at all: a wrong base URL or a dead network should fail
            within seconds, not after the whole budget.
        rng: source of jitter (seed it in tests).
    """

    max_retries: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_total_wait: float = 300.0
    max_unreachable_seconds: float = 12.0
    rng: random.Random = field(default_factory=random.Random)

    def backoff(self, retry_number: int) -> float:
        """Full-jitter delay before retry ``retry_number`` (0-based): uniform in [0, cap]."""
        ceiling = min(self.max_delay, self.base_delay * (2**retry_number))
        return self.rng.uniform(0.0, ceiling)

    def delay(
        self, retry_number: int, error: TransientError, waited: float, elapsed: float = 0.0
    ) -> float | None:
        """Seconds to wait before retry ``retry_number``, or None when the budget is spent.

        A server-sent ``Retry-After`` is honoured exactly (it knows when its bucket refills);
        otherwise the delay is full-jitter backoff. ``elapsed``: seconds since the first
        attempt, which bounds the retries of an unreachable server.
        """
        if retry_number >= self.max_retries:
            return None
        delay = error.retry_after if error.retry_after is not None else self.backoff(retry_number)
        if waited + delay > self.max_total_wait:
            return None
        if error.unreachable and elapsed + delay > self.max_unreachable_seconds:
            return None
        return delay


class Retrier:
    """Runs an operation under a ``RetryPolicy``, sleeping between attempts.

    Args:
        policy: the budget and backoff.
        sleep: blocking sleep (injectable for tests).
        on_retry: called with (error, delay) before each sleep, e.g. to count retries.
        clock: monotonic seconds (injectable for tests), for the unreachable budget.
        system: who is called, for messages ("Finale", "slack").
        logger: where each retry is logged (the caller's logger, so its level applies).
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[TransientError, float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        system: str = "the server",
        logger: logging.Logger = log,
    ) -> None:
        """Bind the policy to a sleep function."""
        self.policy = policy
        self._sleep = sleep
        self._on_retry = on_retry
        self._clock = clock
        self._system = system
        self._log = logger

    def run(self, operation: Callable[[], T], *, idempotent: bool = True) -> T:
        """Call ``operation`` until it succeeds, raises a non-transient error, or the budget ends.

        Args:
            operation: one attempt; raises ``TransientError`` for transient failures.
            idempotent: False for writes that must not be applied twice (a create without a
                client-chosen id). Those are only repeated when the failed attempt certainly
                did not reach the server (``maybe_processed`` is False).

        Raises:
            TransientError: the last transient error once the budget is spent; its
                ``attempts`` says how many were made.
            Exception: anything else the operation raises, at once, never retried.
        """
        waited = 0.0
        retry_number = 0
        started = self._clock()
        while True:
            try:
                return operation()
            except TransientError as error:
                error.attempts = retry_number + 1
                if not idempotent and error.maybe_processed:
                    error.message += (
                        "; not retried automatically because the write may already have been "
                        f"applied: check {self._system} before repeating it"
                    )
                    raise
                elapsed = max(self._clock() - started, waited)  # a fake sleep moves no clock
                delay = self.policy.delay(retry_number, error, waited, elapsed)
                if delay is None:
                    if error.retry_after is not None and retry_number < self.policy.max_retries:
                        error.message += (
                            f"; the server asked to wait {error.retry_after:g}s, more than the "
                            f"remaining retry budget of {self.policy.max_total_wait - waited:g}s"
                        )
                    raise
                self._log.warning(
                    "%s request failed (%s); retry %d of %d in %.2fs",
                    self._system,
                    error.message,
                    retry_number + 1,
                    self.policy.max_retries,
                    delay,
                )
                if self._on_retry is not None:
                    self._on_retry(error, delay)
                self._sleep(delay)
                waited += delay
                retry_number += 1
