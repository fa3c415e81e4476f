"""Load chunks into the warehouse: idempotent, changed-rows-only, inside the caller's
transaction.

``load_chunk`` writes a DataFrame of business columns into its table. Each row's
``content_hash`` (see ``warehouse.canonical``) is compared with the stored one, so a row is
written only when it is new, changed, or coming back after being marked deleted; an
unchanged row is not rewritten (no new row version, its ``synced_at`` stays; PostgreSQL's
ON CONFLICT only takes its row lock). Nothing here commits: rows, watermark and run counts
commit together, or not at all, in the caller's transaction.

- PostgreSQL: COPY into an ``ON COMMIT DROP`` temp table, then one
  ``INSERT ... SELECT ... ON CONFLICT DO UPDATE ... WHERE <changed>`` whose
  ``RETURNING (xmax = 0)`` tells inserts from updates.
- SQLite: stored hashes for the chunk's keys are read with one join against a temp table
  of the keys, and only new or changed rows go to an ``executemany`` upsert. The engine's
  ``BEGIN IMMEDIATE`` holds the write lock from the start, so the counts cannot go stale
  between the read and the write.

Full reads also detect deletions: either hand every seen key to ``mark_missing`` at once,
or stage them chunk by chunk (``begin_seen_keys`` / ``add_seen_keys``, surviving the
per-chunk commits on the same connection) and call ``mark_missing`` without ``seen``.
``table_checksum`` / ``frame_checksum`` / ``ChecksumAccumulator`` reconcile source and
warehouse. Stock has its own path (``warehouse.stock``; wrappers below).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as pg_insert

from schemas.tables import TS, purchase_order_lines
from warehouse import staging
from warehouse.canonical import (
    CHECKSUM_PREFIX_HEX,
    NULL_TOKEN,
    Checksum,
    RenderedRows,
    business_columns,
    checksum_of_hashes,
    column_kind,
    copy_payload,
    key_columns,
    render_rows,
    require_aware,
)

if TYPE_CHECKING:
    from warehouse.stock import StockStager

__all__ = [
    "Checksum",
    "ChecksumAccumulator",
    "LoadCounts",
    "add_seen_keys",
    "add_seen_rendered",
    "begin_seen_keys",
    "begin_stock_staging",
    "delete_surplus_lines",
    "frame_checksum",
    "has_live_rows",
    "load_chunk",
    "mark_deleted_children",
    "mark_missing",
    "merge_stock",
    "reset_drifted_hashes",
    "stage_stock_partials",
    "table_checksum",
]

_HEX_DIGITS = "0123456789abcdef"
_STRING = pa.large_string()
_SEEN_INFO_KEY = "warehouse.seen_keys"
_STOCK_INFO_KEY = "warehouse.stock_stager"


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
        """The counts as ``warehouse.state.add_run_counts`` keyword arguments."""
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
    if conn.dialect.name == "postgresql":
        inserted, updated = _pg_upsert(conn, table, rendered, synced_at, deleted_at)
    else:
        inserted, updated = _sqlite_upsert(conn, table, rendered, synced_at, deleted_at)
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
    stage = staging.temp_table(
        conn, f"_seen_{table.name}", _key_stage_columns(table), on_commit_drop=False
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
        _fill_stage(conn, stage, rendered, key_columns(table))
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
        stage = created = staging.temp_table(
            conn, f"_seen_{table.name}_once", _key_stage_columns(table), on_commit_drop=True
        )
        if len(present):
            _fill_stage(conn, stage, render_rows(table, present, columns=keys), keys)
    try:
        _prepare_lookup(conn, stage, keys)
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
            staging.drop_table(conn, created)


def delete_surplus_lines(
    conn: sa.Connection,
    orders: pd.DataFrame,
    *,
    synced_at: datetime,
    lines_table: sa.Table = purchase_order_lines,
) -> int:
    """Mark deleted the stored lines an order no longer has.

    Lines are numbered 1..``line_count`` per order, so for every order in ``orders`` the
    live lines with ``line_no > line_count`` are gone from Finale. Does not commit.

    Args:
        conn: Connection inside the caller's transaction.
        orders: Frame with ``order_id`` and ``line_count`` (other columns ignored); a null
            ``line_count`` means no lines.
        synced_at: Timezone-aware time of the sync.
        lines_table: The lines table (``schemas.tables.purchase_order_lines``).

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
    stage = staging.temp_table(
        conn,
        "_line_counts",
        [stage_column(lines_table.c.order_id), stage_column(lines_table.c.line_no)],
        on_commit_drop=True,
    )
    try:
        _fill_stage(conn, stage, rendered, ["order_id", "line_no"])
        _prepare_lookup(conn, stage, ["order_id"])
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
        staging.drop_table(conn, stage)


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
    prefix = _hash_prefix_value(conn, table.c.content_hash)
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


