"""PostgreSQL (psycopg 3): COPY into ``ON COMMIT DROP`` temp tables, changed-only upserts,
advisory locks.

COPY goes through psycopg on the very connection, and therefore the very transaction,
the caller's SQLAlchemy ``Connection`` holds. Temp tables that only a statement needs are
``ON COMMIT DROP``, so nothing outlives the transaction (which also keeps them safe behind
a transaction-mode pooler). Sessions run in UTC (set once per connection by
``warehouse.db``), so zone-less timestamps in COPY text and in staging tables are UTC.

The warehouse lives in one schema (``WAREHOUSE_SCHEMA``): each connection's ``search_path``
is that schema alone, so every unqualified name the loaders, Alembic and the checksums use
resolves there and nowhere else; temp tables are named ``pg_temp`` explicitly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np
import psycopg
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL

from schemas.tables import TS
from warehouse import staging
from warehouse.backends.base import WaitForLock, WarehouseBackend
from warehouse.canonical import (
    CHECKSUM_PREFIX_HEX,
    NULL_TOKEN,
    RenderedRows,
    column_kind,
    copy_field,
    copy_payload,
    key_columns,
)

#: Keys of a chunk probed before trying a direct COPY (one index lookup each).
KEY_SAMPLE = 16

# Any fixed 64-bit number: concurrent flow runs that start by migrating wait for each other
# instead of racing to CREATE TABLE.
_MIGRATION_LOCK_ID = 0x1517_5EED_0001


class PostgresBackend(WarehouseBackend):
    """The warehouse on PostgreSQL."""

    name: ClassVar[str] = "postgresql"
    temp_schema: ClassVar[str] = "pg_temp"
    has_schemas: ClassVar[bool] = True
    alters_by_copy: ClassVar[bool] = False
    has_row_level_security: ClassVar[bool] = True

    # --- engine -----------------------------------------------------------------------------

    def create_engine(self, url: URL, *, schema: str, **engine_kwargs: Any) -> sa.Engine:
        """A configured engine for ``url`` (see ``warehouse.db.create_warehouse_engine``)."""
        search_path = postgresql.dialect().identifier_preparer.quote_identifier(schema)
        connect_args = {"prepare_threshold": None, **engine_kwargs.pop("connect_args", {})}
        engine_kwargs.setdefault("pool_pre_ping", True)
        engine = sa.create_engine(url, connect_args=connect_args, **engine_kwargs)

        # insert=True: before SQLAlchemy's first-connect initialisation, so the dialect
        # reads the warehouse's schema as the default one (reflection relies on it).
        @event.listens_for(engine, "connect", insert=True)
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Committed at once (SQLAlchemy's documented recipe): a SET inside the first
            # transaction would be undone by its rollback.
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True
            try:
                with dbapi_connection.cursor() as cursor:
                    cursor.execute("SET TIME ZONE 'UTC'")
                    # The schema alone: a name missing there must fail, not fall through
                    # to a table of the same name in public.
                    cursor.execute(f"SET search_path TO {search_path}")
            finally:
                dbapi_connection.autocommit = autocommit

        return engine

    def create_schema(self, conn: sa.Connection, schema: str) -> None:
        """``CREATE SCHEMA IF NOT EXISTS`` the warehouse's schema."""
        quoted = conn.dialect.identifier_preparer.quote_identifier(schema)
        conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quoted}")

    def existing_warehouse_elsewhere(self, conn: sa.Connection, schema: str) -> str | None:
        """``public`` when it holds a warehouse (ours: ``sync_runs`` beside Alembic's table)
        and ``schema`` holds none: the layout of every warehouse made before
        ``WAREHOUSE_SCHEMA`` existed."""
        if schema == "public":
            return None
        here = conn.dialect.identifier_preparer.quote_identifier(schema)
        found = conn.execute(
            sa.text(
                "SELECT to_regclass(:here) IS NULL AND to_regclass('public.alembic_version')"
                " IS NOT NULL AND to_regclass('public.sync_runs') IS NOT NULL"
            ),
            {"here": f"{here}.alembic_version"},
        ).scalar_one()
        return "public" if found else None

    # --- staging tables ---------------------------------------------------------------------

    def transaction_failed(self, conn: sa.Connection) -> bool:
        """True when the transaction is aborted (needs a rollback)."""
        if conn.closed or not conn.in_transaction():
            return False
        driver_conn: Any = conn.connection.driver_connection
        return bool(driver_conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR)

    def temp_table_exists(self, conn: sa.Connection, name: str) -> bool:
        """Whether this session still has the temp table ``name``."""
        return bool(
            conn.execute(
                sa.text("SELECT to_regclass(:name) IS NOT NULL"), {"name": f"pg_temp.{name}"}
            ).scalar_one()
        )

    def stage_rendered(
        self, conn: sa.Connection, stage: sa.Table, rendered: RenderedRows, columns: list[str]
    ) -> None:
        """COPY the rendered columns (their canonical text is COPY text already)."""
        staging.copy_text(conn, stage, columns, rendered.copy_payload(columns, with_hash=False))

    def stage_arrays(
        self, conn: sa.Connection, stage: sa.Table, arrays: Mapping[str, pa.Array]
    ) -> None:
        """COPY plain columns: strings escaped, integers as their digits."""
        fields = [
            copy_field(arr.cast(pa.large_string()), text=False)
            if pa.types.is_integer(arr.type)
            else copy_field(arr)
            for arr in arrays.values()
        ]
        staging.copy_text(conn, stage, list(arrays), copy_payload(fields))

    def prepare_lookup(self, conn: sa.Connection, stage: sa.Table, columns: list[str]) -> None:
        """Statistics, so the planner picks a hash (anti-)join against the stage."""
        self.analyze(conn, stage)

    def analyze(self, conn: sa.Connection, table: sa.Table) -> None:
        """``ANALYZE`` the table."""
        conn.exec_driver_sql(f"ANALYZE {conn.dialect.identifier_preparer.format_table(table)}")

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
        """Write new and changed rows; returns ``(inserted, updated)``.

        A chunk whose keys all look new (none of a sample of its keys is stored, as in the
        first full load) is COPY'd straight into the table inside a savepoint: the database
        then does what a raw COPY does and no more. If a key turns out to exist after all,
        the unique violation rolls the savepoint back and the chunk takes the general path:
        COPY to a temp table, then one changed-only ``INSERT ... ON CONFLICT DO UPDATE ...
        WHERE <changed>`` whose ``RETURNING (xmax = 0)`` tells inserts from updates. Either
        way the stored rows and the counts are the same.
        """
        if _keys_look_new(conn, table, rendered):
            inserted = _copy_new(conn, table, rendered, synced_at, deleted_at)
            if inserted is not None:
                return inserted, 0
        return self._merge(conn, table, rendered, synced_at, deleted_at)

    def insert(self, table: sa.Table) -> Any:
        """PostgreSQL's INSERT (``ON CONFLICT`` capable)."""
        return postgresql.insert(table)

    def insert_rows(
        self,
        conn: sa.Connection,
        table: sa.Table,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        on_conflict: str = "",
    ) -> None:
        """COPY the rows into a staging table, then one ``INSERT ... SELECT ... on_conflict``."""
        if not rows:
            return
        stage = self.temp_table(
            conn,
            f"{table.name}_stage",
            [sa.Column(name, table.c[name].type) for name in columns],
            on_commit_drop=True,
        )
        staging.copy_rows(conn, stage, columns, rows)
        preparer = conn.dialect.identifier_preparer
        names = ", ".join(preparer.quote(c) for c in columns)
        conn.exec_driver_sql(
            f"INSERT INTO {preparer.format_table(table)} ({names})"
            f" SELECT {names} FROM {preparer.format_table(stage)} {on_conflict}"
        )

    # --- reading ----------------------------------------------------------------------------

    def hash_prefix(self, content_hash: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """The hex prefix read as a bit string, cast to ``bigint``."""
        prefix = sa.func.substr(content_hash, 1, CHECKSUM_PREFIX_HEX)
        bits = sa.cast(sa.func.concat("x", prefix), postgresql.BIT(4 * CHECKSUM_PREFIX_HEX))
        return sa.cast(bits, sa.BigInteger)

    # --- locks ------------------------------------------------------------------------------

    @contextmanager
    def entity_lock(
        self, engine: sa.Engine, entity: str, wait: WaitForLock
    ) -> Iterator[sa.Connection]:
        """A session advisory lock held on a dedicated connection, handed to the block.

        If the process dies the connection closes and the lock goes with it, so a crashed
        run never blocks the next one.
        """
        with engine.connect() as conn:
            default = conn.default_isolation_level
            conn.execution_options(isolation_level="AUTOCOMMIT")
            key = _lock_key(entity, _warehouse_schema(conn))
            while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                wait()
            # The block may run transactions on this connection (the lock is per session).
            conn.commit()  # ends SQLAlchemy's autobegun (no-op) transaction
            conn.execution_options(isolation_level=default)
            try:
                yield conn
            finally:
                try:
                    if conn.in_transaction():
                        conn.rollback()
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
                except sa.exc.DBAPIError:
                    pass  # the connection is gone, and its session's lock with it

    def migration_lock(self, conn: sa.Connection) -> None:
        """A transaction advisory lock: concurrent migrations wait for each other."""
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})

    def block_inserts(self, conn: sa.Connection, table: sa.Table, timeout_seconds: int) -> None:
        """A ``SHARE`` lock on ``table``: it waits for the transactions inserting into it.

        Ids are taken at insert, not at commit, so a reader that skipped this lock could
        see a later id committed before an earlier one, and pass the earlier one by.
        """
        conn.execute(sa.text(f"SET LOCAL lock_timeout = '{int(timeout_seconds)}s'"))
        conn.execute(
            sa.text(
                f"LOCK TABLE {conn.dialect.identifier_preparer.format_table(table)} IN SHARE MODE"
            )
        )

    # --- internals --------------------------------------------------------------------------

    def _temp_table_options(self, on_commit_drop: bool) -> dict[str, Any]:
        return {"postgresql_on_commit": "DROP"} if on_commit_drop else {}

    def _temp_table_suffix(self, on_commit_drop: bool) -> str:
        return " ON COMMIT DROP" if on_commit_drop else ""

    def _merge(
        self,
        conn: sa.Connection,
        table: sa.Table,
        rendered: RenderedRows,
        synced_at: datetime,
        deleted_at: datetime | None,
    ) -> tuple[int, int]:
        """COPY to a temp table, then one changed-only upsert; ``(inserted, updated)``."""
        columns = list(rendered.columns)
        stage = self.temp_table(
            conn,
            f"_stage_{table.name}",
            [
                *(staging.stage_column(table.c[c]) for c in columns),
                sa.Column("content_hash", sa.Text),
            ],
            on_commit_drop=True,
        )
        try:
            staging.copy_text(conn, stage, [*columns, "content_hash"], rendered.copy_payload())
            deleted_value = (
                sa.cast(sa.null(), TS) if deleted_at is None else sa.literal(deleted_at, TS)
            )
            keys = key_columns(table)
            # Unchanged rows are filtered by the ON CONFLICT ... WHERE (one index probe each).
            # A pre-filtering join in the SELECT was measured slower: the planner hashes the
            # whole target table per chunk, and the costlier plan triggers JIT compilation.
            # Staged timestamps are UTC wall time, read as UTC by the session's zone.
            source = sa.select(
                *(stage.c[name] for name in columns),
                stage.c.content_hash,
                deleted_value,
                sa.literal(synced_at, TS),
            )
            written = [*columns, "content_hash", "deleted_at", "synced_at"]
            insert = postgresql.insert(table).from_select(written, source)
            excluded = insert.excluded
            upsert = insert.on_conflict_do_update(
                index_elements=keys,
                set_={c: excluded[c] for c in written if c not in keys},
                # A stored row is rewritten only when its content or its deleted state differs.
                where=sa.or_(
                    table.c.content_hash.is_distinct_from(excluded.content_hash),
                    table.c.deleted_at.is_distinct_from(excluded.deleted_at),
                ),
            ).returning(sa.literal_column("(xmax = 0)", sa.Boolean).label("inserted"))
            merged = upsert.cte("merged")
            # JIT compilation costs ~0.1-0.5 s and buys nothing for this statement; SET LOCAL
            # ends with the caller's transaction (and works behind transaction poolers).
            conn.exec_driver_sql("SET LOCAL jit = off")
            inserted, updated = conn.execute(
                sa.select(
                    sa.func.count().filter(merged.c.inserted),
                    sa.func.count().filter(sa.not_(merged.c.inserted)),
                )
            ).one()
            return int(inserted), int(updated)
        finally:
            self.drop_table(conn, stage)


