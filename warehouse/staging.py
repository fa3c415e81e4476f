"""Temporary staging tables and the bulk paths that fill them.

PostgreSQL gets ``COPY ... FROM STDIN`` (text format) through psycopg 3 on the very
connection, and therefore the very transaction, the caller's SQLAlchemy ``Connection``
holds; its temp tables are ``ON COMMIT DROP`` so nothing outlives the transaction (which
also keeps them safe behind a transaction-mode pooler). SQLite gets ``executemany`` into
``TEMP`` tables (kept in memory by the engine's ``temp_store=MEMORY``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.schema import CreateIndex, CreateTable, DropTable

#: Bytes handed to psycopg per ``Copy.write`` call: big enough to amortise the call,
#: small enough not to double a large chunk's memory inside psycopg's queue.
COPY_WRITE_BYTES = 4 * 1024 * 1024


def temp_table(
    conn: sa.Connection, name: str, columns: Iterable[sa.Column[Any]], *, on_commit_drop: bool
) -> sa.Table:
    """(Re)create an empty temporary table and return it.

    An existing temp table of that name on this connection is dropped first, so a leftover
    from an earlier failed call can never leak rows into this one.

    Args:
        conn: Connection (in the caller's transaction).
        name: Table name.
        columns: Fresh (unattached) columns.
        on_commit_drop: PostgreSQL only: drop the table when the transaction ends.
    """
    kwargs: dict[str, Any] = {}
    if on_commit_drop and conn.dialect.name == "postgresql":
        kwargs["postgresql_on_commit"] = "DROP"
    table = sa.Table(
        name, sa.MetaData(), *columns, schema=temp_schema(conn), prefixes=["TEMPORARY"], **kwargs
    )
    drop_table(conn, table)
    conn.execute(CreateTable(table))
    return table


def temp_schema(conn: sa.Connection) -> str | None:
    """The schema temp tables live in; naming it keeps a DROP away from real tables."""
    return {"postgresql": "pg_temp", "sqlite": "temp"}.get(conn.dialect.name)


def drop_table(conn: sa.Connection, table: sa.Table) -> None:
    """Drop ``table`` if it exists.

    Skipped inside a failed PostgreSQL transaction: the DROP would only raise over the
    original error, and the rollback removes our (``ON COMMIT DROP``) temp tables anyway.
    """
    if transaction_failed(conn):
        return
    conn.execute(DropTable(table, if_exists=True))


def transaction_failed(conn: sa.Connection) -> bool:
    """True when ``conn`` is PostgreSQL and its transaction is aborted (needs a rollback)."""
    if conn.dialect.name != "postgresql" or conn.closed or not conn.in_transaction():
        return False
    driver_conn: Any = conn.connection.driver_connection
    return bool(driver_conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR)


def create_index(conn: sa.Connection, table: sa.Table, columns: Sequence[str]) -> None:
    """Index ``columns`` of a staging table (after loading it: cheaper than before)."""
    index = sa.Index(f"ix_{table.name}_{'_'.join(columns)}", *(table.c[c] for c in columns))
    conn.execute(CreateIndex(index, if_not_exists=True))


def copy_text(
    conn: sa.Connection, table: sa.Table, columns: Sequence[str], payload: pa.Buffer | bytes
) -> None:
    """``COPY table (columns) FROM STDIN`` with a text-format payload (PostgreSQL only).

    Args:
        conn: Connection whose DBAPI connection is psycopg 3 (inside the transaction).
        table: Target (usually a temp staging table).
        columns: Column order of the payload.
        payload: Tab-separated lines, ``\\N`` for NULL, text escaped for COPY.
    """
    preparer = conn.dialect.identifier_preparer
    sql = "COPY {} ({}) FROM STDIN".format(
        preparer.format_table(table), ", ".join(preparer.quote(c) for c in columns)
    )
    view = memoryview(payload)
    driver_conn: Any = conn.connection.driver_connection
    with driver_conn.cursor() as cursor, cursor.copy(sql) as copy:
        for start in range(0, len(view), COPY_WRITE_BYTES):
            copy.write(view[start : start + COPY_WRITE_BYTES])


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
