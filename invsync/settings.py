"""One typed settings object, loaded once at the edge (CLI, flow entry points).

Nothing below the edge reads ``os.environ``: connectors, loaders and tasks are handed the
pieces of these settings they need. Secret fields are ``SecretStr`` so they never print.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal
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
    from connectors.supabase.settings import SupabaseSettings

DEFAULT_WAREHOUSE_URL = "sqlite:///./data/warehouse.db"
#: Where the analytics dataset goes: a local folder, or any pyarrow/fsspec filesystem URL.
DEFAULT_ANALYTICS_URL = "./data/analytics"
#: Where the sync-health HTML reports go (``invsync report``, the daily report).
DEFAULT_REPORTS_DIR = "./data/reports"


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

    # The app's Supabase database (PostgreSQL), issue 11: purchase-order requests written back
    # to Finale, and the direct path of reading app tables. Secret-typed: the URL usually
    # holds the database password.
    supabase_db_url: SecretStr | None = None
    # The REST path of reading app tables: project URL and service_role key.
    supabase_url: str | None = None
    supabase_service_role_key: SecretStr | None = None
    supabase_page_size: int = Field(default=1000, gt=0, le=100_000)
    supabase_timeout_seconds: float = Field(default=60.0, gt=0)
    supabase_max_retries: int = Field(default=6, ge=0)

    # Pipeline behaviour.
    sync_window_days: int = Field(default=30, ge=1, le=30)
    sync_overlap_minutes: int = Field(default=5, ge=0)
    sync_chunk_size: int = Field(default=20_000, gt=0)
    sync_parallel_chunks: int = Field(default=1, ge=1, le=16)
    quarantine_fail_ratio: float = Field(default=0.05, ge=0, le=1)
    quarantine_fail_min_records: int = Field(default=3, ge=1)

    # Data quality and the analytics hand-off (issue 12).
    dq_config: Path | None = None
    analytics_url: str = DEFAULT_ANALYTICS_URL
    # The sync-health HTML reports: a local folder (a report is a file a person opens).
    reports_dir: Path = Path(DEFAULT_REPORTS_DIR)

    # Outbound events (issue 13): who receives them (``events.subscribers``); None = the
    # project's config/events.toml, or no subscribers when there is none.
    event_subscribers_file: Path | None = None

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

    @field_validator("analytics_url")
    @classmethod
    def _analytics_location(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty; use a folder or a URL such as s3://bucket/path")
        return value.strip()

    @field_validator("supabase_url")
    @classmethod
    def _supabase_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL; use https://<ref>.supabase.co")
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

    def app_db_url(self) -> str:
        """The app database URL (``SUPABASE_DB_URL``), normalised for psycopg 3.

        Keep the value out of logs and messages: it usually carries a password.

        Raises:
            ConfigError: naming SUPABASE_DB_URL when it is missing or not PostgreSQL.
        """
        from sqlalchemy.exc import ArgumentError

        from warehouse.db import normalize_url

        hint = (
            "set it to the app's PostgreSQL URL, e.g. "
            "postgresql://postgres:PASSWORD@db.PROJECT.supabase.co:5432/postgres "
            "(Supabase > Project Settings > Database > Connection string)"
        )
        if self.supabase_db_url is None or not self.supabase_db_url.get_secret_value():
            raise ConfigError(f"SUPABASE_DB_URL is not set: {hint}")
        try:
            url = normalize_url(self.supabase_db_url.get_secret_value())
        except ArgumentError:
            raise ConfigError(f"SUPABASE_DB_URL is not a database URL: {hint}") from None
        if url.get_backend_name() != "postgresql":
            raise ConfigError(
                f"SUPABASE_DB_URL must be a PostgreSQL URL, not {url.get_backend_name()!r}: {hint}"
            )
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

    def supabase(self, path: Literal["postgres", "rest"] | None = None) -> SupabaseSettings:
        """Validate and return the Supabase connection settings.

        Args:
            path: the reading path that must be configured: "postgres" needs
                SUPABASE_DB_URL, "rest" needs SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY;
                None needs one of the two complete.

        Raises:
            ConfigError: naming the variable that is missing.
        """
        from connectors.supabase.settings import SupabaseSettings

        has_db = bool(self.supabase_db_url and self.supabase_db_url.get_secret_value())
        has_url = bool(self.supabase_url)
        has_key = bool(
            self.supabase_service_role_key and self.supabase_service_role_key.get_secret_value()
        )
        rest_missing = [
            name
            for name, present in (
                ("SUPABASE_URL", has_url),
                ("SUPABASE_SERVICE_ROLE_KEY", has_key),
            )
            if not present
        ]
        if path == "postgres" and not has_db:
            raise ConfigError(
                "SUPABASE_DB_URL is not set: set it to the database's connection string "
                "(Supabase: Project Settings > Database; the direct or session-mode URL)"
            )
        if path == "rest" and rest_missing:
            raise ConfigError(
                f"{' and '.join(rest_missing)} not set: the REST path needs SUPABASE_URL (the "
                "project URL, https://<ref>.supabase.co) and SUPABASE_SERVICE_ROLE_KEY "
                "(Project Settings > API)"
            )
        if path is None and not has_db and rest_missing:
            if len(rest_missing) == 1:
                raise ConfigError(
                    f"{rest_missing[0]} is not set: the REST path needs SUPABASE_URL and "
                    "SUPABASE_SERVICE_ROLE_KEY (or set SUPABASE_DB_URL to read directly)"
                )
            raise ConfigError(
                "Supabase is not configured: set SUPABASE_DB_URL (direct PostgreSQL), or "
                "SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY (REST API)"
            )
        # Validated and normalised the one way the project reads SUPABASE_DB_URL.
        db_url = SecretStr(self.app_db_url()) if has_db else None
        return SupabaseSettings(
            db_url=db_url,
            url=self.supabase_url,
            service_role_key=self.supabase_service_role_key if has_key else None,
            page_size=self.supabase_page_size,
            timeout_seconds=self.supabase_timeout_seconds,
            max_retries=self.supabase_max_retries,
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
