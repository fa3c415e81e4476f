"""SQLite (the embedded, single-machine warehouse): ``executemany`` into in-memory
``TEMP`` tables, changed-only upserts decided in Python, file locks.

The engine (``warehouse.db``) keeps temp tables in memory and starts every transaction
with ``BEGIN IMMEDIATE``, which holds the write lock from the start, so the stored hashes
read for a chunk cannot go stale before its rows are written.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL

from warehouse import staging
from warehouse.backends.base import WaitForLock, WarehouseBackend
from warehouse.canonical import CHECKSUM_PREFIX_HEX, RenderedRows, key_columns

_HEX_DIGITS = "0123456789abcdef"


#: How long a SQLite connection waits for another writer's lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 30_000


class SqliteBackend(WarehouseBackend):
    """The warehouse in a SQLite file."""

    name: ClassVar[str] = "sqlite"
    temp_schema: ClassVar[str] = "temp"
    has_schemas: ClassVar[bool] = False
    alters_by_copy: ClassVar[bool] = True
    has_row_level_security: ClassVar[bool] = False

    # --- engine -----------------------------------------------------------------------------

    def create_engine(self, url: URL, *, schema: str, **engine_kwargs: Any) -> sa.Engine:
        """A configured engine for ``url`` (see ``warehouse.db.create_warehouse_engine``).

        ``schema`` is ignored: a SQLite file is one namespace.
        """
        database = url.database or ""
        in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
        if not in_memory and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)

        engine = sa.create_engine(url, **engine_kwargs)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy emit BEGIN itself (below) instead of sqlite3's implicit,
            # DML-only transactions.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                if not in_memory:
                    cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
                cursor.execute("PRAGMA temp_store=MEMORY")
            finally:
                cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    def create_schema(self, conn: sa.Connection, schema: str) -> None:
        """Nothing: a SQLite file has one namespace."""

    # --- staging tables ---------------------------------------------------------------------

    def transaction_failed(self, conn: sa.Connection) -> bool:
        """Never: a failed statement leaves SQLite's transaction usable."""
        return False

    def temp_table_exists(self, conn: sa.Connection, name: str) -> bool:
        """Whether this connection still has the temp table ``name``."""
        return bool(
            conn.execute(
                sa.text("SELECT count(*) FROM sqlite_temp_master WHERE name = :name"),
                {"name": name},
            ).scalar_one()
        )

    def stage_rendered(
        self, conn: sa.Connection, stage: sa.Table, rendered: RenderedRows, columns: list[str]
    ) -> None:
        """``executemany`` the rendered values."""
        values = [rendered.values[c].to_pylist() for c in columns]
        staging.insert_many(conn, stage, columns, list(zip(*values, strict=True)))

    def stage_arrays(
        self, conn: sa.Connection, stage: sa.Table, arrays: Mapping[str, pa.Array]
    ) -> None:
        """``executemany`` the values."""
        rows = list(zip(*(arr.to_pylist() for arr in arrays.values()), strict=True))
        staging.insert_many(conn, stage, list(arrays), rows)

    def prepare_lookup(self, conn: sa.Connection, stage: sa.Table, columns: list[str]) -> None:
        """An index: SQLite probes the stage with nested loops."""
        staging.create_index(conn, stage, columns)

    def analyze(self, conn: sa.Connection, table: sa.Table) -> None:
        """Nothing: the staging tables are probed through their indexes."""

    # --- writing ----------------------------------------------------------------------------

    def upsert(
        self,
        conn: sa.Connection,
        table: sa.Table,
        rendered: RenderedRows,
        *,
        synced_at: datetime,
        deleted_at: datetime | None,
    ) -> tuple[int, int]:
        """Read the stored hashes of the chunk's keys (one join against a temp table of
        them), then ``executemany`` only the new or changed rows; ``(inserted, updated)``.
        """
        columns = list(rendered.columns)
        keys = key_columns(table)
        n = len(rendered)
        exists = np.zeros(n, dtype=bool)
        changed = np.zeros(n, dtype=bool)
        incoming = rendered.hashes.to_pylist()
        writing_tombstones = deleted_at is not None
        for pos, stored_hash, stored_deleted in self._stored_state(conn, table, rendered):
            exists[pos] = True
            changed[pos] = stored_hash != incoming[pos] or stored_deleted != writing_tombstones
        write = ~exists | changed
        if write.any():
            subset = rendered.filter(write)
            synced_text = _timestamp_text(synced_at)
            deleted_text = None if deleted_at is None else _timestamp_text(deleted_at)
            values = [subset.values[c].to_pylist() for c in columns]
            rows = [
                (*row, content_hash, deleted_text, synced_text)
                for *row, content_hash in zip(*values, subset.hashes.to_pylist(), strict=True)
            ]
            quote = conn.dialect.identifier_preparer.quote
            target = conn.dialect.identifier_preparer.format_table(table)
            written = [*columns, "content_hash", "deleted_at", "synced_at"]
            conflict = (
                f"ON CONFLICT ({', '.join(quote(k) for k in keys)}) DO UPDATE SET "
                + ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in written if c not in keys)
                # Same rule as PostgreSQL; a safety net, the rows were chosen above already.
                + f" WHERE {target}.content_hash IS NOT excluded.content_hash"
                f" OR {target}.deleted_at IS NOT excluded.deleted_at"
            )
            staging.insert_many(conn, table, written, rows, suffix=conflict)
        return int((~exists).sum()), int(changed.sum())

    def insert(self, table: sa.Table) -> Any:
        """SQLite's INSERT (``ON CONFLICT`` capable)."""
        return sqlite.insert(table)

    def insert_rows(
        self,
        conn: sa.Connection,
        table: sa.Table,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        on_conflict: str = "",
    ) -> None:
        """One ``executemany`` INSERT with the ``on_conflict`` clause."""
        staging.insert_many(conn, table, columns, rows, suffix=on_conflict)

    # --- reading ----------------------------------------------------------------------------

    def hash_prefix(self, content_hash: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """No hex-to-integer function: add up the digits' positions in ``"0..f"``."""
        total: Any = sa.literal(0)
        for i in range(CHECKSUM_PREFIX_HEX):
            digit = sa.func.instr(
                _HEX_DIGITS, sa.func.lower(sa.func.substr(content_hash, i + 1, 1))
            )
            total = total + (digit - 1) * (16 ** (CHECKSUM_PREFIX_HEX - 1 - i))
        return total  # type: ignore[no-any-return]

    # --- locks ------------------------------------------------------------------------------

    @contextmanager
    def entity_lock(self, engine: sa.Engine, entity: str, wait: WaitForLock) -> Iterator[None]:
        """An exclusive ``flock`` on a file next to the database.

        The operating system releases it when the process dies. The block gets None: the
        lock is the process's, not a connection's.
        """
        database = engine.url.database
        folder = Path(database).resolve().parent if database and database != ":memory:" else None
        path = (folder or Path(os.environ.get("TMPDIR", "/tmp"))) / f".invsync-{entity}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    pass
                wait()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def migration_lock(self, conn: sa.Connection) -> None:
        """Nothing: the engine's ``BEGIN IMMEDIATE`` already serialises migrations."""

    def block_inserts(self, conn: sa.Connection, table: sa.Table, timeout_seconds: int) -> None:
        """Nothing: the engine's ``BEGIN IMMEDIATE`` already keeps every other writer out."""

    # --- internals --------------------------------------------------------------------------

    def _stored_state(
        self, conn: sa.Connection, table: sa.Table, rendered: RenderedRows
    ) -> list[tuple[int, str, bool]]:
        """``(position in chunk, stored content_hash, stored row is deleted)`` per stored key."""
        keys = key_columns(table)
        stage = self.temp_table(
            conn,
            f"_keys_{table.name}",
            [sa.Column("pos", sa.Integer, primary_key=True), *staging.key_stage_columns(table)],
            on_commit_drop=True,
        )
        try:
            key_values = [rendered.values[k].to_pylist() for k in keys]
            rows = list(zip(range(len(rendered)), *key_values, strict=True))
            staging.insert_many(conn, stage, ["pos", *keys], rows)
            query = sa.select(
                stage.c.pos, table.c.content_hash, table.c.deleted_at.is_not(None)
            ).join_from(stage, table, sa.and_(*(stage.c[k] == table.c[k] for k in keys)))
            return [(int(p), h, bool(d)) for p, h, d in conn.execute(query).tuples()]
        finally:
            self.drop_table(conn, stage)


def _timestamp_text(value: datetime) -> str:
    """The text SQLAlchemy's SQLite ``DateTime`` stores, for the UTC instant of ``value``."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
