"""The Alembic migrations build exactly ``schemas.tables.metadata`` on both backends."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from schemas.tables import metadata
from warehouse.db import create_warehouse_engine
from warehouse.migrate import current_revision, head_revision, upgrade


def _reflected_shape(engine: sa.Engine) -> dict[str, dict[str, object]]:
    inspector = sa.inspect(engine)
    shape: dict[str, dict[str, object]] = {}
    for name in inspector.get_table_names():
        if name == "alembic_version":
            continue
        shape[name] = {
            "columns": {c["name"]: c["nullable"] for c in inspector.get_columns(name)},
            "primary_key": inspector.get_pk_constraint(name)["constrained_columns"],
        }
    return shape


def _metadata_shape() -> dict[str, dict[str, object]]:
    return {
        table.name: {
            "columns": {c.name: c.nullable for c in table.columns},
            "primary_key": [c.name for c in table.primary_key.columns],
        }
        for table in metadata.sorted_tables
    }


def test_upgrade_builds_the_tables_columns_and_keys_of_the_metadata(warehouse_url: str) -> None:
    assert upgrade(warehouse_url) == head_revision()

    engine = create_warehouse_engine(warehouse_url)
    try:
        assert _reflected_shape(engine) == _metadata_shape()
        # Alembic's own comparison also covers column types, indexes and unique constraints.
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_upgrade_twice_is_a_no_op_that_keeps_data(
    warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert current_revision(warehouse_url) is None
    upgrade(warehouse_url)
    engine = create_warehouse_engine(warehouse_url)
    try:
        now = datetime(2025, 1, 1, tzinfo=UTC)
        with engine.begin() as conn:
            conn.execute(
                sa.insert(metadata.tables["sync_state"]).values(
                    entity="products", watermark=now, updated_at=now, synced_at=now
                )
            )
        # From another working directory: the script location comes from the package.
        monkeypatch.chdir(tmp_path)
        assert upgrade(warehouse_url) == head_revision()
        assert current_revision(warehouse_url) == head_revision()
        assert _reflected_shape(engine) == _metadata_shape()
        with engine.connect() as conn:
            stored = conn.execute(sa.select(metadata.tables["sync_state"].c.watermark)).all()
        assert stored == [(now,)]
    finally:
        engine.dispose()


def test_current_revision_of_an_empty_database_is_none(
    warehouse_url: str, migrated: Callable[[str], sa.Engine]
) -> None:
    assert current_revision(warehouse_url) is None
    migrated(warehouse_url)
    assert current_revision(warehouse_url) == head_revision() == "0006_outbound_events"


def _predicate(clause: object, dialect: sa.Dialect) -> str | None:
    """An index predicate as comparable text: no table prefixes, parentheses or case."""
    if clause is None:
        return None
    text = str(clause.compile(dialect=dialect)) if hasattr(clause, "compile") else str(clause)
    return re.sub(r"[()\"]|\b\w+\.", "", text).lower().strip()


def test_partial_indexes_have_the_predicate_of_the_metadata(warehouse_url: str) -> None:
    # Alembic's comparison above ignores an index's WHERE, so check it by reflection.
    upgrade(warehouse_url)
    engine = create_warehouse_engine(warehouse_url)
    try:
        inspector = sa.inspect(engine)
        name = engine.dialect.name
        checked = 0
        for table in metadata.sorted_tables:
            reflected = {ix["name"]: ix for ix in inspector.get_indexes(table.name)}
            for index in table.indexes:
                expected = index.dialect_options[name]["where"]
                stored = reflected[index.name].get("dialect_options", {}).get(f"{name}_where")
                assert _predicate(stored, engine.dialect) == _predicate(expected, engine.dialect)
                checked += expected is not None
        assert checked, "the quarantine's open-entry index is partial"
    finally:
        engine.dispose()


def test_offline_sql_keeps_the_version_table_in_the_warehouse_schema(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # ``alembic -x url=... -x schema=reporting upgrade head --sql``: the script a DBA reviews
    # before applying it. (SQLite has no offline mode: its batch migrations reflect tables.)
    from alembic import command

    from warehouse.migrate import alembic_config

    config = alembic_config()
    x_arguments = ["url=postgresql://db.example/warehouse", "schema=reporting"]
    config.cmd_opts = type("Options", (), {"x": x_arguments})()
    command.upgrade(config, "head", sql=True)

    script = capsys.readouterr().out
    assert "CREATE TABLE reporting.alembic_version (" in script
    assert script.count("CREATE TABLE") > 10  # the whole warehouse, not only the version table
