"""Helpers for staging tables that are the same on every database.

Creating, dropping and bulk-filling temporary tables differs per database and lives in
``warehouse.backends`` (``backend_for(conn).temp_table(...)``). What is here is plain SQL:
the column a value is staged in, an index on a filled stage, an ``executemany`` INSERT,
and psycopg's ``COPY ... FROM STDIN`` on the caller's connection (used by the PostgreSQL
backend).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.schema import CreateIndex

from warehouse.canonical import column_kind, key_columns

#: Bytes handed to psycopg per ``Copy.write`` call: big enough to amortise the call,
#: small enough not to double a large chunk's memory inside psycopg's queue.
COPY_WRITE_BYTES = 4 * 1024 * 1024


def stage_column(column: sa.Column[Any]) -> sa.Column[Any]:
    """A fresh staging column for ``column``'s canonical text, in the matching SQL type.

    Timestamps are staged as ``timestamp without time zone`` holding UTC wall time (the
    warehouse's sessions run in UTC, see ``warehouse.db``).
    """
    if column_kind(column) == "datetime":
        return sa.Column(column.name, sa.DateTime(timezone=False))
    col_type: Any = column.type
    if isinstance(col_type, sa.types.TypeDecorator):
        col_type = col_type.impl_instance
    return sa.Column(column.name, col_type)


def key_stage_columns(table: sa.Table) -> list[sa.Column[Any]]:
    """Staging columns for the key of ``table``."""
    return [stage_column(table.c[k]) for k in key_columns(table)]


def create_index(conn: sa.Connection, table: sa.Table, columns: Sequence[str]) -> None:
    """Index ``columns`` of a staging table (after loading it: cheaper than before)."""
    index = sa.Index(f"ix_{table.name}_{'_'.join(columns)}", *(table.c[c] for c in columns))
    conn.execute(CreateIndex(index, if_not_exists=True))


def copy_text(
    conn: sa.Connection, table: sa.Table, columns: Sequence[str], payload: pa.Buffer | bytes
) -> None:
    """``COPY table (columns) FROM STDIN`` with a text-format payload (psycopg 3 only).

    Args:
        conn: Connection whose DBAPI connection is psycopg 3 (inside the transaction).
        table: Target (usually a temp staging table).
        columns: Column order of the payload.
        payload: Tab-separated lines, ``\\N`` for NULL, text escaped for COPY.
    """
    view = memoryview(payload)
    driver_conn: Any = conn.connection.driver_connection
    with driver_conn.cursor() as cursor, cursor.copy(_copy_sql(conn, table, columns)) as copy:
        for start in range(0, len(view), COPY_WRITE_BYTES):
            copy.write(view[start : start + COPY_WRITE_BYTES])


def copy_rows(
    conn: sa.Connection, table: sa.Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """``COPY table (columns) FROM STDIN`` of Python tuples, encoded by psycopg 3 (in C)."""
    driver_conn: Any = conn.connection.driver_connection
    with driver_conn.cursor() as cursor, cursor.copy(_copy_sql(conn, table, columns)) as copy:
        for row in rows:
            copy.write_row(row)


def insert_many(
    conn: sa.Connection,
    table: sa.Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    suffix: str = "",
) -> None:
    """Plain ``executemany`` INSERT of DBAPI-ready tuples (the SQLite bulk path).

    Values go to the driver as they are (no SQLAlchemy type processing), so they must
    already be in the stored form (e.g. canonical timestamp text on SQLite).

    Args:
        conn: Connection.
        table: Target table.
        columns: Column order of ``rows``.
        rows: Tuples of values.
        suffix: SQL appended after ``VALUES (...)``, e.g. an ``ON CONFLICT`` clause.
    """
    preparer = conn.dialect.identifier_preparer
    marks = ", ".join("?" if conn.dialect.paramstyle == "qmark" else "%s" for _ in columns)
    sql = "INSERT INTO {} ({}) VALUES ({}){}".format(
        preparer.format_table(table),
        ", ".join(preparer.quote(c) for c in columns),
        marks,
        f" {suffix}" if suffix else "",
    )
    batch = rows if isinstance(rows, list) else list(rows)
    if batch:
        conn.exec_driver_sql(sql, batch)


def _copy_sql(conn: sa.Connection, table: sa.Table, columns: Sequence[str]) -> str:
    preparer = conn.dialect.identifier_preparer
    return "COPY {} ({}) FROM STDIN".format(
        preparer.format_table(table), ", ".join(preparer.quote(c) for c in columns)
    )
