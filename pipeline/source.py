"""What the engine reads records from: a ``RecordSource``.

``pipeline.sync.EntitySync`` asks for an entity's records in two ways, a full read and a
read of what changed since an instant, and a source answers with pandas frames of raw
records (one row per record). ``connectors.finale.FinaleClient`` is the source of Finale's
entities; an app database (``connectors.supabase``) is another. The engine needs nothing
else from a source, so it never knows which one it reads.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime, timedelta
from typing import Any, Protocol

import pandas as pd


class ChangedChunk(Protocol):
    """A chunk of the records changed in a range of time.

    Attributes:
        frame: the records (may be empty, so the caller can still advance its watermark).
        window_end: the last instant (aware UTC) of the range the chunk belongs to.
        last_in_window: True when every record changed up to ``window_end`` has been
            yielded, so a watermark may move to ``window_end``.
    """

    @property
    def frame(self) -> pd.DataFrame: ...

    @property
    def window_end(self) -> datetime: ...

    @property
    def last_in_window(self) -> bool: ...


class RecordSource(Protocol):
    """A source of an entity's raw records, read in full or by what changed."""

    def iter_collection(
        self,
        collection: str,
        *,
        page_size: int = ...,
        filter: dict[str, Any] | None = None,
        defer: Collection[str] = (),
    ) -> Iterator[pd.DataFrame]:
        """Every record of ``collection``, in pages of at most ``page_size``."""
        ...

    def iter_updated(
        self,
        collection: str,
        *,
        since: datetime,
        until: datetime | None = None,
        window_days: int = ...,
        overlap: timedelta = ...,
        extra_filter: dict[str, Any] | None = None,
        chunk_size: int = ...,
        defer: Collection[str] = (),
    ) -> Iterator[ChangedChunk]:
        """The records of ``collection`` changed from ``since - overlap`` to ``until``."""
        ...
