"""Alembic environment for the app-side tables (``invsync db upgrade --app``).

Separate from the warehouse's: its own scripts and its own version table
(``invsync_app_alembic_version``), so the two histories never meet, even in one database.
``writeback.migrate.upgrade_app`` hands an open connection in
``config.attributes["connection"]``; the ``alembic`` command line passes ``-x url=...``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from writeback.migrate import VERSION_TABLE

config = context.config


def _configure(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=None,
        version_table=VERSION_TABLE,
        transactional_ddl=True,
    )


def run_migrations_offline() -> None:
    """Emit the migration SQL for ``--sql`` mode instead of running it."""
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise RuntimeError("pass the app database URL: alembic -x url=... upgrade head --sql")
    context.configure(url=url, version_table=VERSION_TABLE, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run migrations on a live connection (handed in, or opened from ``-x url=``)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise RuntimeError("pass the app database URL: alembic -x url=... upgrade head")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
