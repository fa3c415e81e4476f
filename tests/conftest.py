"""Shared fixtures: throwaway PostgreSQL databases and SQLite files.

PostgreSQL comes from ``TEST_DATABASE_URL`` (default: the local server). When it cannot be
reached the tests that need it are skipped with the reason, unless ``REQUIRE_POSTGRES=1``,
which turns that into a failure (CI sets it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from prefect_harness import TEST_DATABASE_ENV, prefect_database, prefect_server_harness
from sqlalchemy.engine import URL, make_url

from warehouse.db import create_warehouse_engine
from warehouse.migrate import upgrade

DEFAULT_TEST_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _admin_url() -> URL:
    url = make_url(os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL))
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def _unreachable_reason(engine: sa.Engine) -> str | None:
    """Why PostgreSQL at ``engine`` cannot be used, or None when it answers."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:
        return (
            f"PostgreSQL not reachable at {engine.url.render_as_string(hide_password=True)} "
            f"({type(exc).__name__}); set TEST_DATABASE_URL to a server you can create "
            "databases on"
        )
    return None


def _require_postgres() -> bool:
    return os.environ.get("REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session")
def pg_admin_engine() -> Iterator[sa.Engine]:
    """An AUTOCOMMIT engine on the test server, used to create and drop databases."""
    engine = sa.create_engine(_admin_url(), isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    if reason := _unreachable_reason(engine):
        engine.dispose()
        if _require_postgres():
            pytest.fail(f"REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url(pg_admin_engine: sa.Engine) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database, dropped after the test."""
    name = f"invsync_test_{uuid.uuid4().hex[:12]}"
    with pg_admin_engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = pg_admin_engine.url.set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with pg_admin_engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a fresh SQLite file in the test's temporary folder."""
    return f"sqlite:///{tmp_path / 'warehouse.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse_url(request: pytest.FixtureRequest) -> str:
    """Run a test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def engine(warehouse_url: str) -> Iterator[sa.Engine]:
    """A migrated, empty warehouse: once on SQLite, once on PostgreSQL."""
    upgrade(warehouse_url)
    eng = create_warehouse_engine(warehouse_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session", autouse=True)
def prefect_database_url() -> Iterator[str | None]:
    """The session's throwaway PostgreSQL database for Prefect servers, or None without one.

    Named in ``INVSYNC_TEST_PREFECT_DATABASE_URL`` for the whole session, so the temporary
    servers the CLI starts (in-process or in a subprocess) use it instead of a SQLite file;
    ``prefect_harness`` runs on it too. See ``tests/prefect_harness.py``.
    Without a reachable PostgreSQL the servers stay on SQLite, as Prefect's default.
    """
    engine = sa.create_engine(_admin_url(), isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        if _unreachable_reason(engine):
            yield None
            return
        with prefect_database(engine) as url, pytest.MonkeyPatch.context() as patch:
            patch.setenv(TEST_DATABASE_ENV, url)
            yield url
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def prefect_harness(
    prefect_database_url: str | None, request: pytest.FixtureRequest
) -> Iterator[None]:
    """A Prefect server for the whole session, on the session's PostgreSQL database.

    Without a reachable PostgreSQL this fails when ``REQUIRE_POSTGRES=1`` and otherwise falls
    back to Prefect's own SQLite harness (slower under load: see ``tests/prefect_harness.py``).
    """
    if prefect_database_url is None:
        if _require_postgres():
            request.getfixturevalue("pg_admin_engine")  # fails, naming why
        from prefect.testing.utilities import prefect_test_harness

        with prefect_test_harness(server_startup_timeout=60):
            yield
        return
    with prefect_server_harness(prefect_database_url, startup_timeout=60):
        yield
