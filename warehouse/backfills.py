"""Which windows of a backfill are done, so a rerun skips them."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from schemas.tables import backfill_windows
from warehouse.runs import RunRecord

COUNTS = ("extracted", "inserted", "updated", "unchanged", "quarantined")


def completed_windows(
    conn: sa.Connection, backfill_id: str, entity: str
) -> set[tuple[datetime, datetime]]:
    """The (start, end) windows of ``entity`` that backfill ``backfill_id`` completed."""
    rows = conn.execute(
        sa.select(backfill_windows.c.window_start, backfill_windows.c.window_end).where(
            backfill_windows.c.backfill_id == backfill_id, backfill_windows.c.entity == entity
        )
    )
    return {(start, end) for start, end in rows}


def record_window(
    conn: sa.Connection,
    backfill_id: str,
    entity: str,
    start: datetime,
    end: datetime,
    result: RunRecord,
) -> None:
    """Mark a window done, with the counts its entity run reported (idempotent)."""
    now = datetime.now(UTC)
    conn.execute(
        sa.delete(backfill_windows).where(
            backfill_windows.c.backfill_id == backfill_id,
            backfill_windows.c.entity == entity,
            backfill_windows.c.window_start == start,
        )
    )
    conn.execute(
        sa.insert(backfill_windows).values(
            backfill_id=backfill_id,
            entity=entity,
            window_start=start,
            window_end=end,
            completed_at=now,
            synced_at=now,
            **{key: getattr(result, key) for key in COUNTS},
        )
    )
