"""The ``finale-backfill`` flow: re-read a date range, window by window, resumably.

A backfill is identified by its entities and range, so running the same backfill again
(after a failure, or by accident) skips the windows it already completed. It never moves the
incremental watermark, in either direction: the hourly syncs keep their place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from connectors.finale.windows import WindowPlan
from pipeline.entities import resolve_entities
from warehouse import backfills
from warehouse.db import create_warehouse_engine
from warehouse.migrate import upgrade
from warehouse.runs import RunRecord

#: The counts a backfill adds up over its windows, per entity.
COUNTS = backfills.COUNTS


@dataclass
class BackfillSummary:
    """What a backfill did.

    Attributes:
        backfill_id: The backfill's id (``backfill_id``): the same request resumes it.
        windows: Windows in all (per entity, summed over the entities).
        skipped: Windows an earlier run of the same backfill had already done.
        entities: ``{entity: {count name: total}}`` over the windows this run synced
            (empty for an entity all of whose windows were done).
    """

    backfill_id: str
    windows: int
    skipped: int
    entities: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, result: RunRecord) -> None:
        """Add one window's entity run to its entity's totals."""
        totals = self.entities.setdefault(result.entity, {})
        for key in COUNTS:
            totals[key] = totals.get(key, 0) + getattr(result, key)


def backfill_id(entities: list[str], since: datetime, until: datetime) -> str:
    """Stable id of a backfill request: the same request resumes the same backfill."""
    text = f"{','.join(sorted(entities))}|{since.isoformat()}|{until.isoformat()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_windows(
    since: datetime, until: datetime, window_days: int, tz: tzinfo = UTC
) -> list[tuple[datetime, datetime]]:
    """Consecutive closed windows of at most ``window_days`` covering [since, until].

    The connector's ``WindowPlan`` plans them, in the account's wall-clock time, so a window
    across a daylight-saving change is never wider than Finale allows. Each window starts
    one second after the previous one ends (Finale's timestamps have one-second precision),
    so no record falls in two windows.

    Args:
        since: start of the range (timezone-aware).
        until: end of the range (timezone-aware).
        window_days: widest window, 1 to 30 days.
        tz: the Finale account's time zone (``FINALE_TIMEZONE``).

    Returns:
        ``(start, end)`` pairs as aware UTC datetimes.
    """
    plan = WindowPlan.between(since, until, overlap=timedelta(0), tz=tz, max_days=window_days)
    return [(w.start_utc, w.end_utc) for w in plan.windows()]


@flow(name="finale-backfill", log_prints=True)
def finale_backfill(
    since: datetime,
    until: datetime,
    entities: list[str] | None = None,
    chunk_size: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> BackfillSummary:
    """Re-read [since, until] for the given entities in windows of at most 30 days.

    Args:
        since: start of the range (timezone-aware).
        until: end of the range (timezone-aware).
        entities: entities to backfill (default: every incremental entity).
        chunk_size: records per chunk.
        on_progress: called with (windows done, windows total); the CLI draws a bar with it.

    Returns:
        The backfill's id, its windows, those already done and the counts per entity.
    """
    from flows.finale_sync import sync_entity_task
    from invsync.settings import load_settings
    from reporting.artifacts import ProgressArtifact

    logger = get_run_logger()
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("since and until must be timezone-aware (e.g. 2025-01-01T00:00:00Z)")
    if since >= until:
        raise ValueError(f"since ({since.isoformat()}) must be before until ({until.isoformat()})")
    settings = load_settings()
    settings.finale()
    upgrade(settings.warehouse_url, schema=settings.warehouse_schema)
    specs = [s for s in resolve_entities(entities) if s.incremental]
    names = [s.name for s in specs]
    bid = backfill_id(names, since, until)
    windows = plan_windows(
        since, until, settings.sync_window_days, ZoneInfo(settings.finale_timezone)
    )
    total = len(windows) * len(specs)
    engine = create_warehouse_engine(settings.warehouse_url, schema=settings.warehouse_schema)
    progress = ProgressArtifact(
        key=f"backfill-{bid}",
        description=(
            f"Backfill {bid}: share of its {total} windows done ({', '.join(names)}, "
            f"{since.date()} to {until.date()})"
        ),
    )
    done = 0
    summary = BackfillSummary(bid, windows=total, skipped=0, entities={n: {} for n in names})
    try:
        for spec in specs:
            with engine.connect() as conn:
                completed = backfills.completed_windows(conn, bid, spec.name)
            for start, end in windows:
                if (start, end) in completed:
                    summary.skipped += 1
                else:
                    result: RunRecord = sync_entity_task(
                        entity=spec.name,
                        mode="backfill",
                        since=start,
                        until=end,
                        chunk_size=chunk_size,
                        parent_flow_run_id=str(flow_run.id) if flow_run.id else None,
                    )
                    with engine.begin() as conn:
                        backfills.record_window(conn, bid, spec.name, start, end, result)
                    summary.add(result)
                done += 1
                progress.update(100.0 * done / total)
                if on_progress:
                    on_progress(done, total)
                logger.info(
                    "backfill %s: %s window %s..%s done (%d/%d)",
                    bid,
                    spec.name,
                    start.isoformat(),
                    end.isoformat(),
                    done,
                    total,
                )
    finally:
        engine.dispose()
    return summary
