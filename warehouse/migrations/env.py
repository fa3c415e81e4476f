"""Alembic environment for the warehouse.

Two ways in:
- ``warehouse.migrate.upgrade(url)`` hands an open connection in
  ``config.attributes["connection"]`` (inside its transaction and, on PostgreSQL, under an
  advisory lock);
- the ``alembic`` command line passes the database as ``-x url=...`` (and the PostgreSQL
  schema as ``-x schema=...``, default ``inventory``).

On PostgreSQL the version table lives in the warehouse's schema (``version_table_schema``)
and the engine's ``search_path`` is that schema alone, so the unqualified names of the
migrations land there too.

SQLite runs with ``render_as_batch`` (ALTER TABLE there is limited; batch mode rebuilds the
table) and with transactional DDL, which the engine from ``create_warehouse_engine`` makes
real by emitting ``BEGIN IMMEDIATE`` itself.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from schemas.tables import metadata
from warehouse.backends import backend_for, backend_named
from warehouse.db import DEFAULT_SCHEMA, create_warehouse_engine

config = context.config


def _configure(connection: sa.Connection, version_table_schema: str | None) -> None:
    backend = backend_for(connection)
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table_schema=version_table_schema if backend.has_schemas else None,
        render_as_batch=backend.alters_by_copy,
        transactional_ddl=True,
        compare_type=True,
    )


def run_migrations_offline() -> None:
    """Emit the migration SQL for ``--sql`` mode instead of running it."""
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise RuntimeError("pass the database URL: alembic -x url=... upgrade head --sql")
    backend = backend_named(sa.make_url(url).get_backend_name())
    if backend is None:
        raise RuntimeError(f"not a PostgreSQL or SQLite URL: {sa.make_url(url)!r}")
    schema = context.get_x_argument(as_dictionary=True).get("schema") or DEFAULT_SCHEMA
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        version_table_schema=schema if backend.has_schemas else None,
        render_as_batch=backend.alters_by_copy,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run migrations on a live connection (handed in, or opened from ``-x url=``)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection, config.attributes.get("version_table_schema"))
        with context.begin_transaction():
            context.run_migrations()
        return

    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise RuntimeError("pass the database URL: alembic -x url=... upgrade head")
    schema = context.get_x_argument(as_dictionary=True).get("schema") or DEFAULT_SCHEMA
    engine = create_warehouse_engine(url, schema=schema)
    try:
        # engine.begin(): the CREATE SCHEMA and the migrations commit together.
        with engine.begin() as conn:
            backend_for(conn).create_schema(conn, schema)
            _configure(conn, schema)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
