"""Errors of the Supabase connector, sorted by the reaction they need.

- ``RetryableError``: transient; the connector retries it with backoff (HTTP 429, 5xx,
  timeouts, dropped connections, a body that is not the JSON asked for; on PostgreSQL a lost
  connection, a statement timeout, a serialization failure).
- ``FatalError``: retrying cannot help: the table spec, the data or a setting must change
  (HTTP 4xx with PostgREST's own message, an unknown table or column).
- ``AuthError``: a ``FatalError`` whose fix is a setting; the message names it
  (``SUPABASE_SERVICE_ROLE_KEY`` for the REST path, ``SUPABASE_DB_URL`` for PostgreSQL).

Every message says what went wrong and what to do. Texts handed to these classes are
scrubbed of the key and the database password by the reader before they leave it.
"""

from __future__ import annotations

from typing import Any

from connectors.errors import ConnectorError
from connectors.retry import TransientError

REST_CREDENTIALS_HINT = (
    "check SUPABASE_SERVICE_ROLE_KEY (the project's service_role key, Project Settings > API) "
    "and SUPABASE_URL"
)
DB_CREDENTIALS_HINT = "check the user and password in SUPABASE_DB_URL"


class SupabaseError(ConnectorError):
    """Base of every error the Supabase connector raises (``ConnectorError``'s attributes;
    ``url`` and ``status`` on the REST path only).

    Attributes:
        code: PostgREST's or PostgreSQL's error code (``PGRST205``, ``42703``), if known.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        code: str | None = None,
        server_message: str | None = None,
    ) -> None:
        """Build the error; ``url`` and ``server_message`` must already be masked."""
        super().__init__(message, url=url, status=status, server_message=server_message)
        self.code = code

    def _identity(self) -> list[str]:
        return [f"code {self.code}"] if self.code else []


class RetryableError(SupabaseError, TransientError):
    """A transient failure: ``connectors.retry.Retrier`` retries it with backoff.

    Attributes:
        retry_after: seconds the server asked us to wait (``Retry-After``), if it said.
        maybe_processed: kept for ``Retrier``; reads are idempotent, so it does not matter.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        maybe_processed: bool = True,
        **kwargs: Any,
    ) -> None:
        """Build the error; see the class attributes."""
        SupabaseError.__init__(self, message, **kwargs)
        self.retry_after = retry_after
        self.maybe_processed = maybe_processed


class UnreachableError(RetryableError):
    """The server could not be reached at all: retried only for a short, bounded time."""

    unreachable = True


class FatalError(SupabaseError):
    """Retrying cannot help: the request, the data or the configuration must change."""


class AuthError(FatalError):
    """The credentials were rejected or lack access; the message names the setting."""


class InvalidRequestError(FatalError, ValueError):
    """Our own input is invalid and nothing was sent (a bad table spec, a naive ``since``)."""


class MissingSettingError(FatalError, ValueError):
    """A setting the chosen path needs is not set.

    Attributes:
        setting: the environment variable to set (``SUPABASE_DB_URL``, ...).
    """

    def __init__(self, setting: str, message: str) -> None:
        """Build the error naming ``setting``."""
        super().__init__(message)
        self.setting = setting
