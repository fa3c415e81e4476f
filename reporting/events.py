"""Prefect events for every entity run, for automations and the event feed.

One event per entity run:

- ``inventory-sync.sync.completed`` (status succeeded),
- ``inventory-sync.sync.degraded`` (the run finished but does not reconcile),
- ``inventory-sync.sync.failed`` (failed or crashed),

about the resource ``inventory-sync.entity.<entity>``, so an automation can trigger on,
say, "``inventory-sync.sync.failed`` for ``inventory-sync.entity.stock``" or on the absence
of ``completed`` events within an hour (a proactive freshness alert). Inside a flow run,
Prefect attaches the flow run, flow and deployment as related resources itself.

The payload carries counts, timings and the health score. It carries no record data: the
error summary is redacted and masked, and nothing else comes from Finale records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect.events import Event, emit_event

from reporting.tables import clean_text

EVENT_PREFIX = "inventory-sync.sync"
EVENT_COMPLETED = f"{EVENT_PREFIX}.completed"
EVENT_DEGRADED = f"{EVENT_PREFIX}.degraded"
EVENT_FAILED = f"{EVENT_PREFIX}.failed"
RESOURCE_PREFIX = "inventory-sync.entity"

_EVENT_OF_STATUS = {
    "succeeded": EVENT_COMPLETED,
    "degraded": EVENT_DEGRADED,
    "failed": EVENT_FAILED,
    "crashed": EVENT_FAILED,
}


def event_name(status: str) -> str:
    """The event for a finished run's status.

    Raises:
        ValueError: for a status that is not a finished run's (e.g. ``running``).
    """
    try:
        return _EVENT_OF_STATUS[status]
    except KeyError:
        raise ValueError(
            f"no sync event for run status {status!r}; expected one of "
            f"{', '.join(_EVENT_OF_STATUS)}"
        ) from None


def entity_resource(entity: str) -> dict[str, str]:
    """The event resource of an entity: ``inventory-sync.entity.<entity>``."""
    return {"prefect.resource.id": f"{RESOURCE_PREFIX}.{entity}", "prefect.resource.name": entity}


def sync_event_payload(
    result: Mapping[str, Any], status: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The event payload: counts, timings, reconciliation and health; no record data.

    Args:
        result: ``EntityRunResult.as_dict()`` (or the short dict of a failed entity).
        status: the entity's status JSON row, for ``health_score`` and health status.
    """
    counts = {
        name: int(result.get(name) or 0)
        for name in ("extracted", "inserted", "updated", "unchanged", "quarantined", "deleted")
    }
    extracted = counts["extracted"]
    reconciled = None
    if result.get("source_checksum") is not None:
        reconciled = result.get("source_count") == result.get("warehouse_count") and result.get(
            "source_checksum"
        ) == result.get("warehouse_checksum")
    status = status or {}
    return {
        "run_id": result.get("run_id"),
        "entity": result.get("entity"),
        "mode": result.get("mode"),
        "status": result.get("status"),
        **counts,
        "chunks": int(result.get("chunks") or 0),
        "duration_ms": result.get("duration_ms"),
        "quarantine_share": round(counts["quarantined"] / extracted, 6) if extracted else None,
        "watermark_after": result.get("watermark_after"),
        "reconciled": reconciled,
        "health_score": status.get("health_score"),
        "health_status": status.get("status"),
        "last_sync": status.get("last_sync"),
        "error": clean_text(result.get("error"), limit=500),
    }


def emit_sync_event(
    result: Mapping[str, Any], status: Mapping[str, Any] | None = None
) -> Event | None:
    """Emit the event of one finished entity run.

    Args:
        result: ``EntityRunResult.as_dict()`` of the run (needs ``entity`` and ``status``).
        status: the entity's row from ``pipeline.status.entity_status``, if computed.

    Returns:
        The emitted event, or ``None`` when events are disabled or no events client is
        available (``prefect.events.emit_event``'s contract).

    Raises:
        ValueError: if the result's status is not a finished run's status.
    """
    entity = str(result.get("entity"))
    return emit_event(
        event=event_name(str(result.get("status"))),
        resource=entity_resource(entity),
        payload=sync_event_payload(result, status),
    )
