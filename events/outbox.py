"""The transactional outbox: record an event in the transaction of the data it describes.

``record_event`` only inserts a row on the caller's connection; it never commits. The
caller's commit makes the change and its event visible together, and a rollback drops
both. Delivery (``events.delivery``) reads the outbox afterwards, in ``id`` order.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from schemas.tables import outbox_events

#: The event types this project emits, and what each is about.
EVENT_TYPES: Mapping[str, str] = {
    "sync.completed": "an entity's sync committed changes (counts, watermark)",
    "dq.report.ready": "a data-quality report was written (where it is, how it went)",
    "stock.below_reorder_point": "a SKU's available stock fell below its reorder point",
    "purchase_order.created": "a purchase order appeared in Finale",
    "purchase_order.status_changed": "a purchase order's status changed in Finale",
}


@dataclass(frozen=True)
class OutboxEvent:
    """An event as stored and as delivered (``envelope`` is the JSON body subscribers get)."""

    id: int
    event_id: str
    type: str
    entity: str
    entity_key: str
    occurred_at: datetime
    run_id: str | None
    payload: dict[str, Any]

    def envelope(self) -> dict[str, Any]:
        """The delivered body: the event's identity, type, subject and data."""
        return {
            "id": self.event_id,
            "type": self.type,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat(),
            "entity": self.entity,
            "key": self.entity_key or None,
            "run_id": self.run_id,
            "data": self.payload,
        }


def json_safe(value: Any) -> Any:
    """``value`` with Decimals as exact strings and instants as ISO 8601 text.

    Amounts travel as strings so no receiver reads 0.1 + 0.2 into them.
    """
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def record_event(
    conn: sa.Connection,
    type: str,
    *,
    entity: str,
    payload: Mapping[str, Any],
    entity_key: str = "",
    run_id: str | None = None,
    occurred_at: datetime | None = None,
) -> str:
    """Add an event to the outbox inside the caller's transaction; return its event id.

    Raises:
        ValueError: ``type`` is not one of ``EVENT_TYPES``.
    """
    return record_events(
        conn,
        type,
        entity=entity,
        rows=[(entity_key, payload)],
        run_id=run_id,
        occurred_at=occurred_at,
    )[0]


def record_events(
    conn: sa.Connection,
    type: str,
    *,
    entity: str,
    rows: list[tuple[str, Mapping[str, Any]]],
    run_id: str | None = None,
    occurred_at: datetime | None = None,
) -> list[str]:
    """Add one event of ``type`` per ``(entity_key, payload)``, in that order, in one insert.

    Raises:
        ValueError: ``type`` is not one of ``EVENT_TYPES``.
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}; known: {', '.join(EVENT_TYPES)}")
    if not rows:
        return []
    when = occurred_at or datetime.now(UTC)
    ids = [str(uuid.uuid4()) for _ in rows]
    conn.execute(
        outbox_events.insert(),
        [
            {
                "event_id": event_id,
                "type": type,
                "entity": entity,
                "entity_key": key,
                "occurred_at": when,
                "run_id": run_id,
                "payload": json_safe(payload),
            }
            for event_id, (key, payload) in zip(ids, rows, strict=True)
        ],
    )
    return ids


def read_events(
    conn: sa.Connection, where: Any = None, limit: int | None = None
) -> list[OutboxEvent]:
    """Outbox events in ``id`` order, optionally filtered by a SQLAlchemy ``where`` clause."""
    query = sa.select(outbox_events).order_by(outbox_events.c.id)
    if where is not None:
        query = query.where(where)
    if limit is not None:
        query = query.limit(limit)
    return [OutboxEvent(**row._mapping) for row in conn.execute(query)]
