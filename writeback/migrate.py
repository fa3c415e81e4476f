"""Create and upgrade the app-side tables in the app database (``SUPABASE_DB_URL``).

A second Alembic history, apart from the warehouse's: scripts in ``writeback/migrations``,
versions in the table ``invsync_app_alembic_version``. Upgrading one never touches the other,
even when the warehouse and the app share a database.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from warehouse.db import create_warehouse_engine, normalize_url

VERSION_TABLE = "invsync_app_alembic_version"
_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock key: concurrent upgrades of the app tables wait for each other.
_LOCK_ID = 0x1A5B_0011


class AppDatabaseError(Exception):
    """The app database is not usable for write-back; the message says what to do."""


def alembic_config() -> Config:
    """The Alembic ``Config`` of the app-side migrations."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS).replace("%", "%%"))
    return config


#: Where the app's tables live: the app's own schema, as a Supabase app keeps them (the
#: warehouse, in the same database or not, has a schema of its own: WAREHOUSE_SCHEMA).
APP_SCHEMA = "public"


def create_app_engine(url: str) -> sa.Engine:
    """An engine on the app database: the warehouse's PostgreSQL engine (psycopg 3, sessions
    in UTC, no server-side prepared statements), its ``search_path`` on ``APP_SCHEMA``.

    Raises:
        AppDatabaseError: for a URL that is not PostgreSQL.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise AppDatabaseError(
            f"the app database must be PostgreSQL (SUPABASE_DB_URL), not "
            f"{parsed.get_backend_name()!r}"
        )
    return create_warehouse_engine(parsed, schema=APP_SCHEMA)


def upgrade_app(url: str, revision: str = "head") -> str | None:
    """Migrate the app tables at ``url`` up to ``revision``; a no-op when already there.

    Returns:
        The app revision afterwards.
    """
    engine = create_app_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
        return _revision(engine)
    finally:
        engine.dispose()


def current_app_revision(url: str) -> str | None:
    """The app tables' revision at ``url``, or None if never migrated."""
    engine = create_app_engine(url)
    try:
        return _revision(engine)
    finally:
        engine.dispose()


def app_head_revision() -> str | None:
    """The latest app revision shipped with this package."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def check_app_schema(engine: sa.Engine) -> None:
    """Stop at once when the app tables are missing or behind this code.

    Raises:
        AppDatabaseError: naming the command that fixes it.
    """
    current = _revision(engine)
    head = app_head_revision()
    if current != head:
        state = "missing" if current is None else f"at revision {current}, not {head}"
        raise AppDatabaseError(
            f"the app tables (purchase_order_requests, ...) in SUPABASE_DB_URL are {state}: "
            "run `invsync db upgrade --app` first"
        )


def _revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()
