"""The ``finale-sync`` flow: one subflow per entity, in dependency order.

Flows only compose: settings are loaded here at the edge, the work is in ``pipeline/`` and
``tasks/``. A failed entity does not stop the others (its dependants still run on the data
already in the warehouse); the parent flow fails at the end if any entity failed.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from prefect import Flow, State, flow, get_client, get_run_logger
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound
from prefect.futures import PrefectFuture
from prefect.logging.handlers import APILogHandler
from prefect.runtime import flow_run
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from connectors.finale import FinaleClient
from connectors.finale.ratelimit import RateLimiter
from deployments.setup import shared_limit_exists
from invsync.settings import Settings, load_settings
from pipeline.entities import ENTITIES, resolve_entities
from pipeline.preflight import PreflightError, check_finale, check_warehouse
from pipeline.sync import Chunk, EntitySync, SyncOptions
from schemas.tables import sync_runs
from tasks.report_tasks import health_before, notify_and_emit, publish_artifacts
from tasks.sync_tasks import finish_entity, prepare_chunk, process_chunk
from warehouse import state
from warehouse.db import create_warehouse_engine
from warehouse.locks import EntityLocked, entity_lock
from warehouse.migrate import upgrade
from warehouse.state import CRASHED, RUNNING

#: A single entity run that takes longer than this is stopped and marked failed by Prefect.
ENTITY_TIMEOUT_SECONDS = 4 * 3600

#: The project's own loggers: their lines (retries, rate-limit pauses, window splits) belong
#: in the flow run's logs in the Prefect UI, not only in the worker's terminal.
PROJECT_LOGGERS = ("connectors", "pipeline", "warehouse")

#: Threads of ``sync-entity``'s task runner: the upper bound of SYNC_PARALLEL_CHUNKS. A run
#: never has more than its SYNC_PARALLEL_CHUNKS prepare tasks in flight, so the threads it
#: does not use are never started.
MAX_PARALLEL_CHUNKS = 16


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
        window_days=settings.sync_window_days,
        overlap=timedelta(
            minutes=settings.sync_overlap_minutes
            if params.get("overlap_minutes") is None
            else params["overlap_minutes"]
        ),
        quarantine_fail_ratio=settings.quarantine_fail_ratio,
        quarantine_fail_min_records=settings.quarantine_fail_min_records,
        tz=settings.finale_timezone,
        advance_watermark=params.get("advance_watermark", True),
        parallel_chunks=settings.sync_parallel_chunks,
    )


def _finale_client(settings: Settings) -> FinaleClient:
    """A client whose requests also draw from the Prefect global rate limit, when set up."""
    finale = settings.finale()
    shared = None
    name = settings.finale_shared_rate_limit
    # Without `invsync setup` the limit does not exist: the client's own limiter still
    # applies, and no request pays for a round trip to the Prefect API.
    if name and flow_run.id and shared_limit_exists(name):
        from prefect.concurrency.sync import rate_limit

        def shared(method: str) -> None:
            rate_limit(name, occupy=1, strict=True)

    limiter = RateLimiter.per_minute(finale.rate_limit_per_minute, shared=shared)
    return FinaleClient(finale, limiter=limiter)


def _skipped(run_id: str, entity: str, mode: str, engine: sa.Engine, reason: str) -> dict:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        state.start_run(
            conn,
            run_id=run_id,
            flow_run_id=str(flow_run.id) if flow_run.id else None,
            entity=entity,
            mode=mode,
            started_at=now,
        )
        state.finish_run(conn, run_id, entity, state.SKIPPED, error=reason, finished_at=now)
    return {
        "run_id": run_id,
        "entity": entity,
        "mode": mode,
        "status": "skipped",
        "error": reason,
        "extracted": 0,
        "inserted": 0,
        "updated": 0,
        "unchanged": 0,
        "quarantined": 0,
        "deleted": 0,
    }


@flow(
    name="sync-entity",
    flow_run_name="sync-{entity}-{mode}",
    log_prints=True,
    timeout_seconds=ENTITY_TIMEOUT_SECONDS,
    # Prefect types the parameter invariantly; its own default is cast the same way.
    task_runner=cast(
        "TaskRunner[PrefectFuture[Any]]", ThreadPoolTaskRunner(max_workers=MAX_PARALLEL_CHUNKS)
    ),
)
def sync_entity(
    entity: str,
    mode: str = "incremental",
    since: datetime | None = None,
    until: datetime | None = None,
    chunk_size: int | None = None,
    dry_run: bool = False,
    run_id: str | None = None,
    advance_watermark: bool = True,
    overlap_minutes: int | None = None,
    parent_flow_run_id: str | None = None,
) -> dict[str, Any]:
    """Sync one entity: extract pages -> validate -> transform -> load, chunk by chunk.

    Holds the entity's lock for the whole run, so no other run (another deployment, a
    backfill, the CLI) writes the same entity at the same time; if the lock is busy the run
    waits ``LOCK_WAIT_SECONDS`` and is then skipped with a log line. ``advance_watermark=False``
    (backfills) loads the rows but leaves the watermark alone; ``overlap_minutes`` overrides
    SYNC_OVERLAP_MINUTES (a backfill's windows are contiguous, so it reads with none).
    ``parent_flow_run_id`` records the run under that flow run (a backfill's) rather than
    this subflow's.
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
        overlap_minutes=overlap_minutes,
    )
    run_id = run_id or str(uuid.uuid4())
    upgrade(settings.warehouse_url)  # cheap when current; this flow may run on its own
    engine = create_warehouse_engine(settings.warehouse_url)
    try:
        with engine.connect() as conn:
            previous_health = health_before(conn, entity, settings.quarantine_fail_ratio)
        try:
            with (
                entity_lock(engine, entity, wait_seconds=settings.lock_wait_seconds) as locked,
                _project_logs_to_run(str(flow_run.id) if flow_run.id else None),
            ):
                # The run writes on the lock's own connection: it cannot go on unlocked.
                result = _run_entity(
                    settings, engine, spec, options, run_id, parent_flow_run_id, locked
                )
        except EntityLocked as exc:
            logger.warning(str(exc))
            return _skipped(run_id, entity, options.mode, engine, str(exc))
        except Exception as exc:
            with engine.connect() as conn:
                failed = state.get_run(conn, run_id, entity) or {}
            notify_and_emit(
                settings,
                engine,
                {**failed, "entity": entity, "status": "failed", "error": str(exc)},
                previous_health,
            )
            raise
        notify_and_emit(settings, engine, result, previous_health)
    finally:
        engine.dispose()
    logger.info(
        "%s: extracted=%d inserted=%d updated=%d unchanged=%d quarantined=%d deleted=%d",
        entity,
        result["extracted"],
        result["inserted"],
        result["updated"],
        result["unchanged"],
        result["quarantined"],
        result["deleted"],
    )
    return result


class _StampRun(logging.Filter):
    """Names the flow run on each record: lines from the run's other threads (read-ahead,
    parallel prepares) have no Prefect context of their own."""

    def __init__(self, flow_run_id: str) -> None:
        super().__init__()
        self.flow_run_id = flow_run_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.flow_run_id = self.flow_run_id
        return True


@contextmanager
def _project_logs_to_run(flow_run_id: str | None) -> Iterator[None]:
    """Send the project's INFO-and-above log lines to this flow run's logs while it runs."""
    if flow_run_id is None:
        yield
        return
    handler = APILogHandler(level=logging.INFO)
    handler.addFilter(_StampRun(flow_run_id))
    loggers = [logging.getLogger(name) for name in PROJECT_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def _run_entity(
    settings: Settings,
    engine: sa.Engine,
    spec: Any,
    options: SyncOptions,
    run_id: str,
    parent_flow_run_id: str | None = None,
    conn: sa.Connection | None = None,
) -> dict[str, Any]:
    with (
        _finale_client(settings) as client,
        EntitySync(
            spec,
            client,
            engine,
            run_id=run_id,
            options=options,
            flow_run_id=parent_flow_run_id or (str(flow_run.id) if flow_run.id else None),
            conn=conn,
        ) as sync,
    ):
        if options.parallel_chunks > 1:
            _load_parallel(sync, options.parallel_chunks)
        else:
            for chunk in sync.chunks():
                process_chunk(sync, chunk)
        return finish_entity(sync).as_dict()


def _load_parallel(sync: EntitySync, parallel_chunks: int) -> None:
    """Prepare up to ``parallel_chunks`` chunks at once on the task runner; load in order.

    Each chunk read (``EntitySync.raw_chunks``, its pages read ahead by ``prefetch``) is
    submitted as a ``prepare-chunk`` task (transform, validate, render: no database access),
    and the chunks are then loaded and committed strictly in the order they were read, on the
    run's one connection, so the watermark only ever moves past committed chunks. At most
    ``parallel_chunks`` chunks are submitted or loading at a time; with the read-ahead,
    memory stays bounded by ``(parallel_chunks + prefetch + 1) * chunk_size`` records.
    """
    pending: deque[PrefectFuture[Chunk]] = deque()
    raw_chunks = sync.raw_chunks()
    try:
        for raw in raw_chunks:
            pending.append(prepare_chunk.submit(sync, raw))
            del raw  # the task holds it; do not keep it alive past its load
            if len(pending) >= parallel_chunks:
                process_chunk(sync, pending.popleft().result())
        while pending:
            process_chunk(sync, pending.popleft().result())
    finally:
        close = getattr(raw_chunks, "close", None)
        if close is not None:
            close()
        # On an error, let the prepares still in flight end before the run's connection
        # closes (they do not use it, but their results must not outlive the run).
        for future in pending:
            future.wait()


def _mark_crashed(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """on_crashed hook: the process died mid-run; close its 'running' rows as crashed."""
    try:
        settings = load_settings()
        engine = create_warehouse_engine(settings.warehouse_url)
        with engine.begin() as conn:
            conn.execute(
                sa.update(sync_runs)
                .where(sync_runs.c.run_id == str(flow_run.id), sync_runs.c.status == RUNNING)
                .values(
                    status=CRASHED,
                    finished_at=datetime.now(UTC),
                    error=f"flow run crashed: {state.message or 'no message'}",
                )
            )
        engine.dispose()
    except Exception:  # a hook must never raise
        logging.getLogger(__name__).exception("could not mark crashed runs")


def _close_dead_runs(engine: sa.Engine) -> list[tuple[str, str]]:
    """Mark 'running' rows crashed whose Prefect flow run has ended or is gone.

    A process killed outright (SIGKILL, out of memory) runs no hook; its worker reports the
    flow run crashed, and this sweep, at the start of every sync, then closes its rows at
    once instead of after STALE_RUN_MINUTES. Returns (entity, reason) of each row closed.
    """
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(sync_runs.c.id, sync_runs.c.entity, sync_runs.c.flow_run_id).where(
                sync_runs.c.status == RUNNING, sync_runs.c.flow_run_id.is_not(None)
            )
        ).all()
    dead: list[tuple[int, str, str]] = []
    if rows:
        with get_client(sync_client=True) as client:
            for row_id, entity, run in rows:
                try:
                    found = client.read_flow_run(uuid.UUID(run))
                except ObjectNotFound:
                    dead.append((row_id, entity, f"its flow run {run} is gone from Prefect"))
                    continue
                except ValueError:  # not a flow run id (a run from plain code)
                    continue
                if found.state is not None and found.state.is_final():
                    reason = f"its flow run {run} ended {found.state.name} before the run did"
                    dead.append((row_id, entity, reason))
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for row_id, _, reason in dead:
            conn.execute(
                sa.update(sync_runs)
                .where(sync_runs.c.id == row_id, sync_runs.c.status == RUNNING)
                .values(status=CRASHED, finished_at=now, error=f"crashed: {reason}")
            )
    return [(entity, reason) for _, entity, reason in dead]


@flow(name="finale-sync", log_prints=True, on_crashed=[_mark_crashed])
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
            moves backwards, nor past a gap).
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
    try:
        # A dead warehouse, a rejected key or an unreachable Finale fails the run once,
        # here, rather than every entity in turn.
        check_warehouse(settings.warehouse_url)
        with _finale_client(settings) as client:
            check_finale(client)
    except PreflightError as exc:
        logger.error("sync not started: %s", exc)
        raise SyncFailed(f"not started: {exc}") from None
    engine = create_warehouse_engine(settings.warehouse_url)
    for entity, reason in _close_dead_runs(engine):
        logger.warning("%s: a run was left 'running' and is marked crashed: %s", entity, reason)
    with engine.begin() as conn:
        stale = state.mark_stale_runs(
            conn, timedelta(minutes=settings.stale_run_minutes), datetime.now(UTC)
        )
    if stale:
        logger.warning(
            "marked %d run(s) stale: still 'running' past %d minutes",
            stale,
            settings.stale_run_minutes,
        )
    run_id = str(flow_run.id) if flow_run.id else str(uuid.uuid4())
    results: dict[str, Any] = {}
    failures: list[str] = []
    for spec in specs:
        entity_state = sync_entity(
            entity=spec.name,
            mode=mode,
            since=since,
            until=until,
            chunk_size=chunk_size,
            dry_run=dry_run,
            run_id=run_id,
            return_state=True,
        )
        if entity_state.is_completed():
            results[spec.name] = entity_state.result()
        else:
            message = entity_state.message or "failed"
            failures.append(f"{spec.name}: {message}")
            with engine.connect() as conn:
                recorded = state.get_run(conn, run_id, spec.name) or {}
            results[spec.name] = {
                **recorded,
                "entity": spec.name,
                "status": "failed",
                "error": message,
            }
            logger.error("%s failed: %s", spec.name, message)
    publish_artifacts(engine, list(results.values()), run_id, settings.quarantine_fail_ratio)
    engine.dispose()
    summary = {"run_id": run_id, "entities": results}
    if failures:
        raise SyncFailed("; ".join(failures), summary)
    return summary