# --- stock (implemented in warehouse.stock) ------------------------------------------------


def begin_stock_staging(conn: sa.Connection) -> StockStager:
    """Start staging a full stock read on ``conn`` (see ``warehouse.stock.StockStager``).

    Like ``begin_seen_keys``, the staging survives per-chunk commits on this connection.
    """
    from warehouse.stock import StockStager  # stock builds on this module

    previous = conn.info.pop(_STOCK_INFO_KEY, None)
    if previous is not None:
        previous.close()
    stager = StockStager(conn)
    stager.open()
    conn.info[_STOCK_INFO_KEY] = stager
    return stager


def stage_stock_partials(conn: sa.Connection, frame: pd.DataFrame) -> int:
    """Stage one chunk of stock records (``StockStager.add``); returns partial rows."""
    return _stock_stager(conn).add(frame)


def merge_stock(
    conn: sa.Connection,
    *,
    synced_at: datetime,
    exclude_pairs: Iterable[str | tuple[str, str]] = (),
    allow_empty: bool = False,
) -> LoadCounts:
    """Merge the staged stock into ``stock_levels`` (``StockStager.merge``).

    Args:
        conn: The connection ``begin_stock_staging`` was called on.
        synced_at: Timezone-aware time of the sync.
        exclude_pairs: Pairs left exactly as stored (neither updated nor zeroed), e.g.
            those with a quarantined record: ``(sku, facility_id)`` or ``"sku@facility"``.
        allow_empty: Permit merging an empty read (zeroes every pair).
    """
    stager = _stock_stager(conn)
    try:
        return stager.merge(
            synced_at=synced_at, exclude_pairs=exclude_pairs, allow_empty=allow_empty
        )
    finally:
        conn.info.pop(_STOCK_INFO_KEY, None)


def _stock_stager(conn: sa.Connection) -> StockStager:
    stager = conn.info.get(_STOCK_INFO_KEY)
    if stager is None:
        raise RuntimeError("call begin_stock_staging(conn) first, on this connection")
    return stager  # type: ignore[no-any-return]


# --- upsert internals ------------------------------------------------------------------------


def _pg_upsert(
    conn: sa.Connection,
    table: sa.Table,
    rendered: RenderedRows,
    synced_at: datetime,
    deleted_at: datetime | None,
) -> tuple[int, int]:
    """Write new and changed rows; returns ``(inserted, updated)``.

    A chunk whose keys all look new (none of a sample of its keys is stored, as in the
    first full load) is COPY'd straight into the table inside a savepoint: the database
    then does what a raw COPY does and no more. If a key turns out to exist after all, the
    unique violation rolls the savepoint back and the chunk takes the general path: COPY to
    a temp table, then one changed-only upsert. Either way the stored rows and the counts
    are the same.
    """
    if _keys_look_new(conn, table, rendered):
        inserted = _pg_copy_new(conn, table, rendered, synced_at, deleted_at)
        if inserted is not None:
            return inserted, 0
    return _pg_merge(conn, table, rendered, synced_at, deleted_at)


#: Keys of a chunk probed before trying a direct COPY (one index lookup each).
KEY_SAMPLE = 16


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
                == sa.cast(sa.literal(sample[k][i], sa.Text), stage_column(table.c[k]).type)
                for k in keys
            )
        )
        for i in range(len(positions))
    ]
    probe = sa.select(sa.literal(1)).select_from(table).where(sa.or_(*matches)).limit(1)
    return conn.execute(probe).first() is None


