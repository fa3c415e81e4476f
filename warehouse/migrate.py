"""Apply the warehouse migrations from code, from any working directory.

Alembic is configured programmatically from the packaged ``alembic.ini`` with
``script_location`` pointing at this package's ``migrations`` folder, so it works from a
source checkout and from an installed wheel alike.

On PostgreSQL everything lands in the warehouse's schema (``WAREHOUSE_SCHEMA``): the
engine's ``search_path`` is that schema alone, Alembic's version table is pinned to it, and
``upgrade`` creates the schema when it is missing. Nothing outside it is created, altered
or dropped.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.engine import URL

from warehouse.backends import backend_for
from warehouse.db import DEFAULT_SCHEMA, create_warehouse_engine

_PACKAGE_DIR = Path(__file__).resolve().parent


def alembic_config() -> Config:
    """The Alembic ``Config`` for the packaged migrations.

    Returns:
        A config whose ``script_location`` is this package's ``migrations`` folder.
    """
    config = Config(str(_PACKAGE_DIR / "alembic.ini"))
    # ConfigParser interpolates "%", so a path containing one must be escaped.
    config.set_main_option("script_location", str(_PACKAGE_DIR / "migrations").replace("%", "%%"))
    return config


class WarehouseElsewhere(Exception):
    """The configured schema has no warehouse but another schema of the database has one."""


def upgrade(url: str | URL, revision: str = "head", *, schema: str = DEFAULT_SCHEMA) -> str | None:
    """Migrate the warehouse at ``url`` up to ``revision``; a no-op when already there.

    Runs in one transaction (DDL is transactional on PostgreSQL and, with our engine, on
    SQLite). Concurrent callers wait for each other where the database needs it (an
    advisory lock on PostgreSQL). On PostgreSQL the warehouse's ``schema`` is created if
    missing, and the migrations and Alembic's version table go there.

    Args:
        url: Warehouse database URL.
        revision: Target revision (default: the latest).
        schema: PostgreSQL schema of the warehouse (``WAREHOUSE_SCHEMA``; SQLite ignores it).

    Returns:
        The revision the database is at afterwards.

    Raises:
        WarehouseElsewhere: ``schema`` holds no warehouse while ``public`` holds one (a
            warehouse made before ``WAREHOUSE_SCHEMA`` existed). Nothing is created: a
            silent second warehouse would leave every reader of the first on stale data.
    """
    engine = create_warehouse_engine(url, schema=schema)
    try:
        if revision == "head":
            # Nearly every call finds the warehouse current: say so without the lock and
            # without loading Alembic's environment (a run checks at each entity).
            with engine.connect() as conn:
                current = _migration_context(conn, schema).get_current_revision()
            if current is not None and current == head_revision():
                return current
        with engine.begin() as conn:
            backend = backend_for(conn)
            backend.migration_lock(conn)
            elsewhere = backend.existing_warehouse_elsewhere(conn, schema)
            if elsewhere is not None:
                raise WarehouseElsewhere(
                    f"WAREHOUSE_SCHEMA={schema}: this database's warehouse is in schema "
                    f"{elsewhere!r} (made before WAREHOUSE_SCHEMA existed) and {schema!r} has "
                    f"none; set WAREHOUSE_SCHEMA={elsewhere} to keep using it, or move its "
                    f"tables into {schema!r} first (README, 'Upgrade notes'). Nothing was "
                    "created."
                )
            backend.create_schema(conn, schema)
            config = alembic_config()
            config.attributes["connection"] = conn
            config.attributes["version_table_schema"] = _version_table_schema(conn, schema)
            command.upgrade(config, revision)
        with engine.connect() as conn:
            return _migration_context(conn, schema).get_current_revision()
    finally:
        engine.dispose()


def current_revision(url: str | URL, *, schema: str = DEFAULT_SCHEMA) -> str | None:
    """The revision the warehouse at ``url`` is at, or ``None`` if never migrated.

    Args:
        url: Warehouse database URL.
        schema: PostgreSQL schema of the warehouse (SQLite ignores it).
    """
    engine = create_warehouse_engine(url, schema=schema)
    try:
        with engine.connect() as conn:
            return _migration_context(conn, schema).get_current_revision()
    finally:
        engine.dispose()


@cache
def head_revision() -> str | None:
    """The latest revision shipped with this package (what ``upgrade()`` migrates to)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _version_table_schema(conn: Connection, schema: str) -> str | None:
    """Where Alembic keeps its version table: the warehouse's schema, where there are any."""
    return schema if backend_for(conn).has_schemas else None


def _migration_context(conn: Connection, schema: str) -> MigrationContext:
    return MigrationContext.configure(
        conn, opts={"version_table_schema": _version_table_schema(conn, schema)}
    )
