"""Sync health per entity, as the product owner's status JSON, with a documented score.

Health score (0-100), computed from the entity's latest finished run and its latest
successful one:

    score = 100
          - 50 if the latest run failed (or crashed / went stale)
          - 20 if the latest run was degraded (source and warehouse do not reconcile)
          - min(20, 400 x quarantine share of the latest run)   (5% quarantined -> -20)
          - freshness: min(30, 10 x (age of the last success / expected interval - 1))
            once the last success is older than one interval (never synced -> -30)

    status = "failing" if the latest run failed or score < 50,
             "degraded" if score < 80, or if the latest run quarantined a larger share of
                        its records than QUARANTINE_FAIL_RATIO (the run itself fails only
                        once it also reaches QUARANTINE_FAIL_MIN_RECORDS), or if a
                        data-quality check failed as last measured (``pipeline.dq``;
                        listed in ``failed_checks``),
             else "operational".

The expected interval is the entity's ``EntitySpec.expected_interval``: its fastest schedule
in prefect.yaml (stock and products 15 min, the others 60; a test keeps the two in step).

Next to the score each row carries ``open_quarantine``: the distinct records of the entity
in quarantine now (open entries), however many runs read them. ``metrics.errors`` stays
about the latest run (the records it quarantined, +1 if it failed).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from pipeline.entities import APP_ENTITIES, ENTITIES, entity_spec
from warehouse.dq import failed_checks
from warehouse.runs import (
    FAILURE_STATUSES,
    LOADED_STATUSES,
    RunRecord,
    RunStatus,
    count_finished_runs,
    last_finished_run,
)
from warehouse.state import count_open_quarantine

FAILED_STATES = FAILURE_STATUSES


def health_score(
    latest: RunRecord | None, last_success: RunRecord | None, now: datetime, interval: timedelta
) -> int:
    """The 0-100 score described in the module docstring."""
    score = 100.0
    if latest is not None:
        if latest.status in FAILED_STATES:
            score -= 50
        elif latest.status == RunStatus.DEGRADED:
            score -= 20
        if latest.extracted:
            score -= min(20.0, 400.0 * latest.quarantined / latest.extracted)
    if last_success is None or last_success.finished_at is None:
        score -= 30
    else:
        age = now - _aware(last_success.finished_at)
        overdue = age / interval - 1
        if overdue > 0:
            score -= min(30.0, 10.0 * overdue)
    return max(0, min(100, round(score)))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


#: QUARANTINE_FAIL_RATIO's default (``invsync.settings``), for callers without settings.
DEFAULT_QUARANTINE_RATIO = 0.05


def entity_status(
    conn: sa.Connection,
    entity: str,
    now: datetime | None = None,
    quarantine_ratio: float = DEFAULT_QUARANTINE_RATIO,
) -> dict[str, Any]:
    """The status JSON of one entity, from its runs in ``sync_runs`` and its open quarantine.

    ``quarantine_ratio``: QUARANTINE_FAIL_RATIO; a latest run that quarantined a larger
    share of its records is at least degraded.
    """
    now = now or datetime.now(UTC)
    latest = last_finished_run(conn, entity)
    success = last_finished_run(conn, entity, LOADED_STATUSES)
    interval = entity_spec(entity).expected_interval
    score = health_score(latest, success, now, interval)
    too_much_quarantined = bool(
        latest and latest.extracted and latest.quarantined / latest.extracted > quarantine_ratio
    )
    failed = failed_checks(conn, entity)
    if (latest is not None and latest.status in FAILED_STATES) or score < 50:
        status = "failing"
    elif score < 80 or too_much_quarantined or failed:
        status = "degraded"
    else:
        status = "operational"
    last_sync = success.finished_at if success and success.finished_at else None
    duration = latest.duration_ms if latest else None
    return {
        "integration": "finale_inventory",
        "entity": entity,
        "status": status,
        "last_sync": _aware(last_sync).isoformat() if last_sync else None,
        "metrics": {
            "records_synced": (latest.inserted + latest.updated) if latest else 0,
            "sync_duration_ms": duration,
            "errors": (latest.quarantined + (1 if latest.status in FAILED_STATES else 0))
            if latest
            else 0,
            "next_sync": (_aware(last_sync) + interval).isoformat() if last_sync else None,
        },
        "health_score": score,
        "open_quarantine": count_open_quarantine(conn, entity),
        "last_error": latest.error if latest else None,
        "failed_checks": [check_label(r.check, r.subject) for r in failed],
    }


def check_label(check: str, subject: str) -> str:
    """``completeness[sku]``, or the check's name when it has no subject."""
    return f"{check}[{subject}]" if subject else check


def all_statuses(
    conn: sa.Connection,
    now: datetime | None = None,
    quarantine_ratio: float = DEFAULT_QUARANTINE_RATIO,
) -> list[dict[str, Any]]:
    """The status JSON of every Finale entity, in dependency order, then of each app entity
    (Supabase) that has synced: an app that never configured Supabase sees none of them."""
    names = [*ENTITIES, *(name for name in APP_ENTITIES if count_finished_runs(conn, name))]
    return [entity_status(conn, name, now, quarantine_ratio) for name in names]
