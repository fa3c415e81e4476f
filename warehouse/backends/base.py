"""The interface every warehouse database implements (``WarehouseBackend``).

The loaders, the stock merge, the bookkeeping and the locks say *what* they need (a temp
table that lives until commit, a bulk fill, a changed-only upsert, an entity lock...) and
the backend of the connection's database says *how*. Backends are stateless: one instance
per database kind, picked by ``warehouse.backends.backend_for``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, ClassVar

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.schema import CreateTable, DropTable

from warehouse.canonical import RenderedRows

#: Called by a lock that is busy: sleeps before the next try, or raises to give up.
WaitForLock = Callable[[], None]


class WarehouseBackend(ABC):
    """What differs between the databases the warehouse runs on.

    Nothing here commits: every method works inside the caller's transaction (the entity
    lock aside, which holds its own connection).
    """

    #: SQLAlchemy dialect name this backend serves (``Connection.dialect.name``).
    name: ClassVar[str]
    #: The schema temp tables live in; naming it keeps a DROP away from real tables.
    temp_schema: ClassVar[str]
    #: The database has schemas: the warehouse's tables and Alembic's version table live in
    #: ``WAREHOUSE_SCHEMA``. Without, one file is one namespace.
    has_schemas: ClassVar[bool]
    #: ALTER TABLE cannot change a column in place: Alembic copies the table ("batch" mode).
    alters_by_copy: ClassVar[bool]
    #: Row-level security and roles, which the read-only API views rely on.
    has_row_level_security: ClassVar[bool]

    # --- engine -----------------------------------------------------------------------------

    @abstractmethod
    def create_engine(self, url: URL, *, schema: str, **engine_kwargs: Any) -> sa.Engine:
        """An engine for ``url`` configured for the warehouse's transactions.

        ``schema`` is where the warehouse's tables live, on databases that have schemas.
        """

    @abstractmethod
    def create_schema(self, conn: sa.Connection, schema: str) -> None:
        """Create the warehouse's ``schema`` if it is missing (databases without: nothing)."""

    def existing_warehouse_elsewhere(self, conn: sa.Connection, schema: str) -> str | None:
        """Another schema of this database holding a warehouse when ``schema`` has none.

        Databases without schemas have no elsewhere: None.
        """
        return None

    # --- staging tables ---------------------------------------------------------------------

    def temp_table(
        self,
        conn: sa.Connection,
        name: str,
        columns: Iterable[sa.Column[Any]],
        *,
        on_commit_drop: bool,
    ) -> sa.Table:
        """(Re)create an empty temporary table and return it.

        An existing temp table of that name on this connection is dropped first, so a
        leftover from an earlier failed call can never leak rows into this one.

        Args:
            conn: Connection (in the caller's transaction).
            name: Table name.
            columns: Fresh (unattached) columns.
            on_commit_drop: Drop the table when the transaction ends, where the database
                can (otherwise it lives as long as the session, until ``drop_table``).
        """
        table = sa.Table(
            name,
            sa.MetaData(),
            *columns,
            schema=self.temp_schema,
            prefixes=["TEMPORARY"],
            **self._temp_table_options(on_commit_drop),
        )
        self.drop_table(conn, table)
        conn.execute(CreateTable(table))
        return table

    def create_temp_table_as(
        self, conn: sa.Connection, table: sa.Table, query: str, *, on_commit_drop: bool
    ) -> None:
        """``CREATE TEMPORARY TABLE table AS query`` (``table`` names it and its columns)."""
        target = conn.dialect.identifier_preparer.format_table(table)
        suffix = self._temp_table_suffix(on_commit_drop)
        conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {target}{suffix} AS {query}")

    def drop_table(self, conn: sa.Connection, table: sa.Table) -> None:
        """Drop ``table`` if it exists (skipped in a failed transaction, see below).

        Inside a failed transaction the DROP would only raise over the original error, and
        the rollback removes the transaction's temp tables anyway.
        """
        if self.transaction_failed(conn):
            return
        conn.execute(DropTable(table, if_exists=True))

    @abstractmethod
    def transaction_failed(self, conn: sa.Connection) -> bool:
        """True when ``conn``'s transaction is aborted and only a rollback is allowed."""

    @abstractmethod
    def temp_table_exists(self, conn: sa.Connection, name: str) -> bool:
        """Whether this session still has the temp table ``name``."""

    @abstractmethod
    def stage_rendered(
        self, conn: sa.Connection, stage: sa.Table, rendered: RenderedRows, columns: list[str]
    ) -> None:
        """Append rendered columns (canonical text) to a staging table."""

    @abstractmethod
    def stage_arrays(
        self, conn: sa.Connection, stage: sa.Table, arrays: Mapping[str, pa.Array]
    ) -> None:
        """Append columns of plain values (strings, integers; no nulls) to a staging table."""

    @abstractmethod
    def prepare_lookup(self, conn: sa.Connection, stage: sa.Table, columns: list[str]) -> None:
        """Make a filled staging table cheap to probe by ``columns``."""

    @abstractmethod
    def analyze(self, conn: sa.Connection, table: sa.Table) -> None:
        """Refresh the planner's statistics of a filled staging table, where it keeps any."""

    # --- writing ----------------------------------------------------------------------------

    @abstractmethod
    def upsert(
        self,
        conn: sa.Connection,
        table: sa.Table,
        rendered: RenderedRows,
        *,
        synced_at: datetime,
        deleted_at: datetime | None,
    ) -> tuple[int, int]:
        """Write the new and changed rows of a de-duplicated chunk; ``(inserted, updated)``.

        A stored row is rewritten only when its ``content_hash`` or its deleted state
        differs. With ``deleted_at`` the rows are written as tombstones.
        """

    @abstractmethod
    def insert(self, table: sa.Table) -> Any:
        """The dialect's INSERT construct (with ``on_conflict_do_update`` and ``excluded``)."""

    @abstractmethod
    def insert_rows(
        self,
        conn: sa.Connection,
        table: sa.Table,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        on_conflict: str = "",
    ) -> None:
        """Insert many rows of DBAPI values, each row going through ``on_conflict``.

        Values bypass SQLAlchemy's type processing: pass them in their stored form.
        """

    # --- reading ----------------------------------------------------------------------------

    @abstractmethod
    def hash_prefix(self, content_hash: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """SQL for ``int(content_hash[:CHECKSUM_PREFIX_HEX], 16)``."""

    # --- locks ------------------------------------------------------------------------------

    @abstractmethod
    def entity_lock(
        self, engine: sa.Engine, entity: str, wait: WaitForLock
    ) -> AbstractContextManager[sa.Connection | None]:
        """Hold the entity's lock for the block; ``wait()`` is called while it is busy.

        The block gets the connection that holds the lock when the lock is a database
        session's (a run that writes on it cannot go on unlocked), else None.
        """

    @abstractmethod
    def migration_lock(self, conn: sa.Connection) -> None:
        """Serialise concurrent migrations until ``conn``'s transaction ends, if needed."""

    @abstractmethod
    def block_inserts(self, conn: sa.Connection, table: sa.Table, timeout_seconds: int) -> None:
        """Until ``conn``'s transaction ends, no other transaction inserts into ``table``,
        and those still inserting have committed or rolled back (waiting at most
        ``timeout_seconds`` for them), so every row this transaction can see is final."""

    # --- internals --------------------------------------------------------------------------

    def _temp_table_options(self, on_commit_drop: bool) -> dict[str, Any]:
        return {}

    def _temp_table_suffix(self, on_commit_drop: bool) -> str:
        return ""
