"""Direct PostgreSQL path: keyset paging over ``(cursor, key)`` with psycopg 3.

Each page is one short read-only transaction: ``WHERE (updated_at, id) > (last seen)
ORDER BY updated_at, id LIMIT page_size``, which an index on ``(updated_at, id)`` answers
without scanning what was read before. Nothing stays open between pages (no server-side
cursor, no prepared statement), so the same code works through Supabase's session and
transaction poolers as well as on a direct connection.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote, urlsplit

import pandas as pd
import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from connectors.redact import Redactor, mask_url
from connectors.retry import Retrier, RetryPolicy
from connectors.supabase.errors import (
    DB_CREDENTIALS_HINT,
    AuthError,
    FatalError,
    RetryableError,
    SupabaseError,
    UnreachableError,
)
from connectors.supabase.reader import check_bounds
from connectors.supabase.settings import SupabaseSettings
from connectors.supabase.tables import AppTable

log = logging.getLogger(__name__)

APPLICATION_NAME = "inventory-sync"
Connection = psycopg.Connection[tuple[Any, ...]]

# SQLSTATEs where another attempt may succeed: lost connections (class 08), an
# administrator's shutdown, too many connections, a statement timeout, serialization
# failures and deadlocks.
_TRANSIENT_STATES = ("08", "57P01", "57P02", "57P03", "53300", "57014", "40001", "40P01")
_AUTH_STATES = ("28000", "28P01", "42501")


class PostgresReader:
    """Reads app tables straight from the Supabase database.

    Args:
        settings: the connector settings; ``db_url`` is required unless ``connection``
            is given. ``page_size``, ``timeout_seconds`` and ``max_retries`` apply.
        connection: an open psycopg connection to use (owned by the caller, used with
            autocommit); when None the reader connects to ``settings.db_url`` on first use
            and owns the connection.
        sleep: blocking sleep for backoff (injectable for tests).
        retry_policy: the retry budget; by default ``settings.max_retries`` retries.

    Raises:
        MissingSettingError: naming ``SUPABASE_DB_URL`` when it is not set.

    Not thread-safe: use one reader per thread.
    """

    def __init__(
        self,
        settings: SupabaseSettings,
        connection: Connection | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        """Set up the reader; nothing is sent until the first read."""
        self.settings = settings
        self._conninfo = settings.conninfo() if connection is None else None
        self._conn = connection
        self._owns_conn = connection is None
        password = urlsplit(self._conninfo).password if self._conninfo else None
        self._redactor = Redactor([password, unquote(password) if password else None])
        self._where = _where(self._conninfo)
        self._retrier = Retrier(
            retry_policy or RetryPolicy(max_retries=settings.max_retries),
            sleep=sleep,
            system="Supabase PostgreSQL",
            logger=log,
        )

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection if this reader opened it (a handed-in one stays open)."""
        if self._owns_conn and self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- reads ---------------------------------------------------------------------------------

    def read_changed(
        self, table: AppTable, since: datetime | None = None, *, until: datetime | None = None
    ) -> Iterator[pd.DataFrame]:
        """Yield the rows changed after ``since`` in ``(cursor, key)`` order, page by page.

        See ``AppTableReader.read_changed``: same contract, same frames as the REST path.
        """
        check_bounds(since, until)
        page_size = self.settings.page_size
        queries = _Queries(table)
        position: tuple[Any, Any] | None = None
        while True:
            query, params = queries.page(since, until, position, page_size)
            rows = self._retrier.run(functools.partial(self._fetch, table, query, params))
            if not rows:
                return
            yield table.frame(_by_column(table, rows), source="postgres")
            if len(rows) < page_size:
                return
            # The raw values, not the frame's: they compare exactly (same type, precision).
            last = rows[-1]
            position = (last[table.cursor_position], last[table.key_position])

    def check_access(self, table: AppTable) -> None:
        """Read at most one row of ``table``, to fail before a run starts.

        Raises:
            AuthError, FatalError, RetryableError: as ``read_changed``.
        """
        query, params = _Queries(table).page(None, None, None, 1)
        self._retrier.run(lambda: self._fetch(table, query, params))

    # -- one attempt ---------------------------------------------------------------------------

    def _connection(self) -> Connection:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        if not self._owns_conn:
            raise FatalError("the PostgreSQL connection handed to PostgresReader is closed")
        assert self._conninfo is not None  # set whenever the reader owns its connection
        try:
            self._conn = psycopg.connect(
                self._conninfo,
                autocommit=True,
                # No prepared statements: transaction poolers (Supabase's port 6543) cannot
                # keep them, and each page's query runs only a few times anyway.
                prepare_threshold=None,
                connect_timeout=max(1, round(min(self.settings.timeout_seconds, 30.0))),
                application_name=APPLICATION_NAME,
            )
        except psycopg.Error as exc:
            raise self._scrubbed(self._connect_error(exc)) from None
        return self._conn

    def _fetch(self, table: AppTable, query: sql.Composed, params: Sequence[Any]) -> list[Any]:
        conn = self._connection()
        timeout_ms = max(1, round(self.settings.timeout_seconds * 1000))
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(
                    sql.SQL("SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = {}").format(
                        sql.Literal(timeout_ms)
                    )
                )
                cur.execute(query, params)
                return cur.fetchall()
        except psycopg.Error as exc:
            error = self._query_error(exc, table)
            if isinstance(error, RetryableError) and self._owns_conn:
                self._drop_connection()
            raise self._scrubbed(error) from None

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    # -- classification ------------------------------------------------------------------------

    def _connect_error(self, exc: psycopg.Error) -> SupabaseError:
        text = _first_line(exc)
        state = exc.sqlstate or ""
        lowered = text.lower()
        if state in _AUTH_STATES or any(
            marker in lowered
            for marker in ("password authentication failed", "no password supplied", "role ")
        ):
            return AuthError(
                f"the database at {self._where} rejected the login ({text}); {DB_CREDENTIALS_HINT}",
                code=exc.sqlstate,
            )
        if state == "3D000" or ("database" in lowered and "does not exist" in lowered):
            return FatalError(
                f"the database named in SUPABASE_DB_URL does not exist at {self._where} "
                f"({text}); Supabase's is called 'postgres'",
                code=exc.sqlstate,
            )
        return UnreachableError(
            f"cannot connect to the database at {self._where} ({text}); check the host and "
            "port in SUPABASE_DB_URL and the network",
            code=exc.sqlstate,
            maybe_processed=False,
        )

    def _query_error(self, exc: psycopg.Error, table: AppTable) -> SupabaseError:
        text = _first_line(exc)
        state = exc.sqlstate or ""
        name = table.qualified_name
        if isinstance(exc, pg_errors.UndefinedTable):
            return FatalError(
                f"the table {name} does not exist in the database at {self._where} ({text}); "
                "check the table spec's name and schema",
                code=state,
            )
        if isinstance(exc, pg_errors.UndefinedColumn):
            return FatalError(
                f"a column of the table spec for {name} does not exist ({text}); "
                "fix the spec's columns, key or cursor",
                code=state,
            )
        if state in _AUTH_STATES:
            return AuthError(
                f"the database user in SUPABASE_DB_URL may not read {name} ({text}); grant "
                "it SELECT or use a user that has it",
                code=state,
            )
        if state == "57014":
            return RetryableError(
                f"reading {name} took longer than the statement timeout "
                f"({self.settings.timeout_seconds:g}s); retrying. If this keeps happening, "
                "raise SUPABASE_TIMEOUT_SECONDS or lower SUPABASE_PAGE_SIZE",
                code=state,
            )
        if isinstance(exc, psycopg.OperationalError) or state.startswith(_TRANSIENT_STATES):
            return RetryableError(
                f"reading {name} from the database at {self._where} failed ({text}); retrying",
                code=state or None,
            )
        return FatalError(f"reading {name} failed ({text}); retrying will not help", code=state)

    def _scrubbed(self, error: SupabaseError) -> SupabaseError:
        error.message = self._redactor.text(error.message)
        error.args = (error.message,)
        return error


