"""How an entity's rows reach its table: the load strategies an ``EntitySpec`` names.

Like dlt's write dispositions, the strategy is data on the spec and the engine
(``pipeline.sync``) only drives it:

- ``UpsertRows``: each chunk's rows are upserted as they commit (and its child table's
  rows with them); a full read then marks the rows it did not see as deleted.
- ``SumThenMerge``: each chunk's rows are partial quantities. They are staged and summed
  per key over the whole read, and merged once at the end; a key with a quarantined part
  keeps its stored value (held back), since its sum would be incomplete.

A strategy makes one ``RunLoader`` per run (``start``). The loader counts in records read:
``load`` returns what a chunk wrote, ``finish`` what the end of the run wrote.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from warehouse import load
from warehouse.canonical import RenderedRows, business_columns, render_rows
from warehouse.stock import StockStager

#: Key of a row in its table (the primary-key values, in key-column order).
Key = tuple[Any, ...]


@dataclass(frozen=True)
class Target:
    """The tables one entity loads: its own and, optionally, a child table whose rows
    belong to one of its rows (loaded and deleted with it)."""

    table: sa.Table
    child: sa.Table | None = None

    @property
    def key_columns(self) -> list[str]:
        """The main table's primary-key columns."""
        return [c.name for c in self.table.primary_key.columns]


@dataclass(frozen=True)
class Batch:
    """One chunk's rows for the loader.

    Attributes:
        frames: table name -> rows to load (the main table's, and the child table's).
        quarantined_keys: keys of the chunk's quarantined records, where known: they
            still exist in the source (not deleted), and a summed key with one is held back.
        rendered: the main table's rows already rendered, if they were.
        clean_keys: open quarantine keys (``quarantine.source_key``) this chunk read
            cleanly -> their row in the main frame; settled once really loaded.
    """

    frames: Mapping[str, pd.DataFrame]
    quarantined_keys: Sequence[Key] = ()
    rendered: RenderedRows | None = None
    clean_keys: Mapping[str, int] = field(default_factory=dict)


@dataclass
class Written:
    """What a load wrote, counted in records read.

    Attributes:
        inserted, updated, unchanged: records by what became of them.
        held_back: records not loaded after all (their key's total was held back); they
            count as quarantined.
        deleted: rows marked deleted (not records read).
        resolved: open quarantine keys (``quarantine.source_key``) this load settled.
    """

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    held_back: int = 0
    deleted: int = 0
    resolved: set[str] = field(default_factory=set)


class RunLoader(ABC):
    """One run's loader: fed chunk by chunk on the run's connection, finished once."""

    #: The run's source checksum (what it loaded), to reconcile with the table's.
    source_hashes: load.ChecksumAccumulator

    @abstractmethod
    def load(self, conn: sa.Connection, batch: Batch, now: datetime) -> Written:
        """Load one chunk's rows inside the caller's transaction."""

    @abstractmethod
    def finish(self, conn: sa.Connection, now: datetime) -> Written:
        """Finish the run inside the caller's transaction (deletions, deferred merges)."""


class LoadStrategy(ABC):
    """How an entity loads; a field of ``EntitySpec`` (see the module docstring)."""

    #: Whether chunks are rendered for the loader while they are prepared (ahead of the
    #: load, possibly in another thread).
    renders_rows: bool = True

    @abstractmethod
    def columns(self, table: sa.Table) -> list[str]:
        """The columns of the mapped frame a chunk hands to the loader of ``table``."""

    @abstractmethod
    def start(self, conn: sa.Connection, target: Target, *, full_read: bool) -> RunLoader:
        """Begin a run's load on ``conn`` (commits what it prepares)."""


@dataclass(frozen=True)
class UpsertRows(LoadStrategy):
    """Upsert each chunk's rows (and its child rows) as it commits."""

    def columns(self, table: sa.Table) -> list[str]:
        """The table's business columns."""
        return [column.name for column in business_columns(table)]

    def start(self, conn: sa.Connection, target: Target, *, full_read: bool) -> RunLoader:
        """A loader that also collects the keys a full read saw, to find deletions."""
        return _RowUpserter(conn, target, full_read=full_read)


