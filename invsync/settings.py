"""One typed settings object, loaded once at the edge (CLI, flow entry points).

Nothing below the edge reads ``os.environ``: connectors, loaders and tasks are handed the
pieces of these settings they need. Secret fields are ``SecretStr`` so they never print.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    # Imported where used: importing ``connectors.finale`` loads the whole connector
    # (pandas included), which the CLI must not pay for at start-up.
    from connectors.finale.settings import FinaleSettings

DEFAULT_WAREHOUSE_URL = "sqlite:///./data/warehouse.db"


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the environment variable."""


class Settings(BaseSettings):
    """All settings of inventory-sync, from the environment or a ``.env`` file.

    Field names map to upper-case environment variables (``finale_account`` ->
    ``FINALE_ACCOUNT``). See ``.env.example`` for every variable with a comment.
    """

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    finale_base_url: str = "https://app.finaleinventory.com"
    finale_account: str | None = None
    finale_api_key: str | None = None
    finale_api_secret: SecretStr | None = None
    finale_username: str | None = None
    finale_password: SecretStr | None = None
    finale_rate_limit_per_minute: float = Field(default=120.0, gt=0)
    finale_timezone: str = "UTC"
    finale_timeout_seconds: float = Field(default=60.0, gt=0)
    finale_max_retries: int = Field(default=6, ge=0)
    finale_max_entities_per_response: int = Field(default=120_000, gt=0)

    warehouse_url: str = DEFAULT_WAREHOUSE_URL
    # PostgreSQL only (SQLite ignores them); see the README's "Supabase" section.
    warehouse_schema: str = "inventory"
    warehouse_api_schema: str = "api"
    warehouse_api_role: str = "inventory_reader"

    # Pipeline behaviour.
    sync_window_days: int = Field(default=30, ge=1, le=30)
    sync_overlap_minutes: int = Field(default=5, ge=0)
    sync_chunk_size: int = Field(default=20_000, gt=0)
    sync_parallel_chunks: int = Field(default=1, ge=1, le=16)
    quarantine_fail_ratio: float = Field(default=0.05, ge=0, le=1)
    quarantine_fail_min_records: int = Field(default=3, ge=1)

    # Notifications (issue 4).
    sendgrid_api_key: SecretStr | None = None
    sendgrid_base_url: str = "https://api.sendgrid.com"
    alert_email_from: str | None = None
    alert_email_to: str | None = None
    slack_webhook_url: SecretStr | None = None
    alert_prefect_block: str | None = None

    # Operations (issue 4).
    lock_wait_seconds: float = Field(default=0.0, ge=0)
    stale_run_minutes: int = Field(default=120, gt=0)
    finale_shared_rate_limit: str = "finale-api"

    @field_validator("finale_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as 'America/Chicago'"
            ) from exc
        return value

    @field_validator("finale_base_url", "sendgrid_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")

    @field_validator("warehouse_url")
    @classmethod
    def _sqlalchemy_url(cls, value: str) -> str:
        from sqlalchemy.exc import ArgumentError

        from warehouse.db import normalize_url, transaction_pooler_problem

        examples = (
            "use e.g. postgresql://user:password@host:5432/db (postgres:// and "
            "postgresql+psycopg:// work too) or sqlite:///./data/warehouse.db"
        )
        try:
            url = normalize_url(value)  # postgres:// and postgresql:// -> psycopg 3
        except ArgumentError as exc:
            raise ValueError(f"{value!r} is not a database URL; {examples}") from exc
        if url.get_backend_name() not in ("postgresql", "sqlite"):
            raise ValueError(f"{url.get_backend_name()!r} warehouses are not supported; {examples}")
        problem = transaction_pooler_problem(url)
        if problem is not None:
            raise ValueError(problem)
        return url.render_as_string(hide_password=False)

    @field_validator("warehouse_schema", "warehouse_api_schema", "warehouse_api_role")
    @classmethod
    def _plain_name(cls, value: str, info: ValidationInfo) -> str:
        from warehouse.db import check_identifier

        return check_identifier(value, (info.field_name or "").upper())

    @model_validator(mode="after")
    def _api_apart_from_warehouse(self) -> Settings:
        if self.warehouse_api_schema == self.warehouse_schema:
            raise ValueError(
                f"WAREHOUSE_API_SCHEMA and WAREHOUSE_SCHEMA are both {self.warehouse_schema!r}; "
                "the views the app reads must be in a schema of their own (default 'api'), "
                "or the REST API would expose the warehouse's tables"
            )
        return self

    def finale(self) -> FinaleSettings:
        """Validate and return the Finale connection settings.

        Raises:
            ConfigError: naming the variable that is missing.
        """
        from connectors.finale.settings import FinaleSettings

        if not self.finale_account:
            raise ConfigError(
                "FINALE_ACCOUNT is not set: set it to your account's path component "
                "(the 'acme' in https://app.finaleinventory.com/acme/)"
            )
        has_key = bool(self.finale_api_key and self.finale_api_secret)
        has_login = bool(self.finale_username and self.finale_password)
        if not (has_key or has_login):
            raise ConfigError(
                "no Finale credentials: set FINALE_API_KEY and FINALE_API_SECRET (preferred), "
                "or FINALE_USERNAME and FINALE_PASSWORD"
            )
        return FinaleSettings(
            base_url=self.finale_base_url,
            account=self.finale_account,
            api_key=self.finale_api_key,
            api_secret=self.finale_api_secret,
            username=self.finale_username,
            password=self.finale_password,
            rate_limit_per_minute=self.finale_rate_limit_per_minute,
            timezone=self.finale_timezone,
            timeout_seconds=self.finale_timeout_seconds,
            max_retries=self.finale_max_retries,
            max_entities_per_response=self.finale_max_entities_per_response,
        )


def load_settings(**overrides: object) -> Settings:
    """Load settings from the environment and ``.env``, with explicit overrides on top.

    Raises:
        ConfigError: with one line per bad variable, each naming the variable.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = str(err["loc"][0]).upper() if err["loc"] else "settings"
            lines.append(f"{name}: {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None
