"""Export -> import into an empty warehouse -> identical rows, for every entity and format,
on SQLite and PostgreSQL; and importing the same file again changes nothing."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from format_seed import SEED, seed, table_rows

from formats.entities import FILE_ENTITIES
from formats.export import FORMATS, export
from formats.imports import import_file
from pipeline.status import entity_status
from schemas import tables

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="module")
def seeded(new_warehouse: Callable[[str], sa.Engine]) -> dict[str, sa.Engine]:
    engines = {}
    for backend in BACKENDS:
        engines[backend] = new_warehouse(backend)
        seed(engines[backend])
    return engines


def _export(engine: sa.Engine, name: str, fmt: str, folder: Path) -> Path:
    path = folder / f"{name}.{fmt}"
    entity = FILE_ENTITIES[name]
    with engine.connect() as conn:
        if fmt == "parquet":
            export(conn, entity, fmt, str(path))
        else:
            # newline="": the CSV writer's \r\n and the values' own \r stay as written.
            with path.open("w", encoding="utf-8", newline="") as out:
                export(conn, entity, fmt, out)
    return path


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_entity_round_trips_into_an_empty_warehouse(
    backend: str,
    fmt: str,
    seeded: dict[str, sa.Engine],
    new_warehouse: Callable[[str], sa.Engine],
    tmp_path: Path,
) -> None:
    source = seeded[backend]
    target = new_warehouse(backend)
    for name, entity in FILE_ENTITIES.items():
        path = _export(source, name, fmt, tmp_path)
        summary = import_file(target, entity, path, fmt)
        assert summary.quarantined == 0, summary.refused
        assert summary.inserted == len(SEED[entity.table.name]) == summary.read
        assert table_rows(target, entity.table) == table_rows(source, entity.table), name

    # The same files again: nothing changes, everything is counted unchanged.
    before = {t: table_rows(target, tables.metadata.tables[t]) for t in SEED}
    for name, entity in FILE_ENTITIES.items():
        again = import_file(target, entity, tmp_path / f"{name}.{fmt}", fmt)
        assert (again.inserted, again.updated, again.quarantined) == (0, 0, 0)
        assert again.unchanged == again.read == len(SEED[entity.table.name])
    assert {t: table_rows(target, tables.metadata.tables[t]) for t in SEED} == before
    with target.connect() as conn:
        runs = conn.execute(
            sa.select(tables.sync_runs.c.mode, sa.func.count()).group_by(tables.sync_runs.c.mode)
        ).all()
    assert runs == [("import", 2 * len(FILE_ENTITIES))]
    # Imports are not syncs: the entity's health still says it was never synced.
    with target.connect() as conn:
        assert entity_status(conn, "products")["last_sync"] is None


def test_export_since_keeps_rows_updated_from_then_on(seeded: dict[str, sa.Engine]) -> None:
    from datetime import UTC, datetime

    out = io.StringIO()
    with seeded["sqlite"].connect() as conn:
        count = export(
            conn, FILE_ENTITIES["products"], "jsonl", out, since=datetime(2025, 3, 6, tzinfo=UTC)
        )
    assert count == 2
    assert [line.split('"')[3] for line in out.getvalue().splitlines()] == ["SKU-2", "sku 3"]


def test_export_since_on_an_entity_without_last_updated_at_is_refused(
    seeded: dict[str, sa.Engine],
) -> None:
    from datetime import UTC, datetime

    with seeded["sqlite"].connect() as conn, pytest.raises(ValueError, match="no last_updated_at"):
        export(conn, FILE_ENTITIES["stock"], "csv", io.StringIO(), since=datetime.now(UTC))