class _Queries:
    """The page queries of one table: first page (full or since) and the pages after."""

    def __init__(self, table: AppTable) -> None:
        ident = sql.Identifier
        cursor, key = ident(table.cursor), ident(table.key)
        self._select = sql.SQL("SELECT {cols} FROM {table} WHERE ").format(
            cols=sql.SQL(", ").join(ident(c) for c in table.column_names),
            table=ident(table.schema, table.name),
        )
        self._tail = sql.SQL(" ORDER BY {c}, {k} LIMIT %s").format(c=cursor, k=key)
        self._full = sql.SQL("{c} IS NOT NULL").format(c=cursor)
        self._since = sql.SQL("{c} > %s").format(c=cursor)
        self._after = sql.SQL("({c}, {k}) > (%s, %s)").format(c=cursor, k=key)
        self._until = sql.SQL(" AND {c} <= %s").format(c=cursor)

    def page(
        self,
        since: datetime | None,
        until: datetime | None,
        position: tuple[Any, Any] | None,
        limit: int,
    ) -> tuple[sql.Composed, list[Any]]:
        """The query and parameters of the page after ``position`` (or the first one)."""
        if position is not None:
            where, params = self._after, list(position)
        elif since is not None:
            where, params = self._since, [since]
        else:
            where, params = self._full, []
        if until is not None:
            where, params = where + self._until, [*params, until]
        return self._select + where + self._tail, [*params, limit]


def _by_column(table: AppTable, rows: list[Any]) -> dict[str, list[Any]]:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in table.column_names]
    return {name: list(values) for name, values in zip(table.column_names, columns, strict=True)}


def _where(conninfo: str | None) -> str:
    """``host:port/db`` of a URL, for messages (never the user or password)."""
    if conninfo is None:
        return "the handed-in connection"
    parts = urlsplit(mask_url(conninfo))
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or ''}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
