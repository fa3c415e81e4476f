"""Token buckets per credential, one for GETs and one for POSTs, as Finale integrators report.

A bucket holds ``per_minute`` tokens and refills at ``per_minute / 60`` tokens a second, so a
client may burst a full minute's quota and then settles at the steady rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    """Outcome of one request against its bucket, and the headers that describe it."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        """``X-RateLimit-*`` headers, plus ``Retry-After`` (integer >= 1) when refused."""
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, self.reset_seconds))
        return headers


class RateLimiter:
    """Token buckets keyed by (credential, "GET" | "POST").

    Args:
        per_minute: bucket size and refill per minute; 0 disables limiting.
        clock: monotonic clock in seconds (injectable for tests).
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    @property
    def enabled(self) -> bool:
        """False when the limit is 0 (off)."""
        return self.per_minute > 0

    def check(self, credential: str, method: str) -> Decision | None:
        """Take a token for one request; ``None`` when limiting is off."""
        if not self.enabled:
            return None
        kind = "GET" if method in ("GET", "HEAD") else "POST"
        now = self._clock()
        rate = self.per_minute / 60.0
        tokens, updated = self._buckets.get((credential, kind), (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - updated) * rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[(credential, kind)] = (tokens, now)
        reset = 0 if tokens >= 1.0 else math.ceil((1.0 - tokens) / rate)
        return Decision(allowed, self.per_minute, int(tokens), reset)
