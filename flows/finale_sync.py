"""The ``finale-sync`` flow: one subflow per entity, in dependency order.

Flows only compose: settings are loaded here at the edge, the work is in ``pipeline/`` and
``tasks/``. A failed entity does not stop the others (its dependants still run on the data
already in the warehouse); the parent flow fails at the end if any entity failed.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from connectors.finale import FinaleClient
from invsync.settings import Settings, load_settings
from pipeline.entities import ENTITIES, resolve_entities
from pipeline.sync import EntitySync, SyncOptions
from tasks.sync_tasks import finish_entity, process_chunk
from warehouse.db import create_warehouse_engine
from warehouse.migrate import upgrade


class SyncFailed(Exception):
    """One or more entities failed; the message lists them, ``summary`` has every result."""

    def __init__(self, message: str, summary: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.summary = {"error": message, **(summary or {})}


def _options(settings: Settings, **params: Any) -> SyncOptions:
    return SyncOptions(
        mode=params["mode"],
        since=params.get("since"),
        until=params.get("until"),
        chunk_size=params.get("chunk_size") or settings.sync_chunk_size,
        dry_run=params.get("dry_run", False),
        advance_watermark=params.get("advance_watermark", True),
        window_days=settings.sync_window_days,
        overlap=timedelta(minutes=settings.sync_overlap_minutes),
        quarantine_fail_ratio=settings.quarantine_fail_ratio,
        tz=settings.finale_timezone,
    )


@flow(name="sync-entity", flow_run_name="sync-{entity}-{mode}", log_prints=True)
def sync_entity(
    entity: str,
    mode: str = "incremental",
    since: datetime | None = None,
    until: datetime | None = None,
    chunk_size: int | None = None,
    dry_run: bool = False,
    run_id: str | None = None,
    advance_watermark: bool = True,
) -> dict[str, Any]:
    """Sync one entity: extract pages -> validate -> transform -> load, chunk by chunk.

    ``advance_watermark=False`` (backfills) loads the rows but leaves the watermark alone.
    """
    logger = get_run_logger()
    settings = load_settings()
    spec = ENTITIES[entity]
    options = _options(
        settings,
        mode=mode,
        since=since,
        until=until,
        chunk_size=chunk_size,
        dry_run=dry_run,
        advance_watermark=advance_watermark,
    )
    engine = create_warehouse_engine(settings.warehouse_url)
    try:
        with (
            FinaleClient(settings.finale()) as client,
            EntitySync(
                spec,
                client,
                engine,
                run_id=run_id or str(uuid.uuid4()),
                options=options,
                flow_run_id=str(flow_run.id) if flow_run.id else None,
            ) as sync,
        ):
            for chunk in sync.chunks():
                process_chunk(sync, chunk)
            result = finish_entity(sync)
    finally:
        engine.dispose()
    logger.info(
        "%s: extracted=%d inserted=%d updated=%d unchanged=%d quarantined=%d deleted=%d",
        entity,
        result.extracted,
        result.inserted,
        result.updated,
        result.unchanged,
        result.quarantined,
        result.deleted,
    )
    return result.as_dict()


@flow(name="finale-sync", log_prints=True)
def finale_sync(
    entities: list[str] | None = None,
    mode: str = "incremental",
    since: datetime | None = None,
    until: datetime | None = None,
    chunk_size: int | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Sync the chosen Finale entities (default: all) into the warehouse.

    Args:
        entities: entity names (facilities, vendors, products, stock, purchase_orders).
        mode: "incremental" (from the stored watermark) or "full" (also finds deletions
            and reconciles counts and checksums).
        since: read records updated from this instant (incremental; the watermark never
            moves backwards).
        until: read records updated up to this instant.
        chunk_size: records per chunk (memory stays flat as the account grows).
        dry_run: do everything but commit the rows.

    Returns:
        {"run_id", "entities": {name: run result}}.
    """
    logger = get_run_logger()
    specs = resolve_entities(entities)
    settings = load_settings()
    settings.finale()  # fail now, naming the variable, not halfway through the run
    upgrade(settings.warehouse_url)
    run_id = str(flow_run.id) if flow_run.id else str(uuid.uuid4())
    results: dict[str, Any] = {}
    failures: list[str] = []
    for spec in specs:
        state = sync_entity(
            entity=spec.name,
            mode=mode,
            since=since,
            until=until,
            chunk_size=chunk_size,
            dry_run=dry_run,
            run_id=run_id,
            return_state=True,
        )
        if state.is_completed():
            results[spec.name] = state.result()
        else:
            message = state.message or "failed"
            failures.append(f"{spec.name}: {message}")
            results[spec.name] = {"entity": spec.name, "status": "failed", "error": message}
            logger.error("%s failed: %s", spec.name, message)
    summary = {"run_id": run_id, "entities": results}
    if failures:
        raise SyncFailed("; ".join(failures), summary)
    return summary