class _RowUpserter(RunLoader):
    def __init__(self, conn: sa.Connection, target: Target, *, full_read: bool) -> None:
        self._target = target
        self._full_read = full_read
        self.source_hashes = load.ChecksumAccumulator()
        self._track_deletions = False
        if full_read:
            with conn.begin():
                # A full read into a table with no live rows cannot find deletions: every
                # row it ends with came from the read itself. Skip collecting keys then.
                self._track_deletions = load.has_live_rows(conn, target.table)
                if self._track_deletions:
                    load.begin_seen_keys(conn, target.table)

    def load(self, conn: sa.Connection, batch: Batch, now: datetime) -> Written:
        table, child = self._target.table, self._target.child
        main = batch.frames[table.name]
        rendered = batch.rendered
        if rendered is None or len(rendered) != len(main):
            rendered = render_rows(table, main)
        loaded = load.load_rendered(conn, table, rendered, synced_at=now)
        self.source_hashes.add(loaded.hashes)
        if child is not None:
            load.load_chunk(conn, child, batch.frames[child.name], synced_at=now)
            load.delete_surplus_lines(conn, main, synced_at=now, lines_table=child)
        if self._track_deletions:
            load.add_seen_rendered(conn, table, rendered)
            # A quarantined record is still in the source: it must not be marked deleted.
            quarantined = pd.DataFrame(
                list(batch.quarantined_keys), columns=self._target.key_columns, dtype=object
            )
            load.add_seen_keys(conn, table, quarantined)
        return Written(
            inserted=loaded.inserted,
            updated=loaded.updated,
            unchanged=loaded.unchanged,
            resolved=set(batch.clean_keys),
        )

    def finish(self, conn: sa.Connection, now: datetime) -> Written:
        table, child = self._target.table, self._target.child
        written = Written()
        if not self._full_read:
            return written
        if self._track_deletions:
            written.deleted = load.mark_missing(conn, table, synced_at=now)
        if child is not None:
            # A record gone from the source takes its child rows with it.
            load.mark_deleted_children(conn, child, table, synced_at=now)
        return written


@dataclass(frozen=True)
class SumThenMerge(LoadStrategy):
    """Sum partial rows per key over the whole read, then merge the totals at the end.

    Attributes:
        parts: the mapped columns a chunk hands over: the key columns, then the
            quantities to sum (``warehouse.stock.StockStager``'s input).
    """

    parts: tuple[str, ...]
    renders_rows: bool = False

    def columns(self, table: sa.Table) -> list[str]:
        """The key columns and the partial quantities."""
        return list(self.parts)

    def start(self, conn: sa.Connection, target: Target, *, full_read: bool) -> RunLoader:
        """A loader staging partial rows in a temp table on ``conn``."""
        return _Summer(conn, target)


class _Summer(RunLoader):
    def __init__(self, conn: sa.Connection, target: Target) -> None:
        self._target = target
        self.source_hashes = load.ChecksumAccumulator()
        self._held: set[Key] = set()
        # Open quarantine keys read cleanly, by the key whose total they join: settled at
        # the merge unless that total is held back.
        self._clean: dict[str, Key] = {}
        with conn.begin():
            self._stager = StockStager(conn, table=target.table)
            self._stager.open()

    def load(self, conn: sa.Connection, batch: Batch, now: datetime) -> Written:
        main = batch.frames[self._target.table.name]
        self._stager.add(main)
        self._held.update(batch.quarantined_keys)
        if batch.clean_keys:
            keys = list(main[self._target.key_columns].itertuples(index=False, name=None))
            self._clean.update((key, keys[row]) for key, row in batch.clean_keys.items())
        return Written()

    def finish(self, conn: sa.Connection, now: datetime) -> Written:
        merged = self._stager.merge(synced_at=now, exclude_pairs=self._held)
        entries = self._stager.entry_counts
        self.source_hashes.add(merged.checksum)
        return Written(
            inserted=entries.inserted,
            updated=entries.updated,
            unchanged=entries.unchanged,
            held_back=entries.held_back,
            deleted=merged.deleted,
            resolved=_not_held(self._clean, self._held),
        )


def _not_held(clean: dict[str, Key], held: Collection[Key]) -> set[str]:
    return {source_key for source_key, key in clean.items() if key not in held}
