"""Load chunks into the warehouse: idempotent, changed-rows-only, inside the caller's
transaction.

``load_chunk`` writes a DataFrame of business columns into its table. Each row's
``content_hash`` (see ``warehouse.canonical``) is compared with the stored one, so a row is
written only when it is new, changed, or coming back after being marked deleted; an
unchanged row is not rewritten (no new row version, its ``synced_at`` stays; PostgreSQL's
ON CONFLICT only takes its row lock). Nothing here commits: rows, watermark and run counts
commit together, or not at all, in the caller's transaction.

How rows are staged and upserted is the database's business (``warehouse.backends``):
COPY and one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE <changed>`` on PostgreSQL, a
read of the stored hashes and an ``executemany`` of the changed rows on SQLite.

Full reads also detect deletions: either hand every seen key to ``mark_missing`` at once,
or stage them chunk by chunk (``begin_seen_keys`` / ``add_seen_keys``, surviving the
per-chunk commits on the same connection) and call ``mark_missing`` without ``seen``.
``table_checksum`` / ``frame_checksum`` / ``ChecksumAccumulator`` reconcile source and
warehouse. Stock has its own path (``warehouse.stock.StockStager``), built on
``load_rendered``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from schemas.tables import TS
from warehouse.backends import backend_for
from warehouse.canonical import (
    Checksum,
    RenderedRows,
    business_columns,
    checksum_of_hashes,
    column_kind,
    key_columns,
    render_rows,
    require_aware,
)
from warehouse.staging import key_stage_columns, stage_column

__all__ = [
    "Checksum",
    "ChecksumAccumulator",
    "LoadCounts",
    "add_seen_keys",
    "add_seen_rendered",
    "begin_seen_keys",
    "delete_surplus_lines",
    "frame_checksum",
    "has_live_rows",
    "load_chunk",
    "mark_deleted_children",
    "mark_missing",
    "reset_drifted_hashes",
    "stage_column",
    "table_checksum",
]

_SEEN_INFO_KEY = "warehouse.seen_keys"


@dataclass(frozen=True)
class LoadCounts:
    """What a load did. ``inserted + updated + unchanged`` is the number of input rows.

    Attributes:
        inserted: New keys written.
        updated: Existing keys rewritten (content changed, or the row was deleted before).
        unchanged: Rows not written, including ``duplicates``.
        duplicates: Rows dropped because a later row in the same chunk had the same key
            (last one wins); already counted in ``unchanged``.
        deleted: Rows marked deleted (stock merges only; ``load_chunk`` never deletes).
        checksum: Checksum of the rows this load made current (after de-duplication); add
            them up across chunks to reconcile with ``table_checksum``.
        hashes: The ``content_hash`` of those rows (one ``load_chunk`` result only; ``None``
            on sums), e.g. for a ``ChecksumAccumulator``.
    """

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    deleted: int = 0
    checksum: Checksum = field(default_factory=lambda: Checksum(0, 0))
    hashes: pa.Array | None = field(default=None, compare=False, repr=False)

    @property
    def rows(self) -> int:
        """Input rows accounted for (``inserted + updated + unchanged``)."""
        return self.inserted + self.updated + self.unchanged

    def __add__(self, other: LoadCounts) -> LoadCounts:
        return LoadCounts(
            inserted=self.inserted + other.inserted,
            updated=self.updated + other.updated,
            unchanged=self.unchanged + other.unchanged,
            duplicates=self.duplicates + other.duplicates,
            deleted=self.deleted + other.deleted,
            checksum=self.checksum + other.checksum,
        )

    def as_run_counts(self) -> dict[str, int]:
        """The counts as ``warehouse.runs.add_run_counts`` keyword arguments."""
        return {
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
        }


class ChecksumAccumulator:
    """Adds up the source side of a reconciliation, chunk by chunk.

    Example::

        source = ChecksumAccumulator()
        for chunk in chunks:
            source.add(load_chunk(conn, table, chunk, synced_at=now).hashes)
        assert source.result() == tuple(table_checksum(conn, table))

    A key read twice in one full read (in two chunks) is counted twice, while the
    warehouse holds it once: a count mismatch then means "duplicates in the source read",
    not necessarily lost rows.
    """

    def __init__(self) -> None:
        """Start from the empty checksum."""
        self._checksum = Checksum(0, 0)

    def add(
        self, data: Checksum | LoadCounts | pa.Array | pd.Series | Iterable[str] | None
    ) -> None:
        """Add a chunk: its ``Checksum``, its ``LoadCounts``, or its content hashes."""
        if data is None:
            return
        if isinstance(data, LoadCounts):
            data = data.checksum
        self._checksum += data if isinstance(data, Checksum) else checksum_of_hashes(data)

    @property
    def checksum(self) -> Checksum:
        """Everything added so far."""
        return self._checksum

    def result(self) -> tuple[int, str]:
        """``(count, checksum)`` as ``sync_runs.source_count`` / ``source_checksum``."""
        return self._checksum.count, self._checksum.checksum


def load_chunk(
    conn: sa.Connection, table: sa.Table, frame: pd.DataFrame, *, synced_at: datetime
) -> LoadCounts:
    """Upsert one chunk of rows into ``table``, writing only new or changed rows.

    Does not commit. Rows with the same key within ``frame``: the last one wins. A row that
    was marked deleted and appears again is revived (``deleted_at`` cleared).

    Args:
        conn: Connection inside the caller's transaction (an engine from
            ``warehouse.db.create_warehouse_engine``).
        table: Target table from ``schemas.tables``.
        frame: Exactly the table's business columns (all but ``content_hash``,
            ``deleted_at``, ``synced_at``), in any order and any reasonable dtypes.
        synced_at: Timezone-aware time stamped on the rows written.

    Returns:
        The counts; ``unchanged`` includes in-chunk duplicates.

    Raises:
        ValueError: Bad columns, null keys, naive timestamps, values that do not fit.
    """
    require_aware(synced_at, "synced_at")
    rendered = render_rows(table, frame)
    return load_rendered(conn, table, rendered, synced_at=synced_at)


def load_rendered(
    conn: sa.Connection,
    table: sa.Table,
    rendered: RenderedRows,
    *,
    synced_at: datetime,
    deleted_at: datetime | None = None,
) -> LoadCounts:
    """``load_chunk`` for rows already rendered (``warehouse.canonical.render_rows``).

    With ``deleted_at`` the rows are written as tombstones (stock pairs that vanished).
    """
    rendered, duplicates = drop_duplicate_keys(rendered, key_columns(table))
    if not len(rendered):
        return LoadCounts(unchanged=duplicates, duplicates=duplicates)
    inserted, updated = backend_for(conn).upsert(
        conn, table, rendered, synced_at=synced_at, deleted_at=deleted_at
    )
    return LoadCounts(
        inserted=inserted,
        updated=updated,
        unchanged=len(rendered) - inserted - updated + duplicates,
        duplicates=duplicates,
        checksum=checksum_of_hashes(rendered.hashes),
        hashes=rendered.hashes,
    )


# --- deletions ------------------------------------------------------------------------------


def begin_seen_keys(conn: sa.Connection, table: sa.Table) -> None:
    """Start collecting the keys a full read of ``table`` sees, for ``mark_missing``.

    The keys go to a temp table that lives as long as the database session, so chunks can
    commit in between; keep using the same ``Connection`` (on PostgreSQL, connect directly
    or through a session-mode pooler: a transaction-mode pooler would lose it). Calling it
    again starts over.
    """
    _seen_registry(conn).pop(table.name, None)
    stage = backend_for(conn).temp_table(
        conn, f"_seen_{table.name}", key_stage_columns(table), on_commit_drop=False
    )
    _seen_registry(conn)[table.name] = stage


def add_seen_keys(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> int:
    """Add the keys in ``frame`` (its key columns; others ignored) to the seen set.

    Rows with a null key part are skipped (they can match no row). Returns keys added.
    """
    stage = _seen_registry(conn).get(table.name)
    if stage is None:
        raise RuntimeError(f"call begin_seen_keys(conn, {table.name}) first, on this connection")
    keys = key_columns(table)
    missing = [k for k in keys if k not in frame.columns]
    if missing:
        raise ValueError(f"{table.name}: seen keys lack column(s) {missing}")
    present = frame[keys].dropna()
    if not len(present):
        return 0
    return add_seen_rendered(conn, table, render_rows(table, present, columns=keys))


def add_seen_rendered(conn: sa.Connection, table: sa.Table, rendered: RenderedRows) -> int:
    """Add the keys of already rendered rows (keys are never null there) to the seen set."""
    stage = _seen_registry(conn).get(table.name)
    if stage is None:
        raise RuntimeError(f"call begin_seen_keys(conn, {table.name}) first, on this connection")
    if len(rendered):
        backend_for(conn).stage_rendered(conn, stage, rendered, key_columns(table))
    return len(rendered)


def mark_missing(
    conn: sa.Connection,
    table: sa.Table,
    seen: pd.DataFrame | pd.Series | sa.Table | None = None,
    *,
    synced_at: datetime,
    allow_empty: bool = False,
) -> int:
    """After a full read, mark live rows whose key was not seen as deleted.

    Sets ``deleted_at`` and ``synced_at`` to ``synced_at`` on rows of ``table`` that are not
    deleted yet and whose key is not in the seen set. Does not commit.

    Args:
        conn: Connection inside the caller's transaction.
        table: Table from ``schemas.tables``.
        seen: Every key the full read returned: a DataFrame holding the key columns (other
            columns are ignored), a Series named like a single-column key, or a table with
            columns named like the key columns. ``None``: the keys staged with
            ``begin_seen_keys`` / ``add_seen_keys`` on this connection (dropped afterwards).
        synced_at: Timezone-aware time of the sync.
        allow_empty: Permit an empty seen set to tombstone the whole table. Off by default:
            an empty full read is far more often a broken source than an empty account.

    Returns:
        The number of rows marked deleted.
    """
    require_aware(synced_at, "synced_at")
    backend = backend_for(conn)
    keys = key_columns(table)
    created: sa.Table | None = None
    if seen is None:
        stage = _seen_registry(conn).pop(table.name, None)
        if stage is None:
            raise RuntimeError(f"no seen keys staged for {table.name}: call begin_seen_keys")
        created = stage
    elif isinstance(seen, sa.Table):
        stage = seen
    else:
        frame = seen.to_frame() if isinstance(seen, pd.Series) else seen
        missing = [k for k in keys if k not in frame.columns]
        if missing:
            raise ValueError(f"{table.name}: seen keys lack column(s) {missing}")
        present = frame[keys].dropna()
        stage = created = backend.temp_table(
            conn, f"_seen_{table.name}_once", key_stage_columns(table), on_commit_drop=True
        )
        if len(present):
            backend.stage_rendered(conn, stage, render_rows(table, present, columns=keys), keys)
    try:
        backend.prepare_lookup(conn, stage, keys)
        seen_any = conn.execute(sa.select(sa.literal(1)).select_from(stage).limit(1)).first()
        if seen_any is None and not allow_empty and has_live_rows(conn, table):
            raise ValueError(
                f"{table.name}: the full read saw no keys; refusing to mark every row deleted "
                "(pass allow_empty=True if the source really is empty)"
            )
        stamp = sa.literal(synced_at, TS)
        not_seen = ~sa.exists().where(*(stage.c[k] == table.c[k] for k in keys))
        result = conn.execute(
            sa.update(table)
            .where(table.c.deleted_at.is_(None), not_seen)
            .values(deleted_at=stamp, synced_at=stamp)
        )
        return int(result.rowcount)
    finally:
        if created is not None:
            backend.drop_table(conn, created)


def delete_surplus_lines(
    conn: sa.Connection, orders: pd.DataFrame, *, synced_at: datetime, lines_table: sa.Table
) -> int:
    """Mark deleted the stored lines an order no longer has.

    Lines are numbered 1..``line_count`` per order, so for every order in ``orders`` the
    live lines with ``line_no > line_count`` are gone from Finale. Does not commit.

    Args:
        conn: Connection inside the caller's transaction.
        orders: Frame with ``order_id`` and ``line_count`` (other columns ignored); a null
            ``line_count`` means no lines.
        synced_at: Timezone-aware time of the sync.
        lines_table: The lines table: keyed ``(order_id, line_no)``, like
            ``schemas.tables.purchase_order_lines``.

    Returns:
        Lines marked deleted.
    """
    require_aware(synced_at, "synced_at")
    frame = orders[["order_id", "line_count"]].dropna(subset=["order_id"])
    if not len(frame):
        return 0
    frame = frame.assign(line_count=frame["line_count"].fillna(0))
    # The counts are staged in a column named and typed like the lines' line_no.
    rendered = render_rows(
        lines_table,
        frame.rename(columns={"line_count": "line_no"}),
        columns=["order_id", "line_no"],
    )
    backend = backend_for(conn)
    stage = backend.temp_table(
        conn,
        "_line_counts",
        [stage_column(lines_table.c.order_id), stage_column(lines_table.c.line_no)],
        on_commit_drop=True,
    )
    try:
        backend.stage_rendered(conn, stage, rendered, ["order_id", "line_no"])
        backend.prepare_lookup(conn, stage, ["order_id"])
        stamp = sa.literal(synced_at, TS)
        surplus = sa.exists().where(
            stage.c.order_id == lines_table.c.order_id, lines_table.c.line_no > stage.c.line_no
        )
        result = conn.execute(
            sa.update(lines_table)
            .where(lines_table.c.deleted_at.is_(None), surplus)
            .values(deleted_at=stamp, synced_at=stamp)
        )
        return int(result.rowcount)
    finally:
        backend.drop_table(conn, stage)


def mark_deleted_children(
    conn: sa.Connection, child: sa.Table, parent: sa.Table, *, synced_at: datetime
) -> int:
    """Mark deleted the live rows of ``child`` whose parent row is marked deleted.

    The child's key starts with the parent's key (an order's lines): when a full read finds
    the order gone from Finale, its lines are gone too. Does not commit.

    Returns:
        Child rows marked deleted.
    """
    require_aware(synced_at, "synced_at")
    joins = [child.c[k] == parent.c[k] for k in key_columns(parent)]
    stamp = sa.literal(synced_at, TS)
    gone = sa.exists().where(*joins, parent.c.deleted_at.is_not(None))
    result = conn.execute(
        sa.update(child)
        .where(child.c.deleted_at.is_(None), gone)
        .values(deleted_at=stamp, synced_at=stamp)
    )
    return int(result.rowcount)


# --- reconciliation ---------------------------------------------------------------------------


def table_checksum(conn: sa.Connection, table: sa.Table) -> Checksum:
    """Count and checksum of the live (not deleted) rows of ``table``, computed in SQL.

    Equals ``frame_checksum`` of the same rows on either backend; unpacks as
    ``(count, checksum)``.
    """
    prefix = backend_for(conn).hash_prefix(table.c.content_hash)
    query = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(prefix), 0)).where(
        table.c.deleted_at.is_(None)
    )
    count, total = conn.execute(query).one()
    return Checksum(int(count), int(total))


def reset_drifted_hashes(conn: sa.Connection, table: sa.Table, *, batch_size: int = 50_000) -> int:
    """Re-hash the live rows of ``table``; where a row no longer matches its ``content_hash``
    (edited outside the sync), store the hash of what the row now holds.

    Loads skip rows whose incoming hash equals the stored one, and ``table_checksum`` adds
    up stored hashes, so a row changed behind the pipeline's back would otherwise never be
    rewritten nor show up in the reconciliation. Called before a full read: the drifted rows
    then differ from the source and are rewritten from it (counted as updated). Does not
    commit.

    Returns:
        Rows whose stored hash was reset.
    """
    columns = [c.name for c in business_columns(table)]
    keys = key_columns(table)
    # Numerics are read as text: rendering text is vectorised, rendering Decimals is not.
    numeric = [c for c in columns if column_kind(table.c[c]) == "numeric"]
    selected = [sa.cast(table.c[c], sa.Text) if c in numeric else table.c[c] for c in columns]
    query = sa.select(*selected, table.c.content_hash).where(table.c.deleted_at.is_(None))
    drifted: list[dict[str, Any]] = []
    # Per statement: Connection.execution_options() would change the connection for good.
    result = conn.execute(query, execution_options={"stream_results": True})
    try:
        while batch := result.fetchmany(batch_size):
            # Column-wise: pandas inspects each SQLAlchemy Row slowly when given rows.
            names = [*columns, "content_hash"]
            frame = pd.DataFrame(dict(zip(names, zip(*batch, strict=True), strict=True)))
            frame[numeric] = frame[numeric].astype(pd.StringDtype("pyarrow"))
            stored = frame.pop("content_hash").to_numpy(dtype=object)
            actual = np.asarray(render_rows(table, frame).hashes.to_pylist(), dtype=object)
            for pos in np.flatnonzero(stored != actual).tolist():
                drifted.append(
                    {**{f"k_{k}": batch[pos][columns.index(k)] for k in keys}, "h": actual[pos]}
                )
    finally:
        result.close()
    if drifted:
        update = (
            sa.update(table)
            .where(*(table.c[k] == sa.bindparam(f"k_{k}") for k in keys))
            .values(content_hash=sa.bindparam("h"))
        )
        conn.execute(update, drifted)
    return len(drifted)


def frame_checksum(
    data: pd.DataFrame | pd.Series | pa.Array | list[str], table: sa.Table | None = None
) -> Checksum:
    """Checksum of source rows, comparable with ``table_checksum``.

    Args:
        data: A frame of business columns (then ``table`` is required; duplicate keys
            count once, last wins, as ``load_chunk`` stores them), or content hashes.
        table: The table whose canonical form applies to ``data`` when it is a frame.
    """
    if isinstance(data, pd.DataFrame):
        if table is None:
            raise ValueError("frame_checksum of a DataFrame needs the table")
        rendered, _ = drop_duplicate_keys(render_rows(table, data), key_columns(table))
        return checksum_of_hashes(rendered.hashes)
    return checksum_of_hashes(data)


# --- helpers ---------------------------------------------------------------------------------


def drop_duplicate_keys(rendered: RenderedRows, keys: list[str]) -> tuple[RenderedRows, int]:
    """Keep the last row of each key; returns the rows and how many were dropped."""
    if len(rendered) < 2:
        return rendered, 0
    if len(keys) == 1 and pc.count_distinct(rendered.values[keys[0]]).as_py() == len(rendered):
        return rendered, 0  # the usual case, answered by one Arrow hash pass
    duplicated = rendered.key_frame(keys).duplicated(keep="last").to_numpy()
    count = int(duplicated.sum())
    if not count:
        return rendered, 0
    return rendered.filter(~duplicated), count


def has_live_rows(conn: sa.Connection, table: sa.Table) -> bool:
    """Whether ``table`` holds any row that is not marked deleted."""
    query = sa.select(sa.literal(1)).where(table.c.deleted_at.is_(None)).limit(1)
    return conn.execute(query).first() is not None


def _seen_registry(conn: sa.Connection) -> dict[str, sa.Table]:
    # Connection.info belongs to the DBAPI connection, like the temp tables themselves.
    registry: dict[str, sa.Table] = conn.info.setdefault(_SEEN_INFO_KEY, {})
    return registry
