"""Engines for the warehouse: PostgreSQL (psycopg 3) or an embedded SQLite file.

Callers hand a URL in and get an ``Engine`` whose transactions are real on both backends,
so a chunk's rows, the watermark and the run counts commit or roll back together.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from warehouse.backends import backend_named


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

    PostgreSQL: psycopg 3, ``pool_pre_ping``, server-side prepared statements disabled so
    the engine also works through a transaction-mode pooler (Supabase's port 6543), and
    every session's ``TimeZone`` set to UTC when it connects: the loader streams zone-less
    UTC timestamps to COPY and stages them as ``timestamp without time zone``, and reads
    them back as ``timestamptz`` in the session's zone, whatever the server's default.

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
    backend = backend_named(parsed.get_backend_name())
    if backend is None:
        return sa.create_engine(parsed, **engine_kwargs)
    return backend.create_engine(parsed, **engine_kwargs)