def _keys_look_new(conn: sa.Connection, table: sa.Table, rendered: RenderedRows) -> bool:
    """True when none of up to ``KEY_SAMPLE`` keys spread over the chunk is stored."""
    keys = key_columns(table)
    if any(column_kind(table.c[k]) not in ("text", "integer") for k in keys):
        return False
    positions = sorted(set(np.linspace(0, len(rendered) - 1, KEY_SAMPLE).astype(int).tolist()))
    sample = {k: rendered.values[k].take(positions).to_pylist() for k in keys}
    matches = [
        sa.and_(
            *(
                table.c[k]
                == sa.cast(sa.literal(sample[k][i], sa.Text), staging.stage_column(table.c[k]).type)
                for k in keys
            )
        )
        for i in range(len(positions))
    ]
    probe = sa.select(sa.literal(1)).select_from(table).where(sa.or_(*matches)).limit(1)
    return conn.execute(probe).first() is None


def _copy_new(
    conn: sa.Connection,
    table: sa.Table,
    rendered: RenderedRows,
    synced_at: datetime,
    deleted_at: datetime | None,
) -> int | None:
    """COPY the rows straight into ``table``; None (nothing written) if a key exists."""
    columns = list(rendered.columns)
    deleted = NULL_TOKEN if deleted_at is None else _timestamp_text(deleted_at)
    # The canonical lines are already COPY text; their zone-less timestamps are UTC wall
    # time, which the session (in UTC) reads as meant.
    payload = copy_payload(
        [rendered.lines, rendered.hashes], tail=f"{deleted}\t{_timestamp_text(synced_at)}"
    )
    savepoint = conn.begin_nested()
    try:
        staging.copy_text(
            conn, table, [*columns, "content_hash", "deleted_at", "synced_at"], payload
        )
    except psycopg.errors.UniqueViolation:
        savepoint.rollback()
        return None
    except BaseException:
        savepoint.rollback()
        raise
    savepoint.commit()
    return len(rendered)


def _timestamp_text(value: datetime) -> str:
    """COPY text of a ``timestamptz``: the UTC instant with an explicit offset."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def _warehouse_schema(conn: sa.Connection) -> str | None:
    """The schema of the warehouse this session works on.

    Our engines set ``search_path`` to that one schema, which names it even before it
    exists (a lock may be taken before the first migration); any other session's is its
    ``current_schema()``.
    """
    path, current = conn.execute(
        sa.text("SELECT current_setting('search_path'), current_schema()")
    ).one()
    if "," not in path and not path.startswith("$"):
        return str(path).strip().strip('"')
    return current if current is None else str(current)


def _lock_key(entity: str, schema: str | None) -> int:
    # A stable signed 64-bit key per entity and warehouse (hash() is salted per process, so
    # not that). Advisory locks are per database: two warehouses in two schemas must not
    # block each other. A warehouse in public keeps the key it had before schemas existed,
    # so a run of an older version and one of this version still exclude each other.
    name = entity if schema in (None, "public") else f"{schema}:{entity}"
    digest = hashlib.sha256(f"inventory-sync:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
