"""Stock levels: partial sums staged across chunks, aggregated in SQL, merged if changed.

Finale reports stock per inventory item, so one (sku, facility) pair is spread over many
records and chunks, and only the whole read says what a pair holds. ``StockStager.add``
pre-aggregates each chunk in pandas and appends the partial sums to a temp table;
``merge`` sums them per pair with ``GROUP BY``, derives ``quantity_available = on_hand -
reserved``, upserts only the pairs whose content changed, and zeroes and marks deleted the
live pairs the read did not mention.

Quantities are staged as integers scaled by ``10**scale`` (4 for ``Numeric(18, 4)``), so
the sums are exact on both backends (SQLite would otherwise sum floats). Each partial row
also counts the entries it sums, so a run can account for every entry it read
(``EntryCounts``): an entry counts as inserted, updated or unchanged with its pair.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from schemas.tables import stock_levels
from warehouse import staging
from warehouse.backends import backend_for
from warehouse.canonical import render_rows, require_aware, scaled_to_text
from warehouse.load import LoadCounts, load_rendered


@dataclass(frozen=True)
class EntryCounts:
    """What a merge did, counted in staged entries rather than in pairs.

    Attributes:
        inserted: Entries of pairs written for the first time.
        updated: Entries of pairs rewritten (their sums changed, or they were deleted).
        unchanged: Entries of pairs whose sums were already stored.
        held_back: Entries of excluded pairs (left as stored; e.g. a sibling entry was
            quarantined, so their sum would be incomplete).
    """

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    held_back: int = 0


class StockStager:
    """Collects a full stock read chunk by chunk, then merges it into ``stock_levels``.

    The staging table is a session temp table with a unique name: it survives commits
    between chunks as long as the same ``Connection`` is used (on PostgreSQL: a direct or
    session-pooled connection), and a leftover from a crashed run on a pooled connection is
    never mistaken for this one. ``merge`` checks that every staged row is still there, so
    a rolled-back chunk cannot silently zero stock.

    Example::

        with engine.connect() as conn, StockStager(conn) as stager:
            for chunk in chunks:
                with conn.begin():
                    stager.add(chunk)
            with conn.begin():
                counts = stager.merge(synced_at=now)
    """

    #: Columns ``add`` expects (the ``quantity_`` prefixed names are accepted too).
    COLUMNS = ("sku", "facility_id", "on_hand", "on_order", "reserved")
    _QUANTITIES = ("on_hand", "on_order", "reserved")

    def __init__(self, conn: sa.Connection, *, table: sa.Table = stock_levels) -> None:
        """Prepare a stager on ``conn``; the temp table is created by ``open`` or ``add``.

        Args:
            conn: The connection to stage and merge on.
            table: The stock table (``schemas.tables.stock_levels``).
        """
        self._conn = conn
        self._backend = backend_for(conn)
        self._table = table
        qty_type: Any = table.c.quantity_on_hand.type
        if isinstance(qty_type, sa.types.TypeDecorator):
            qty_type = qty_type.impl_instance
        self._scale = int(qty_type.scale or 0)
        self._name = f"_stock_partials_{uuid.uuid4().hex[:12]}"
        self._partials: sa.Table | None = None
        self._staged = 0
        self.entry_counts = EntryCounts()

    @property
    def staged_rows(self) -> int:
        """Partial rows staged so far (after each chunk's own aggregation)."""
        return self._staged

    def open(self) -> None:
        """Create the staging table now (e.g. in its own committed transaction)."""
        self._ensure_partials()

    def add(self, frame: pd.DataFrame) -> int:
        """Stage one chunk of stock records.

        Args:
            frame: Columns ``sku, facility_id, on_hand, on_order, reserved`` (or
                ``quantity_on_hand`` ...). Null quantities count as 0.

        Returns:
            Partial rows staged for this chunk (one per pair in the chunk).

        Raises:
            ValueError: Wrong columns, null keys, quantities that do not fit the column.
        """
        frame = frame.rename(columns={f"quantity_{q}": q for q in self._QUANTITIES})
        if sorted(frame.columns) != sorted(self.COLUMNS):
            raise ValueError(f"stock frame columns must be {self.COLUMNS}, got {list(frame)}")
        if not len(frame):
            return 0
        table = self._table
        keys = ["sku", "facility_id"]
        partial = render_rows(table, frame[keys], columns=keys).key_frame(keys)
        for q in self._QUANTITIES:
            column = f"quantity_{q}"
            text = render_rows(table, frame[[q]].set_axis([column], axis=1), columns=[column])
            partial[q] = _text_to_scaled(text.values[column]).to_numpy(zero_copy_only=False)
        partial["entries"] = 1
        partial = partial.groupby(keys, sort=False, as_index=False).sum()
        self._stage(partial)
        self._staged += len(partial)
        return len(partial)

    def merge(
        self,
        *,
        synced_at: datetime,
        exclude_pairs: Iterable[str | tuple[str, str]] = (),
        mark_missing: bool = True,
        allow_empty: bool = False,
        batch_size: int = 50_000,
    ) -> LoadCounts:
        """Aggregate everything staged and upsert the changed pairs. Does not commit.

        Args:
            synced_at: Timezone-aware time of the sync.
            exclude_pairs: Pairs left exactly as stored, neither updated nor zeroed (e.g.
                those with a quarantined record, whose sum would be incomplete):
                ``(sku, facility_id)`` tuples or ``"sku@facility_id"`` strings.
            mark_missing: Zero and mark deleted the live pairs that were not staged (the
                stock read is always a full read).
            allow_empty: Permit merging nothing staged (would zero every pair).
            batch_size: Aggregated pairs processed per round trip.

        Returns:
            Counts over pairs; ``deleted`` are the pairs zeroed and marked deleted. The same
            merge counted in entries is left in ``entry_counts``.

        Raises:
            RuntimeError: Staged rows were lost (a commit/rollback dropped them).
            ValueError: Nothing staged and ``allow_empty`` is false.
        """
        require_aware(synced_at, "synced_at")
        conn, table = self._conn, self._table
        self._verify_staged()
        excluded = self._stage_excluded(exclude_pairs)
        agg: sa.Table | None = None
        try:
            if not self._staged and not allow_empty and _has_live_rows(conn, table, excluded):
                raise ValueError(
                    "no stock staged; refusing to zero every stock level "
                    "(pass allow_empty=True if the source really has none)"
                )
            agg = self._aggregate(excluded)
            counts = LoadCounts()
            entries = EntryCounts(held_back=self._held_back(excluded))
            last = conn.execute(sa.select(sa.func.max(agg.c.rn))).scalar_one() or 0
            for low in range(0, int(last), batch_size):
                in_batch = (agg.c.rn > low, agg.c.rn <= low + batch_size)
                query = sa.select(
                    agg.c.sku, agg.c.facility_id, *(agg.c[q] for q in self._QUANTITIES)
                ).where(*in_batch)
                batch = pd.DataFrame(conn.execute(query).all(), columns=list(self.COLUMNS))
                if len(batch):
                    stored_before = self._entries_of_stored(agg, in_batch)
                    rendered = render_rows(table, self._pairs_frame(batch))
                    counts += load_rendered(conn, table, rendered, synced_at=synced_at)
                    entries = self._attribute(agg, in_batch, stored_before, synced_at, entries)
            self.entry_counts = entries
            if mark_missing:
                counts += self._zero_missing(agg, excluded, synced_at)
            return counts
        finally:
            for temp in (agg, excluded):
                if temp is not None:
                    self._backend.drop_table(conn, temp)
            self.close()

    def close(self) -> None:
        """Drop the staging table (``merge`` does this too). Safe to call twice."""
        if self._partials is not None:
            self._backend.drop_table(self._conn, self._partials)
            self._partials = None
            self._staged = 0

    def __enter__(self) -> StockStager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._conn.closed:
            self.close()

    # --- internals -------------------------------------------------------------------------

    def _held_back(self, excluded: sa.Table | None) -> int:
        """Staged entries of the excluded pairs."""
        if excluded is None:
            return 0
        parts = self._ensure_partials()
        query = sa.select(sa.func.coalesce(sa.func.sum(parts.c.entries), 0)).where(
            sa.exists().where(
                excluded.c.sku == parts.c.sku, excluded.c.facility_id == parts.c.facility_id
            )
        )
        return int(self._conn.execute(query).scalar_one())

    def _entries_of_stored(self, agg: sa.Table, in_batch: tuple[Any, ...]) -> int:
        """Entries of the batch's pairs that the table already holds (deleted or not)."""
        table = self._table
        query = sa.select(sa.func.coalesce(sa.func.sum(agg.c.entries), 0)).where(
            *in_batch,
            sa.exists().where(table.c.sku == agg.c.sku, table.c.facility_id == agg.c.facility_id),
        )
        return int(self._conn.execute(query).scalar_one())

    def _attribute(
        self,
        agg: sa.Table,
        in_batch: tuple[Any, ...],
        stored_before: int,
        synced_at: datetime,
        so_far: EntryCounts,
    ) -> EntryCounts:
        """Add one loaded batch to the entry counts, by what the load did to each pair.

        The loader stamps ``synced_at`` on exactly the pairs it wrote; of those, the ones
        stored before were updated and the others inserted; the rest were unchanged.
        """
        table = self._table
        on_pair = sa.and_(table.c.sku == agg.c.sku, table.c.facility_id == agg.c.facility_id)
        written_entries = sa.case((table.c.synced_at == synced_at, agg.c.entries), else_=0)
        total, written = self._conn.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(agg.c.entries), 0),
                sa.func.coalesce(sa.func.sum(written_entries), 0),
            )
            .select_from(agg.outerjoin(table, on_pair))
            .where(*in_batch)
        ).one()
        unchanged = int(total) - int(written)
        updated = stored_before - unchanged
        return EntryCounts(
            inserted=so_far.inserted + int(written) - updated,
            updated=so_far.updated + updated,
            unchanged=so_far.unchanged + unchanged,
            held_back=so_far.held_back,
        )

    def _ensure_partials(self) -> sa.Table:
        if self._partials is None:
            self._partials = self._backend.temp_table(
                self._conn,
                self._name,
                [
                    sa.Column("sku", sa.Text, nullable=False),
                    sa.Column("facility_id", sa.Text, nullable=False),
                    *(sa.Column(q, sa.BigInteger, nullable=False) for q in self._QUANTITIES),
                    sa.Column("entries", sa.BigInteger, nullable=False),
                ],
                on_commit_drop=False,
            )
        return self._partials

    def _stage(self, partial: pd.DataFrame) -> None:
        arrays = {
            "sku": pa.array(partial["sku"], type=pa.large_string()),
            "facility_id": pa.array(partial["facility_id"], type=pa.large_string()),
            **{q: pa.array(partial[q], type=pa.int64()) for q in (*self._QUANTITIES, "entries")},
        }
        self._backend.stage_arrays(self._conn, self._ensure_partials(), arrays)

    def _verify_staged(self) -> None:
        conn = self._conn
        exists = self._partials is not None and self._backend.temp_table_exists(conn, self._name)
        found = 0
        if exists and self._partials is not None:
            found = conn.execute(
                sa.select(sa.func.count()).select_from(self._partials)
            ).scalar_one()
        if found != self._staged:
            raise RuntimeError(
                f"stock staging lost rows ({found} of {self._staged} left): a rollback undid "
                "staged chunks; stage every chunk and merge on the same connection, and "
                "commit each staged chunk"
            )
        if not exists:
            self._partials = None
            self._ensure_partials()

    def _stage_excluded(self, pairs: Iterable[str | tuple[str, str]]) -> sa.Table | None:
        parsed: list[tuple[str, str]] = []
        for pair in pairs:
            if isinstance(pair, str):
                sku, sep, facility = pair.rpartition("@")
                if not sep:
                    raise ValueError(f"excluded pair {pair!r} is not 'sku@facility_id'")
                parsed.append((sku, facility))
            else:
                parsed.append((str(pair[0]), str(pair[1])))
        if not parsed:
            return None
        stage = self._backend.temp_table(
            self._conn,
            f"{self._name}_excluded",
            [sa.Column("sku", sa.Text), sa.Column("facility_id", sa.Text)],
            on_commit_drop=True,
        )
        staging.insert_many(self._conn, stage, ["sku", "facility_id"], sorted(set(parsed)))
        staging.create_index(self._conn, stage, ["sku", "facility_id"])
        return stage

    def _aggregate(self, excluded: sa.Table | None) -> sa.Table:
        """Materialise the per-pair sums, numbered so they can be read in batches."""
        conn = self._conn
        parts = self._ensure_partials()
        agg = sa.Table(
            f"{self._name}_agg",
            sa.MetaData(),
            sa.Column("rn", sa.BigInteger),
            sa.Column("sku", sa.Text),
            sa.Column("facility_id", sa.Text),
            *(sa.Column(q, sa.BigInteger) for q in (*self._QUANTITIES, "entries")),
            schema=self._backend.temp_schema,
        )
        self._backend.drop_table(conn, agg)
        preparer = conn.dialect.identifier_preparer
        sums = ", ".join(
            f"CAST(SUM(p.{q}) AS BIGINT) AS {q}" for q in (*self._QUANTITIES, "entries")
        )
        where = ""
        if excluded is not None:
            where = (
                f" WHERE NOT EXISTS (SELECT 1 FROM {preparer.format_table(excluded)} e"
                " WHERE e.sku = p.sku AND e.facility_id = p.facility_id)"
            )
        # CAST(SUM()) fails loudly on PostgreSQL if a sum ever exceeds bigint.
        self._backend.create_temp_table_as(
            conn,
            agg,
            "SELECT row_number() OVER () AS rn, p.sku AS sku, p.facility_id AS facility_id, "
            f"{sums} FROM {preparer.format_table(parts)} p{where} "
            "GROUP BY p.sku, p.facility_id",
            on_commit_drop=True,
        )
        staging.create_index(conn, agg, ["rn"])
        staging.create_index(conn, agg, ["sku", "facility_id"])
        self._backend.analyze(conn, agg)
        return agg

    def _pairs_frame(self, scaled: pd.DataFrame) -> pd.DataFrame:
        """Aggregated scaled integers -> the stock table's business columns (exact text)."""
        on_hand = scaled["on_hand"].astype("int64").to_numpy()
        on_order = scaled["on_order"].astype("int64").to_numpy()
        reserved = scaled["reserved"].astype("int64").to_numpy()
        return pd.DataFrame(
            {
                "sku": scaled["sku"].astype("str"),
                "facility_id": scaled["facility_id"].astype("str"),
                "quantity_on_hand": _text_series(on_hand, self._scale),
                "quantity_on_order": _text_series(on_order, self._scale),
                "quantity_reserved": _text_series(reserved, self._scale),
                "quantity_available": _text_series(on_hand - reserved, self._scale),
            }
        )

    def _zero_missing(
        self, agg: sa.Table, excluded: sa.Table | None, synced_at: datetime
    ) -> LoadCounts:
        conn, table = self._conn, self._table
        conditions = [
            table.c.deleted_at.is_(None),
            ~sa.exists().where(agg.c.sku == table.c.sku, agg.c.facility_id == table.c.facility_id),
        ]
        if excluded is not None:
            conditions.append(
                ~sa.exists().where(
                    excluded.c.sku == table.c.sku, excluded.c.facility_id == table.c.facility_id
                )
            )
        missing = conn.execute(sa.select(table.c.sku, table.c.facility_id).where(*conditions))
        keys = pd.DataFrame(missing.all(), columns=["sku", "facility_id"])
        if not len(keys):
            return LoadCounts()
        zeros = np.zeros(len(keys), dtype=np.int64)
        frame = self._pairs_frame(keys.assign(on_hand=zeros, on_order=zeros, reserved=zeros))
        tombstones = load_rendered(
            conn, table, render_rows(table, frame), synced_at=synced_at, deleted_at=synced_at
        )
        return LoadCounts(deleted=tombstones.updated)


def _has_live_rows(conn: sa.Connection, table: sa.Table, excluded: sa.Table | None) -> bool:
    query = sa.select(sa.literal(1)).where(table.c.deleted_at.is_(None))
    if excluded is not None:
        query = query.where(
            ~sa.exists().where(
                excluded.c.sku == table.c.sku, excluded.c.facility_id == table.c.facility_id
            )
        )
    return conn.execute(query.limit(1)).first() is not None


def _text_to_scaled(text: pa.Array) -> pa.Array:
    """Canonical decimal text ("-1.2500") -> integer scaled by 10**scale; null -> 0."""
    digits = pc.replace_substring(pc.fill_null(text, "0"), ".", "")
    return pc.cast(digits, pa.int64())


def _text_series(scaled: np.ndarray, scale: int) -> pd.Series:
    return pd.Series(scaled_to_text(scaled, scale).to_pandas(), dtype="str")
