"""What the Finale connector needs to connect, already validated.

The connector owns its settings type; ``invsync.settings.Settings`` (the one typed object
loaded at the edge from the environment) builds a ``FinaleSettings`` with
``Settings.finale()``. Nothing here reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from pydantic import SecretStr


@dataclass(frozen=True)
class FinaleSettings:
    """What the Finale connector needs, already validated.

    Either ``api_key`` + ``api_secret`` (HTTP Basic) or ``username`` + ``password`` (session
    auth) is set. ``timezone`` is the account's zone for Finale's zone-less timestamps.
    """

    base_url: str
    account: str
    api_key: str | None = None
    api_secret: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    rate_limit_per_minute: float = 120.0
    timezone: str = "UTC"
    timeout_seconds: float = 60.0
    max_retries: int = 6
    max_entities_per_response: int = 120_000

    @property
    def uses_basic_auth(self) -> bool:
        """True when an API key pair is configured (preferred over session auth)."""
        return bool(self.api_key and self.api_secret)

    @property
    def tz(self) -> ZoneInfo:
        """The account time zone as a ``ZoneInfo``."""
        return ZoneInfo(self.timezone)

    @property
    def account_url(self) -> str:
        """``{base_url}/{account}``, the prefix of every API path."""
        return f"{self.base_url.rstrip('/')}/{self.account}"
