"""What the Supabase connector needs to connect, already validated.

The connector owns its settings type; ``invsync.settings.Settings`` (the one typed object
loaded at the edge from the environment) builds a ``SupabaseSettings`` with
``Settings.supabase()``. Nothing here reads the environment.

Two paths read the same tables: direct PostgreSQL (``db_url``, ``SUPABASE_DB_URL``) and
Supabase's REST API (``url`` + ``service_role_key``, ``SUPABASE_URL`` and
``SUPABASE_SERVICE_ROLE_KEY``). Either may be configured, or both.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from connectors.redact import mask_url
from connectors.supabase.errors import MissingSettingError

#: The REST API's path under a Supabase project URL (``https://<ref>.supabase.co``).
REST_PATH = "/rest/v1"

_DB_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


class SupabaseSettings(BaseModel):
    """Connection settings of the Supabase connector.

    Attributes:
        db_url: ``SUPABASE_DB_URL``, a PostgreSQL URL (``postgresql://user:pass@host:5432/db``);
            secret, since it usually holds the password.
        url: ``SUPABASE_URL``, the project URL (``https://<ref>.supabase.co``), without
            ``/rest/v1``.
        service_role_key: ``SUPABASE_SERVICE_ROLE_KEY``, sent as ``apikey`` and as a bearer
            token on every REST request. Never logged.
        page_size: rows asked for per page, on both paths. The REST server may return fewer
            (its ``max-rows``); paging stays correct either way.
        timeout_seconds: per request (REST) or per query (PostgreSQL ``statement_timeout``).
        max_retries: retries of a transient failure of one page before giving up.
    """

    # hide_input_in_errors: a rejected db_url would otherwise be printed whole, password and
    # all, in pydantic's ValidationError.
    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    db_url: SecretStr | None = None
    url: str | None = None
    service_role_key: SecretStr | None = None
    page_size: int = Field(default=1000, gt=0, le=100_000)
    timeout_seconds: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=6, ge=0)

    @field_validator("db_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        text = value.get_secret_value()
        if not text.startswith(_DB_SCHEMES):
            shown = mask_url(text) if "://" in text else "a value without a scheme"
            raise ValueError(
                f"SUPABASE_DB_URL must be a PostgreSQL URL such as "
                f"postgresql://postgres:PASSWORD@db.<ref>.supabase.co:5432/postgres, got {shown}"
            )
        return value

    @field_validator("url")
    @classmethod
    def _project_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"SUPABASE_URL must be the project's http(s) URL such as "
                f"https://<ref>.supabase.co, got {mask_url(value)!r}"
            )
        base = value.rstrip("/")
        # Accept the REST root too, but store the project URL: ``rest_url`` adds the path.
        return base.removesuffix(REST_PATH)

    @property
    def has_db(self) -> bool:
        """True when the direct PostgreSQL path is configured."""
        return self.db_url is not None

    @property
    def has_rest(self) -> bool:
        """True when the REST path is configured (project URL and key)."""
        return bool(self.url and self.service_role_key)

    @property
    def rest_url(self) -> str:
        """``{url}/rest/v1``, the PostgREST root.

        Raises:
            MissingSettingError: naming ``SUPABASE_URL`` when it is not set.
        """
        if not self.url:
            raise MissingSettingError(
                "SUPABASE_URL",
                "SUPABASE_URL is not set: set it to the project URL "
                "(https://<ref>.supabase.co, Project Settings > API) to read through the REST API",
            )
        return self.url + REST_PATH

    def conninfo(self) -> str:
        """The ``db_url`` as a libpq connection string for psycopg (driver suffix removed).

        Raises:
            MissingSettingError: naming ``SUPABASE_DB_URL`` when it is not set.
        """
        if self.db_url is None:
            raise MissingSettingError(
                "SUPABASE_DB_URL",
                "SUPABASE_DB_URL is not set: set it to the database's connection string "
                "(Project Settings > Database; the direct or session-mode URL) to read "
                "through PostgreSQL",
            )
        url = self.db_url.get_secret_value()
        return url.replace("postgresql+psycopg://", "postgresql://", 1)

    def key(self) -> str:
        """The service role key's value, for the request headers only.

        Raises:
            MissingSettingError: naming ``SUPABASE_SERVICE_ROLE_KEY`` when it is not set.
        """
        if self.service_role_key is None or not self.service_role_key.get_secret_value():
            raise MissingSettingError(
                "SUPABASE_SERVICE_ROLE_KEY",
                "SUPABASE_SERVICE_ROLE_KEY is not set: set it to the project's service_role "
                "key (Project Settings > API) to read through the REST API",
            )
        return self.service_role_key.get_secret_value()
