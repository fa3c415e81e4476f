"""What operators do with deliveries: list them, and replay (queue again) what they choose.

Used by ``invsync events list`` and ``invsync events replay``; plain functions on a
connection, so they run in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from events.delivery import DEAD, PENDING, queue_deliveries
from events.subscribers import SubscriberConfig
from schemas.tables import event_dead_letters, event_deliveries, outbox_events


def list_deliveries(
    conn: sa.Connection,
    *,
    status: str | None = None,
    event_type: str | None = None,
    subscriber: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Deliveries, newest event first, with their event's identity and the last error.

    Args:
        status: pending, delivered or dead.
        event_type: an exact type or ``prefix.*``.
        subscriber: a subscriber's name.
        limit: most rows returned.
    """
    query = (
        sa.select(
            outbox_events.c.event_id,
            outbox_events.c.type,
            outbox_events.c.entity,
            outbox_events.c.entity_key,
            outbox_events.c.occurred_at,
            event_deliveries.c.subscriber,
            event_deliveries.c.status,
            event_deliveries.c.attempts,
            event_deliveries.c.next_attempt_at,
            event_deliveries.c.last_status_code,
            event_deliveries.c.last_error,
            event_deliveries.c.delivered_at,
        )
        .join(outbox_events, outbox_events.c.id == event_deliveries.c.event_id)
        .order_by(outbox_events.c.id.desc(), event_deliveries.c.subscriber)
        .limit(limit)
    )
    if status is not None:
        query = query.where(event_deliveries.c.status == status)
    if subscriber is not None:
        query = query.where(event_deliveries.c.subscriber == subscriber)
    if event_type is not None:
        query = query.where(_type_filter(event_type))
    return [dict(row._mapping) for row in conn.execute(query)]


def _type_filter(pattern: str) -> Any:
    if pattern.endswith(".*"):
        prefix = pattern[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return outbox_events.c.type.like(f"{prefix}%", escape="\\")
    return outbox_events.c.type == pattern


def replay(
    conn: sa.Connection,
    configs: Sequence[SubscriberConfig],
    *,
    now: datetime,
    event_ids: Sequence[str] = (),
    subscriber: str | None = None,
    since: datetime | None = None,
) -> list[dict[str, Any]]:
    """Queue deliveries again: pending, attempts 0, due now. Returns what was queued.

    - ``event_ids`` and/or ``since`` (events that occurred at or after it): every delivery
      of those events to the subscribers (``subscriber`` alone, if given) whose types match,
      whatever its status; deliveries that do not exist yet are created, which is how a new
      subscriber receives history;
    - ``subscriber`` alone: that subscriber's dead deliveries.

    Dead letters of what was queued get ``replayed_at``. A replayed event is sent with its
    original Idempotency-Key: a receiver that already processed it can tell.

    Raises:
        ValueError: no filter, an unknown subscriber or an unknown event id.
    """
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)  # naive means UTC, as on the command line
    if not event_ids and subscriber is None and since is None:
        raise ValueError("say what to replay: --id, --subscriber and/or --since")
    targets = list(configs)
    if subscriber is not None:
        targets = [c for c in configs if c.name == subscriber]
        if not targets:
            known = ", ".join(c.name for c in configs) or "none configured"
            raise ValueError(f"--subscriber {subscriber!r} is not an enabled subscriber ({known})")
    if not event_ids and since is None:
        rows = conn.execute(
            sa.select(event_deliveries.c.event_id, outbox_events.c.type)
            .join(outbox_events, outbox_events.c.id == event_deliveries.c.event_id)
            .where(event_deliveries.c.subscriber == subscriber, event_deliveries.c.status == DEAD)
            .order_by(event_deliveries.c.event_id)
        ).all()
        plan = {targets[0].name: [(r.event_id, r.type) for r in rows]}
    else:
        query = sa.select(outbox_events.c.id, outbox_events.c.event_id, outbox_events.c.type)
        if event_ids:
            query = query.where(outbox_events.c.event_id.in_(list(event_ids)))
        if since is not None:
            query = query.where(outbox_events.c.occurred_at >= since)
        events = conn.execute(query.order_by(outbox_events.c.id)).all()
        missing = sorted(set(event_ids) - {e.event_id for e in events}) if event_ids else []
        if missing and since is None:
            raise ValueError(f"--id: no event {', '.join(missing)} in the outbox")
        plan = {c.name: [(e.id, e.type) for e in events if c.wants(e.type)] for c in targets}
    queued: list[dict[str, Any]] = []
    for name, items in plan.items():
        # In slices: SQLite allows a few thousand bound values per statement.
        for start in range(0, len(items), 500):
            queued += _requeue(conn, name, items[start : start + 500], now)
    return queued


def _requeue(
    conn: sa.Connection, subscriber: str, items: list[tuple[int, str]], now: datetime
) -> list[dict[str, Any]]:
    ids = [event_id for event_id, _ in items]
    if not ids:
        return []
    before = dict(
        conn.execute(
            sa.select(event_deliveries.c.event_id, event_deliveries.c.status).where(
                event_deliveries.c.subscriber == subscriber, event_deliveries.c.event_id.in_(ids)
            )
        ).all()
    )
    queue_deliveries(conn, subscriber, ids, now)
    conn.execute(
        event_deliveries.update()
        .where(event_deliveries.c.subscriber == subscriber, event_deliveries.c.event_id.in_(ids))
        .values(status=PENDING, attempts=0, next_attempt_at=now, delivered_at=None)
    )
    conn.execute(
        event_dead_letters.update()
        .where(
            event_dead_letters.c.subscriber == subscriber,
            event_dead_letters.c.event_id.in_(ids),
            event_dead_letters.c.replayed_at.is_(None),
        )
        .values(replayed_at=now)
    )
    uuids = dict(
        conn.execute(
            sa.select(outbox_events.c.id, outbox_events.c.event_id).where(
                outbox_events.c.id.in_(ids)
            )
        ).all()
    )
    return [
        {
            "event_id": uuids[event_id],
            "type": event_type,
            "subscriber": subscriber,
            "was": before.get(event_id, "new"),
        }
        for event_id, event_type in items
    ]
