"""``SandboxConfig``: every option of the Finale sandbox, with its default."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sandbox.data import DEFAULT_ANCHOR
from sandbox.faults import parse_fault_spec


@dataclass(frozen=True)
class SandboxConfig:
    """Options of one sandbox server. The credentials are fake and safe to print.

    Attributes:
        port: TCP port; 0 picks a free one (the handle reports the real one).
        host: interface to bind; keep the default loopback address.
        products: products in the generated account; other collections scale with it.
        seed: data seed; the same seed gives the same data.
        rate_limit_per_minute: GETs and POSTs per minute per credential; 0 turns limits off.
        faults: fault spec, e.g. ``"500:0.05,drop:0.01"`` (see ``sandbox.faults``).
        fault_seed: seed of the fault draws.
        fault_delay: seconds a ``timeout`` fault stays silent.
        account: the account path component (``/acme/api/...``).
        api_key: accepted HTTP Basic user name.
        api_secret: accepted HTTP Basic password.
        username: accepted session-login user name.
        password: accepted session-login password.
        max_entities: most rows in one collection response (120,000 on Finale).
        session_ttl_seconds: idle time after which a session expires.
        timezone: account time zone of the zone-less timestamps (the clock for writes).
        anchor: generated dates lie in the two years before this timestamp.
        cache_bytes: memory budget for cached response bodies.
        log_level: uvicorn log level.
    """

    port: int = 8700
    host: str = "127.0.0.1"
    products: int = 1000
    seed: int = 42
    rate_limit_per_minute: int = 120
    faults: str = ""
    fault_seed: int = 0
    fault_delay: float = 30.0
    account: str = "acme"
    api_key: str = "sandbox-key"
    api_secret: str = "sandbox-secret"
    username: str = "sandbox-user"
    password: str = "sandbox-pass"
    max_entities: int = 120_000
    session_ttl_seconds: float = 1800.0
    timezone: str = "UTC"
    anchor: str = DEFAULT_ANCHOR
    cache_bytes: int = 1 << 30
    log_level: str = "warning"

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not 0 <= self.port <= 65535:
            problems.append(f"port {self.port} is not in 0..65535")
        if self.products < 1:
            problems.append("products must be at least 1")
        if self.rate_limit_per_minute < 0:
            problems.append("rate_limit_per_minute must be >= 0 (0 = off)")
        if self.max_entities < 1:
            problems.append("max_entities must be at least 1")
        if self.fault_delay < 0 or self.session_ttl_seconds <= 0:
            problems.append("fault_delay must be >= 0 and session_ttl_seconds > 0")
        if not self.account or "/" in self.account:
            problems.append(f"account {self.account!r} must be one non-empty path component")
        try:
            parse_fault_spec(self.faults)
        except ValueError as exc:
            problems.append(str(exc))
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"unknown time zone {self.timezone!r}")
        try:
            datetime.fromisoformat(self.anchor)
        except ValueError:
            problems.append(f"anchor {self.anchor!r} is not YYYY-MM-DDTHH:MM:SS")
        if problems:
            raise ValueError("invalid sandbox config: " + "; ".join(problems))