def _pg_copy_new(
    conn: sa.Connection,
    table: sa.Table,
    rendered: RenderedRows,
    synced_at: datetime,
    deleted_at: datetime | None,
) -> int | None:
    """COPY the rows straight into ``table``; None (nothing written) if a key exists."""
    columns = list(rendered.columns)
    deleted = NULL_TOKEN if deleted_at is None else _pg_timestamp(deleted_at)
    # The canonical lines are already COPY text; only their timestamps lack a zone. They are
    # UTC wall time, so the COPY runs with the session zone set to UTC (inside the savepoint,
    # restored right after) instead of re-rendering every column with a "+00" suffix.
    payload = copy_payload(
        [rendered.lines, rendered.hashes], tail=f"{deleted}\t{_pg_timestamp(synced_at)}"
    )
    savepoint = conn.begin_nested()
    try:
        zone = conn.exec_driver_sql("SELECT current_setting('TimeZone')").scalar_one()
        conn.exec_driver_sql("SET LOCAL TimeZone = 'UTC'")
        staging.copy_text(
            conn, table, [*columns, "content_hash", "deleted_at", "synced_at"], payload
        )
        conn.execute(sa.select(sa.func.set_config("TimeZone", zone, True)))
    except psycopg.errors.UniqueViolation:
        savepoint.rollback()
        return None
    except BaseException:
        savepoint.rollback()
        raise
    savepoint.commit()
    return len(rendered)


def _pg_merge(
    conn: sa.Connection,
    table: sa.Table,
    rendered: RenderedRows,
    synced_at: datetime,
    deleted_at: datetime | None,
) -> tuple[int, int]:
    """COPY to a temp table, then one changed-only upsert; returns ``(inserted, updated)``."""
    columns = list(rendered.columns)
    stage = staging.temp_table(
        conn,
        f"_stage_{table.name}",
        [*(stage_column(table.c[c]) for c in columns), sa.Column("content_hash", sa.Text)],
        on_commit_drop=True,
    )
    try:
        staging.copy_text(conn, stage, [*columns, "content_hash"], rendered.copy_payload())
        selected: list[Any] = []
        for name in columns:
            if column_kind(table.c[name]) == "datetime":
                # Staged as UTC wall time (timestamp without time zone): read it as UTC
                # whatever the session's TimeZone is.
                selected.append(sa.func.timezone("UTC", stage.c[name]))
            else:
                selected.append(stage.c[name])
        deleted_value = sa.cast(sa.null(), TS) if deleted_at is None else sa.literal(deleted_at, TS)
        keys = key_columns(table)
        # Unchanged rows are filtered by the ON CONFLICT ... WHERE (one index probe each).
        # A pre-filtering join in the SELECT was measured slower: the planner hashes the
        # whole target table per chunk, and the costlier plan triggers JIT compilation.
        source = sa.select(
            *selected, stage.c.content_hash, deleted_value, sa.literal(synced_at, TS)
        )
        written = [*columns, "content_hash", "deleted_at", "synced_at"]
        insert = pg_insert(table).from_select(written, source)
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
        staging.drop_table(conn, stage)


def _sqlite_upsert(
    conn: sa.Connection,
    table: sa.Table,
    rendered: RenderedRows,
    synced_at: datetime,
    deleted_at: datetime | None,
) -> tuple[int, int]:
    """Read stored hashes, then executemany only new/changed rows; ``(inserted, updated)``."""
    columns = list(rendered.columns)
    keys = key_columns(table)
    n = len(rendered)
    exists = np.zeros(n, dtype=bool)
    changed = np.zeros(n, dtype=bool)
    incoming = rendered.hashes.to_pylist()
    writing_tombstones = deleted_at is not None
    for pos, stored_hash, stored_deleted in _sqlite_stored_state(conn, table, rendered):
        exists[pos] = True
        changed[pos] = stored_hash != incoming[pos] or stored_deleted != writing_tombstones
    write = ~exists | changed
    if write.any():
        subset = rendered.filter(write)
        synced_text = _sqlite_timestamp(synced_at)
        deleted_text = None if deleted_at is None else _sqlite_timestamp(deleted_at)
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


