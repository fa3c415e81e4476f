"""Module-scoped warehouses for the file format tests: a fresh one is cheap (a new
PostgreSQL schema in one database per module, a new SQLite file)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from warehouse.db import create_warehouse_engine
from warehouse.migrate import upgrade


@pytest.fixture(scope="module")
def new_warehouse(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], sa.Engine]]:
    """``new_warehouse("sqlite" | "postgres")``: a fresh, migrated, empty warehouse.

    PostgreSQL warehouses are schemas of one database made for the module (cheaper than a
    database each); all are dropped at the end.
    """
    engines: list[sa.Engine] = []
    database: dict[str, str] = {}

    def make(backend: str) -> sa.Engine:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('wh') / 'warehouse.db'}"
            upgrade(url)
            engine = create_warehouse_engine(url)
        else:
            if "url" not in database:
                admin = request.getfixturevalue("pg_admin_engine")
                name = f"invsync_test_{uuid.uuid4().hex[:12]}"
                with admin.connect() as conn:
                    conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
                database["name"] = name
                database["url"] = admin.url.set(database=name).render_as_string(hide_password=False)
            schema = f"wh_{uuid.uuid4().hex[:8]}"
            upgrade(database["url"], schema=schema)
            engine = create_warehouse_engine(database["url"], schema=schema)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()
    if "name" in database:
        admin = request.getfixturevalue("pg_admin_engine")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database["name"]}" WITH (FORCE)'))
