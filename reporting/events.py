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

from collections.abc import Mapping, Sequence
from typing import Any

from prefect.events import Event, emit_event

from reporting.tables import chunks_of, clean_text
from warehouse.runs import RunRecord, RunStatus

EVENT_PREFIX = "inventory-sync.sync"
EVENT_COMPLETED = f"{EVENT_PREFIX}.completed"
EVENT_DEGRADED = f"{EVENT_PREFIX}.degraded"
EVENT_FAILED = f"{EVENT_PREFIX}.failed"
RESOURCE_PREFIX = "inventory-sync.entity"

_EVENT_OF_STATUS: dict[str, str] = {
    RunStatus.SUCCEEDED: EVENT_COMPLETED,
    RunStatus.DEGRADED: EVENT_DEGRADED,
    RunStatus.FAILED: EVENT_FAILED,
    RunStatus.CRASHED: EVENT_FAILED,
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
    result: RunRecord, status: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The event payload: counts, timings, reconciliation and health; no record data.

    Args:
        result: the run's record (a failed entity's may have no counts).
        status: the entity's status JSON row, for ``health_score`` and health status.
    """
    data = result.as_dict()  # times as ISO strings, the status as its value
    counts = {
        name: data[name]
        for name in ("extracted", "inserted", "updated", "unchanged", "quarantined", "deleted")
    }
    extracted = result.extracted
    status = status or {}
    return {
        **{name: data[name] for name in ("run_id", "entity", "mode", "status")},
        **counts,
        "chunks": chunks_of(result),
        "duration_ms": result.duration_ms,
        "quarantine_share": round(result.quarantined / extracted, 6) if extracted else None,
        "watermark_after": data["watermark_after"],
        "reconciled": result.reconciled,
        "health_score": status.get("health_score"),
        "health_status": status.get("status"),
        "last_sync": status.get("last_sync"),
        "error": clean_text(result.error, limit=500),
    }


def emit_sync_event(result: RunRecord, status: Mapping[str, Any] | None = None) -> Event | None:
    """Emit the event of one finished entity run.

    Args:
        result: the run's record.
        status: the entity's row from ``pipeline.status.entity_status``, if computed.

    Returns:
        The emitted event, or ``None`` when events are disabled or no events client is
        available (``prefect.events.emit_event``'s contract).

    Raises:
        ValueError: if the result's status is not a finished run's status.
    """
    return emit_event(
        event=event_name(result.status),
        resource=entity_resource(result.entity),
        payload=sync_event_payload(result, status),
    )


#: Emitted by every data-quality report, once its results are stored and exported.
EVENT_DQ_REPORT_READY = "inventory-sync.dq.report.ready"
DQ_REPORT_RESOURCE_PREFIX = "inventory-sync.dq.report"


def dq_report_payload(
    *,
    report_id: str,
    reported_at: str,
    dataset_url: str,
    datasets: Mapping[str, str],
    results: Sequence[Mapping[str, Any]],
    files: Sequence[str] = (),
) -> dict[str, Any]:
    """The payload of ``inventory-sync.dq.report.ready``: where the report is and how it went.

    Args:
        report_id: the report (``dq_results.report_id``).
        reported_at: when, ISO 8601.
        dataset_url: ``ANALYTICS_URL`` as a reader names it (no credentials).
        datasets: dataset name -> its URL (``.../dataset=dq_results``).
        results: the report's results (``CheckResult.as_dict()``).
        files: the Parquet files the report wrote.
    """
    failed = [r for r in results if not r["passed"]]
    by_entity: dict[str, int] = {}
    for result in failed:
        by_entity[result["entity"]] = by_entity.get(result["entity"], 0) + 1
    return {
        "report_id": report_id,
        "reported_at": reported_at,
        "dataset_url": dataset_url,
        "datasets": dict(datasets),
        "table": "dq_results",
        "checks": len(results),
        "failed": len(failed),
        "failed_by_entity": by_entity,
        "failed_checks": [
            {"entity": r["entity"], "check": r["check_name"], "subject": r["subject"]}
            for r in failed
        ],
        "files": list(files),
    }


def emit_dq_report_event(payload: Mapping[str, Any]) -> Event | None:
    """Emit ``inventory-sync.dq.report.ready`` about the report
    (resource ``inventory-sync.dq.report.<report_id>``), related to each entity with a
    failed check (role ``entity``), so an automation can start a downstream job on it.

    Args:
        payload: ``dq_report_payload(...)``.

    Returns:
        The emitted event, or ``None`` when events are disabled (``emit_event``'s contract).
    """
    related = [
        {**entity_resource(entity), "prefect.resource.role": "entity"}
        for entity in payload.get("failed_by_entity", {})
    ]
    return emit_event(
        event=EVENT_DQ_REPORT_READY,
        resource={
            "prefect.resource.id": f"{DQ_REPORT_RESOURCE_PREFIX}.{payload['report_id']}",
            "prefect.resource.name": "data-quality report",
        },
        related=related or None,
        payload=dict(payload),
    )