def _sqlite_stored_state(
    conn: sa.Connection, table: sa.Table, rendered: RenderedRows
) -> list[tuple[int, str, bool]]:
    """``(position in chunk, stored content_hash, stored row is deleted)`` per stored key."""
    keys = key_columns(table)
    stage = staging.temp_table(
        conn,
        f"_keys_{table.name}",
        [sa.Column("pos", sa.Integer, primary_key=True), *_key_stage_columns(table)],
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
        staging.drop_table(conn, stage)


def _fill_stage(
    conn: sa.Connection, stage: sa.Table, rendered: RenderedRows, columns: list[str]
) -> None:
    """Append rendered columns to a staging table (COPY / executemany)."""
    if conn.dialect.name == "postgresql":
        staging.copy_text(conn, stage, columns, rendered.copy_payload(columns, with_hash=False))
    else:
        values = [rendered.values[c].to_pylist() for c in columns]
        staging.insert_many(conn, stage, columns, list(zip(*values, strict=True)))


def _prepare_lookup(conn: sa.Connection, stage: sa.Table, columns: list[str]) -> None:
    """Make a filled staging table cheap to probe: statistics on PostgreSQL (for a hash
    anti-join), an index on SQLite (nested-loop probes)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"ANALYZE {conn.dialect.identifier_preparer.format_table(stage)}")
    else:
        staging.create_index(conn, stage, columns)


def _key_stage_columns(table: sa.Table) -> list[sa.Column[Any]]:
    return [stage_column(table.c[k]) for k in key_columns(table)]


def stage_column(column: sa.Column[Any]) -> sa.Column[Any]:
    """A fresh staging column for ``column``'s canonical text, in the matching SQL type.

    Timestamps are staged as ``timestamp without time zone`` holding UTC wall time.
    """
    if column_kind(column) == "datetime":
        return sa.Column(column.name, sa.DateTime(timezone=False))
    col_type: Any = column.type
    if isinstance(col_type, sa.types.TypeDecorator):
        col_type = col_type.impl_instance
    return sa.Column(column.name, col_type)


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


def _hash_prefix_value(conn: sa.Connection, content_hash: sa.ColumnElement[Any]) -> Any:
    """SQL for ``int(content_hash[:8], 16)``, on PostgreSQL and SQLite alike."""
    if conn.dialect.name == "postgresql":
        prefix = sa.func.substr(content_hash, 1, CHECKSUM_PREFIX_HEX)
        bits = sa.cast(sa.func.concat("x", prefix), postgresql.BIT(4 * CHECKSUM_PREFIX_HEX))
        return sa.cast(bits, sa.BigInteger)
    # SQLite has no hex-to-integer function: add up the digits' positions in "0..f".
    total: Any = sa.literal(0)
    for i in range(CHECKSUM_PREFIX_HEX):
        digit = sa.func.instr(_HEX_DIGITS, sa.func.lower(sa.func.substr(content_hash, i + 1, 1)))
        total = total + (digit - 1) * (16 ** (CHECKSUM_PREFIX_HEX - 1 - i))
    return total


def has_live_rows(conn: sa.Connection, table: sa.Table) -> bool:
    """Whether ``table`` holds any row that is not marked deleted."""
    query = sa.select(sa.literal(1)).where(table.c.deleted_at.is_(None)).limit(1)
    return conn.execute(query).first() is not None


def _seen_registry(conn: sa.Connection) -> dict[str, sa.Table]:
    # Connection.info belongs to the DBAPI connection, like the temp tables themselves.
    registry: dict[str, sa.Table] = conn.info.setdefault(_SEEN_INFO_KEY, {})
    return registry


def _pg_timestamp(value: datetime) -> str:
    """COPY text of a ``timestamptz``: the UTC instant with an explicit offset."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def _sqlite_timestamp(value: datetime) -> str:
    """The text SQLAlchemy's SQLite ``DateTime`` stores, for the UTC instant of ``value``."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
