"""Engines for the warehouse: PostgreSQL (psycopg 3) or an embedded SQLite file.

Callers hand a URL in and get an ``Engine`` whose transactions are real on both backends,
so a chunk's rows, the watermark and the run counts commit or roll back together.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from warehouse.backends import backend_named

#: The PostgreSQL schema the warehouse lives in unless ``WAREHOUSE_SCHEMA`` says otherwise.
DEFAULT_SCHEMA = "inventory"

#: A schema or role name used without quoting surprises: lower case, digits, underscores.
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")

#: Ports of Supabase's transaction-mode poolers (Supavisor and the dedicated PgBouncer).
TRANSACTION_POOLER_PORT = 6543
SESSION_PORT = 5432


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


def check_identifier(value: str, setting: str) -> str:
    """Return ``value`` if it is a plain PostgreSQL name; else raise naming ``setting``.

    Plain means lower-case letters, digits and underscores, not starting with a digit, at
    most 63 characters and not reserved (``pg_*``, ``information_schema``): such a name
    means the same quoted and unquoted, in SQL, in Supabase's dashboard and in a REST URL.

    Raises:
        ValueError: naming ``setting`` and what a valid name looks like.
    """
    if not _IDENTIFIER.fullmatch(value) or value.startswith("pg_") or value == "information_schema":
        raise ValueError(
            f"{setting}={value!r} is not a usable name; use lower-case letters, digits and "
            "underscores (at most 63, not starting with a digit or 'pg_'), e.g. 'inventory'"
        )
    return value


def transaction_pooler_problem(url: str | URL) -> str | None:
    """Why ``url`` cannot hold a warehouse session, or None when it can.

    Supabase's transaction-mode poolers (port 6543 on ``*.pooler.supabase.com`` and on
    ``db.<project>.supabase.co``) hand each transaction to any server connection, so a
    session's ``search_path``, its advisory locks and a COPY spanning statements do not
    survive. The same database is reachable through the session pooler (same host, port
    5432) or directly (``db.<project>.supabase.co:5432``), which both keep the session.

    Returns:
        A message naming ``WAREHOUSE_URL`` (password masked) and the URL to use instead.
    """
    parsed = normalize_url(url)
    host = (parsed.host or "").lower().rstrip(".")
    supabase = host.endswith((".supabase.com", ".supabase.co"))
    if parsed.get_backend_name() != "postgresql" or not supabase:
        return None
    if parsed.port != TRANSACTION_POOLER_PORT:
        return None
    session = parsed.set(port=SESSION_PORT).render_as_string(hide_password=True)
    suggestion = f"the session pooler, the same URL on port {SESSION_PORT}: {session}"
    user = parsed.username or ""
    if host.endswith(".pooler.supabase.com") and user.startswith("postgres."):
        project = user.removeprefix("postgres.")
        direct = parsed.set(
            username="postgres", host=f"db.{project}.supabase.co", port=SESSION_PORT
        ).render_as_string(hide_password=True)
        suggestion += f", or the direct connection: {direct}"
    elif host.startswith("db."):
        suggestion = f"the direct connection, the same URL on port {SESSION_PORT}: {session}"
    shown = parsed.render_as_string(hide_password=True)
    return (
        f"WAREHOUSE_URL={shown} is Supabase's transaction pooler (port "
        f"{TRANSACTION_POOLER_PORT}), which does not keep a session's search_path, advisory "
        f"locks or COPY between transactions; set WAREHOUSE_URL to {suggestion} "
        "(Supabase: Connect > Session pooler or Direct connection)"
    )


def create_warehouse_engine(
    url: str | URL, *, schema: str = DEFAULT_SCHEMA, **engine_kwargs: Any
) -> sa.Engine:
    """Create an engine for the warehouse at ``url``.

    PostgreSQL: psycopg 3, ``pool_pre_ping``, server-side prepared statements disabled,
    and two session settings made when each connection opens: ``search_path`` set to
    ``schema`` alone, so every unqualified table (the warehouse's, Alembic's version table,
    and nothing of any other schema) resolves there, temp tables aside (``pg_temp``); and
    ``TimeZone`` set to UTC: the loader streams zone-less UTC timestamps to COPY and stages
    them as ``timestamp without time zone``, and reads them back as ``timestamptz`` in the
    session's zone, whatever the server's default. Both are session state, which is why a
    transaction-mode pooler is refused (``transaction_pooler_problem``).

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
        schema: PostgreSQL schema of the warehouse (``WAREHOUSE_SCHEMA``); SQLite has one
            namespace and ignores it. It need not exist yet: ``warehouse.migrate.upgrade``
            creates it.
        **engine_kwargs: Passed to ``sqlalchemy.create_engine``.

    Returns:
        The engine. Dispose of it when done.

    Raises:
        ValueError: ``url`` is a Supabase transaction pooler (the message says which URL
            to use instead).
    """
    parsed = normalize_url(url)
    problem = transaction_pooler_problem(parsed)
    if problem is not None:
        raise ValueError(problem)
    backend = backend_named(parsed.get_backend_name())
    if backend is None:
        return sa.create_engine(parsed, **engine_kwargs)
    return backend.create_engine(parsed, schema=schema, **engine_kwargs)
