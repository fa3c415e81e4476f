"""Client-side throttling: a token bucket per HTTP method, plus the server's own feedback.

Finale limits each credential to about 120 GETs and 120 POSTs per minute and answers 429
on overrun. Throttling ourselves is cheaper than being told off, and one limiter shared by
all threads (and by all clients of one process, if handed the same ``RateLimiter``) keeps
concurrent syncs from pushing each other into 429s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from connectors.retry import parse_retry_after

Clock = Callable[[], float]
Sleep = Callable[[float], None]

# A reset value this large is an epoch timestamp, not a delay (some APIs send either).
_EPOCH_THRESHOLD = 1_000_000_000.0

#: Own throttling waits at least this long are logged (shorter ones are the normal pace).
LOGGED_WAIT_SECONDS = 1.0

log = logging.getLogger(__name__)


class TokenBucket:
    """A thread-safe token bucket that reserves a slot for each caller, then sleeps.

    Implemented as a generic cell rate algorithm: ``_tat`` is the time at which the bucket
    would be full again. A caller reserves its slot under the lock and sleeps outside it, so
    concurrent callers queue up one interval apart instead of waking together.

    Args:
        rate_per_minute: sustained requests per minute.
        capacity: burst size. The default 1 spaces requests evenly, which never exceeds a
            server bucket of the same rate, whatever that bucket's own burst size.
        clock: monotonic seconds (injectable for tests).
        sleep: blocking sleep (injectable for tests).
        max_pause: upper bound for one server-requested pause, so a misread header cannot
            stall the client for hours.
    """

    def __init__(
        self,
        rate_per_minute: float,
        *,
        capacity: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        max_pause: float = 3600.0,
    ) -> None:
        """Create a bucket that starts full."""
        if rate_per_minute <= 0:
            raise ValueError("rate_per_minute must be positive")
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.interval = 60.0 / rate_per_minute
        self.capacity = capacity
        self._clock = clock
        self._sleep = sleep
        self._max_pause = max_pause
        self._lock = threading.Lock()
        self._tat = clock()

    def acquire(self) -> float:
        """Take one token, sleeping until it is available.

        Returns:
            The seconds this call waited (0.0 when a token was ready).
        """
        with self._lock:
            now = self._clock()
            tat = max(self._tat, now)
            start = max(tat - (self.capacity - 1) * self.interval, now)
            self._tat = tat + self.interval
        wait = start - now
        if wait > 0:
            self._sleep(wait)
            return wait
        return 0.0

    def pause(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` from now (the server said we are out of tokens).

        After the pause the bucket restarts empty, so requests resume one interval apart
        rather than in a burst that would earn another 429.
        """
        seconds = min(max(seconds, 0.0), self._max_pause)
        with self._lock:
            resume = self._clock() + seconds
            self._tat = max(self._tat, resume + (self.capacity - 1) * self.interval)


@dataclass
class RateLimiter:
    """One bucket for GETs and one for POSTs, fed by the server's rate-limit headers.

    Attributes:
        get: bucket for GET requests.
        post: bucket for POST requests (writes, GraphQL, login).
        wall_clock: epoch seconds, to read ``X-RateLimit-Reset``/``Retry-After`` given as
            absolute times.
    """

    get: TokenBucket
    post: TokenBucket
    wall_clock: Clock = time.time
    #: Called after the local bucket grants a token: a limit shared by every process that
    #: talks to the same account (the flows plug in a Prefect global concurrency limit).
    shared: Callable[[str], None] | None = None

    @classmethod
    def per_minute(
        cls,
        rate_per_minute: float,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        wall_clock: Clock = time.time,
        shared: Callable[[str], None] | None = None,
    ) -> RateLimiter:
        """Build a limiter with the same rate for GETs and POSTs (as Finale limits them)."""
        return cls(
            get=TokenBucket(rate_per_minute, clock=clock, sleep=sleep),
            post=TokenBucket(rate_per_minute, clock=clock, sleep=sleep),
            wall_clock=wall_clock,
            shared=shared,
        )

    def bucket(self, method: str) -> TokenBucket:
        """The bucket that ``method`` draws from."""
        return self.get if method.upper() in ("GET", "HEAD") else self.post

    def acquire(self, method: str) -> float:
        """Take a token for ``method`` (and from the shared limit); returns seconds waited."""
        waited = self.bucket(method).acquire()
        if self.shared is not None:
            started = time.monotonic()
            self.shared(method)
            waited += time.monotonic() - started
        if waited >= LOGGED_WAIT_SECONDS:
            log.info("rate limit: waited %.1fs for a %s request slot", waited, method.upper())
        return waited

    def observe(self, method: str, status: int, headers: Mapping[str, str]) -> float | None:
        """Learn from a response: pause the bucket when the server says it is empty.

        On 429 the bucket pauses for ``Retry-After``; on any response with
        ``X-RateLimit-Remaining: 0`` it pauses for ``X-RateLimit-Reset`` (seconds, or an epoch
        timestamp).

        Returns:
            The pause applied, in seconds, or None when the response asked for none.
        """
        pause: float | None = None
        if status == 429:
            pause = parse_retry_after(headers.get("retry-after"), now=self.wall_clock())
        remaining = _number(headers.get("x-ratelimit-remaining"))
        if remaining is not None and remaining <= 0:
            reset = _number(headers.get("x-ratelimit-reset"))
            if reset is not None:
                if reset >= _EPOCH_THRESHOLD:
                    reset -= self.wall_clock()
                pause = max(pause or 0.0, reset)
        if pause is not None and pause > 0:
            self.bucket(method).pause(pause)
            # Always said: a pause is the server telling us to slow down.
            log.warning(
                "rate limit: Finale answered %d with no requests left; pausing %s requests "
                "for %.1fs",
                status,
                method.upper(),
                pause,
            )
            return pause
        return None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None
