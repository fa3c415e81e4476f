"""App tables as a record source of the sync engine (``pipeline.source.RecordSource``).

The engine asks a source for a full read (``iter_collection``) or for what changed in a
range (``iter_updated``), each chunk saying whether the range has been read to its end so
the watermark may move there. An app table has no 30-day windows: a changed-rows read is one
range, from the watermark (less the overlap, for rows committed late with an earlier
``updated_at``) to the instant the read started, walked by the reader's keyset paging.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

import pandas as pd

from connectors.supabase.errors import InvalidRequestError
from connectors.supabase.reader import AppTableReader
from connectors.supabase.tables import AppTable


@dataclass(frozen=True)
class ChangedRows:
    """A page of the rows changed up to ``window_end`` (``pipeline.source.ChangedChunk``)."""

    frame: pd.DataFrame
    window_end: datetime
    last_in_window: bool


class AppTableSource:
    """Reads app tables through an ``AppTableReader``, in the engine's terms.

    Args:
        reader: the direct PostgreSQL or REST reader (closed with this source).
        tables: the readable tables by name (the entity spec's ``collection``).
        clock: the current instant (aware UTC); the end of a changed-rows read.
    """

    def __init__(
        self,
        reader: AppTableReader,
        tables: Mapping[str, AppTable],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Hold the reader and the tables it may read."""
        self.reader = reader
        self.tables = dict(tables)
        self._clock = clock

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the reader's connections."""
        self.reader.close()

    def check_access(self) -> None:
        """Read one row of each table: a missing table or key fails before a run starts."""
        for table in self.tables.values():
            self.reader.check_access(table)

    def iter_collection(
        self,
        collection: str,
        *,
        page_size: int = 0,
        filter: dict[str, Any] | None = None,
        defer: Collection[str] = (),
    ) -> Iterator[pd.DataFrame]:
        """Every row of the table, in pages of the reader's page size.

        ``page_size`` and ``defer`` are Finale's concerns (the reader pages by its own
        SUPABASE_PAGE_SIZE and its columns are typed, not JSON to defer).

        Raises:
            InvalidRequestError: a table this source was not given, or a filter (an app
                table is read whole or by its cursor, never filtered).
        """
        table = self._table(collection, filter)
        yield from self.reader.read_changed(table)

    def iter_updated(
        self,
        collection: str,
        *,
        since: datetime,
        until: datetime | None = None,
        window_days: int = 0,
        overlap: timedelta = timedelta(minutes=5),
        extra_filter: dict[str, Any] | None = None,
        chunk_size: int = 0,
        defer: Collection[str] = (),
    ) -> Iterator[ChangedRows]:
        """The rows changed after ``since - overlap`` up to ``until`` (default: now).

        The last chunk is marked ``last_in_window`` with ``window_end = until``; a range
        with no change yields one empty chunk, so the watermark still moves.
        """
        table = self._table(collection, extra_filter)
        end = until if until is not None else self._clock()
        held: pd.DataFrame | None = None
        # Hold one page back: only the last may carry the range's end as a watermark.
        for page in self.reader.read_changed(table, since - overlap, until=end):
            if held is not None:
                yield ChangedRows(held, end, last_in_window=False)
            held = page
        yield ChangedRows(held if held is not None else table.empty_frame(), end, True)

    def _table(self, collection: str, filter: dict[str, Any] | None) -> AppTable:
        if filter:
            raise InvalidRequestError(
                f"{collection}: an app table is read whole or by its cursor; a server filter "
                f"({sorted(filter)}) is not supported"
            )
        try:
            return self.tables[collection]
        except KeyError:
            raise InvalidRequestError(
                f"{collection!r} is not an app table of this source; known: "
                f"{', '.join(sorted(self.tables)) or 'none'}"
            ) from None
