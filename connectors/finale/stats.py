"""Counters the pipeline can log after a run (requests, retries, waits, bytes)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields


@dataclass
class ClientStats:
    """What one ``FinaleClient`` did. Thread-safe increments via ``add``.

    Attributes:
        requests: HTTP requests sent (including logins and retries).
        retries: attempts repeated after a transient failure.
        relogins: sessions renewed after an expiry.
        rate_limit_waits: requests that waited for the client-side rate limiter.
        rate_limit_wait_seconds: total time spent in those waits.
        server_pauses: times the server said to pause (429 or remaining = 0).
        retry_wait_seconds: total backoff time between attempts.
        window_splits: incremental windows split because a response came back full.
        bytes_sent: request body bytes.
        bytes_received: response body bytes.
    """

    requests: int = 0
    retries: int = 0
    relogins: int = 0
    rate_limit_waits: int = 0
    rate_limit_wait_seconds: float = 0.0
    server_pauses: int = 0
    retry_wait_seconds: float = 0.0
    window_splits: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **increments: float) -> None:
        """Add to one or more counters, e.g. ``stats.add(requests=1, bytes_received=512)``."""
        with self._lock:
            for name, value in increments.items():
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, float]:
        """All counters, for a log line or a run record."""
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}
