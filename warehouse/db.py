"""Engines for the warehouse: PostgreSQL (psycopg 3) or an embedded SQLite file.

Callers hand a URL in and get an ``Engine`` whose transactions are real on both backends,
so a chunk's rows, the watermark and the run counts commit or roll back together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url

#: How long a SQLite connection waits for another writer's lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str | URL) -> URL:
    """Return ``url`` with PostgreSQL URLs pointed at the psycopg 3 driver.

    ``postgres://`` (Heroku/Supabase style) and bare ``postgresql://`` would otherwise pick
    psycopg2, which is not installed.

    Args:
        url: A SQLAlchemy URL or URL string.

    Returns:
        The parsed URL, with driver ``postgresql+psycopg`` for PostgreSQL.
    """
    if isinstance(url, str) and url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def create_warehouse_engine(url: str | URL, **engine_kwargs: Any) -> sa.Engine:
    """Create an engine for the warehouse at ``url``.

    PostgreSQL: psycopg 3, ``pool_pre_ping``, and server-side prepared statements disabled
    so the engine also works through a transaction-mode pooler (Supabase's port 6543).

    SQLite: creates the file's folder, and on every connection sets WAL journaling,
    ``synchronous=NORMAL`` (durable at checkpoints, safe with WAL), ``foreign_keys=ON``, a
    busy timeout and in-memory temp tables (the loader stages chunks in temp tables). The
    sqlite3 module's own transaction handling is switched off and every transaction starts
    with ``BEGIN IMMEDIATE`` (SQLAlchemy's documented pysqlite recipe): DDL and reads become
    part of the transaction, and the write lock is taken up front, so a load cannot fail
    half-way on a lock upgrade.

    Args:
        url: Database URL (``postgresql://``, ``postgres://``, ``postgresql+psycopg://`` or
            ``sqlite:///path``).
        **engine_kwargs: Passed to ``sqlalchemy.create_engine``.

    Returns:
        The engine. Dispose of it when done.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, **engine_kwargs)
    if parsed.get_backend_name() == "postgresql":
        connect_args = {"prepare_threshold": None, **engine_kwargs.pop("connect_args", {})}
        engine_kwargs.setdefault("pool_pre_ping", True)
        return sa.create_engine(parsed, connect_args=connect_args, **engine_kwargs)
    return sa.create_engine(parsed, **engine_kwargs)


def _sqlite_engine(url: URL, **engine_kwargs: Any) -> sa.Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if not in_memory and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)

    engine = sa.create_engine(url, **engine_kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (below) instead of sqlite3's implicit,
        # DML-only transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA temp_store=MEMORY")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def is_postgres(bind: sa.Connection | sa.Engine) -> bool:
    """True when ``bind`` talks to PostgreSQL."""
    return bind.dialect.name == "postgresql"
