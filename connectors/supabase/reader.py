"""The one interface both reading paths implement, and the choice between them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Protocol, Self, runtime_checkable

import pandas as pd

from connectors.supabase.errors import InvalidRequestError, MissingSettingError
from connectors.supabase.tables import AppTable

if TYPE_CHECKING:
    import httpx
    import psycopg

    from connectors.supabase.settings import SupabaseSettings

Path = Literal["postgres", "rest"]


@runtime_checkable
class AppTableReader(Protocol):
    """Reads the rows of an app table changed after a point in time, page by page."""

    def read_changed(
        self, table: AppTable, since: datetime | None = None, *, until: datetime | None = None
    ) -> Iterator[pd.DataFrame]:
        """Yield the rows whose cursor is after ``since``, in ``(cursor, key)`` order.

        Args:
            table: what to read (table, key, cursor, columns with their kinds).
            since: exclusive lower bound of the cursor, an aware datetime; None reads the
                whole table. The caller subtracts any overlap it wants (rows committed late
                with an earlier ``updated_at``).
            until: inclusive upper bound of the cursor, an aware datetime; None: no bound.
                With it, a watermark may move to ``until`` once the read is complete.

        Yields:
            Non-empty frames of at most the configured page size, with
            ``table.column_names`` as columns (dtypes: see ``Kind``). Nothing is yielded
            when no row changed. The last frame's last cursor value is the new watermark.

        Raises:
            InvalidRequestError: ``since`` or ``until`` is naive.
            AuthError: credentials rejected (the message names the setting).
            FatalError: the table, a column or a value is wrong; retrying cannot help.
            RetryableError: a transient failure outlived the retry budget.
        """
        ...

    def check_access(self, table: AppTable) -> None:
        """Read at most one row of ``table``, to fail before a run starts.

        Raises:
            AuthError, FatalError, RetryableError: as ``read_changed``.
        """
        ...

    def close(self) -> None:
        """Release connections the reader opened itself."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def open_reader(
    settings: SupabaseSettings,
    path: Path | None = None,
    *,
    http: httpx.Client | None = None,
    connection: psycopg.Connection[tuple[object, ...]] | None = None,
) -> AppTableReader:
    """The reader of the configured path: direct PostgreSQL when ``SUPABASE_DB_URL`` is set,
    else the REST API.

    Args:
        settings: the connector settings.
        path: "postgres" or "rest" to choose; None picks as above.
        http: handed to ``RestReader`` (ignored by the direct path).
        connection: handed to ``PostgresReader`` (ignored by the REST path).

    Raises:
        MissingSettingError: naming the variables to set when neither path is configured,
            or the one the chosen path lacks.
    """
    # Imported here: both readers import this module (``check_bounds``).
    from connectors.supabase.postgres import PostgresReader
    from connectors.supabase.rest import RestReader

    if path is None:
        if settings.has_db or connection is not None:
            path = "postgres"
        elif settings.url or settings.service_role_key:
            path = "rest"  # the reader names whichever of the two is missing
        else:
            raise MissingSettingError(
                "SUPABASE_DB_URL",
                "Supabase is not configured: set SUPABASE_DB_URL (direct PostgreSQL), or "
                "SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY (REST API)",
            )
    if path == "postgres":
        return PostgresReader(settings, connection)
    return RestReader(settings, http)


def check_bounds(since: datetime | None, until: datetime | None) -> None:
    """Refuse a naive ``since`` or ``until``: its meaning would depend on the server's zone."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise InvalidRequestError(
                f"{name} must be an aware datetime (e.g. datetime(..., tzinfo=UTC)), got {value!r}"
            )
