"""Apply the warehouse migrations from code, from any working directory.

Alembic is configured programmatically from the packaged ``alembic.ini`` with
``script_location`` pointing at this package's ``migrations`` folder, so it works from a
source checkout and from an installed wheel alike.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL

from warehouse.backends import backend_for
from warehouse.db import create_warehouse_engine

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


def upgrade(url: str | URL, revision: str = "head") -> str | None:
    """Migrate the warehouse at ``url`` up to ``revision``; a no-op when already there.

    Runs in one transaction (DDL is transactional on PostgreSQL and, with our engine, on
    SQLite). Concurrent callers wait for each other where the database needs it (an
    advisory lock on PostgreSQL).

    Args:
        url: Warehouse database URL.
        revision: Target revision (default: the latest).

    Returns:
        The revision the database is at afterwards.
    """
    engine = create_warehouse_engine(url)
    try:
        with engine.begin() as conn:
            backend_for(conn).migration_lock(conn)
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def current_revision(url: str | URL) -> str | None:
    """The revision the warehouse at ``url`` is at, or ``None`` if never migrated.

    Args:
        url: Warehouse database URL.
    """
    engine = create_warehouse_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    """The latest revision shipped with this package (what ``upgrade()`` migrates to)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
