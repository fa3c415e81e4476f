"""``create_warehouse_engine``: URL normalisation, SQLite settings, real transactions, UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from schemas.tables import sync_state
from warehouse.db import create_warehouse_engine, normalize_url


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        pytest.param("postgres://u:p@h:5432/db", "postgresql+psycopg", id="postgres-scheme"),
        pytest.param("postgresql://u:p@h/db", "postgresql+psycopg", id="postgresql-scheme"),
        pytest.param("postgresql+psycopg://u@h/db", "postgresql+psycopg", id="already-psycopg"),
        pytest.param("sqlite:///./data/w.db", "sqlite", id="sqlite"),
    ],
)
def test_normalize_url_points_postgres_at_psycopg3(url: str, driver: str) -> None:
    normalized = normalize_url(url)
    assert normalized.drivername == driver
    assert normalized.database == sa.engine.make_url(url).database


def test_sqlite_engine_creates_the_folder_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "deeper" / "warehouse.db"
    engine = create_warehouse_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            pragmas = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
        assert path.exists()
        assert pragmas == {
            "journal_mode": "wal",
            "synchronous": 1,  # NORMAL
            "foreign_keys": 1,
            "busy_timeout": 30_000,
        }
    finally:
        engine.dispose()


def test_sqlite_rollback_undoes_ddl_and_dml(sqlite_url: str) -> None:
    engine = create_warehouse_engine(sqlite_url)
    try:
        with pytest.raises(RuntimeError, match="boom"), engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
            raise RuntimeError("boom")
        with engine.connect() as conn:
            tables = conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            ).all()
        assert tables == []
    finally:
        engine.dispose()


def test_aware_datetimes_come_back_as_the_same_instant_in_utc(engine: sa.Engine) -> None:
    plus_two = timezone(timedelta(hours=2))
    written = datetime(2025, 3, 30, 1, 30, 15, 123456, tzinfo=plus_two)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(sync_state).values(
                entity="x", watermark=written, updated_at=written, synced_at=written
            )
        )
    with engine.connect() as conn:
        stored = conn.execute(sa.select(sync_state.c.watermark)).scalar_one()
    assert stored == written
    assert stored.tzinfo == UTC
    assert stored == datetime(2025, 3, 29, 23, 30, 15, 123456, tzinfo=UTC)


def test_naive_datetimes_are_refused(engine: sa.Engine) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), engine.begin() as conn:
        conn.execute(
            sa.insert(sync_state).values(
                entity="x",
                watermark=datetime(2025, 1, 1),
                updated_at=datetime(2025, 1, 1, tzinfo=UTC),
                synced_at=datetime(2025, 1, 1, tzinfo=UTC),
            )
        )
