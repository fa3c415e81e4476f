"""The ``finale-sync`` and ``supabase-sync`` flows: one task run per entity, in dependency order.

Flows only compose: settings are loaded here at the edge, the work is in ``pipeline/`` and
``tasks/``. A failed entity does not stop the others (its dependants still run on the data
already in the warehouse); the parent flow fails at the end if any entity failed.

One entity's run (``sync_one_entity``) is a ``sync-<entity>-<mode>`` task run of the
parent flow, with its own state, logs and timeout: a task run is orchestrated by the
client, where a subflow costs several round trips to the Prefect API (about 0.2 s per
entity, most of a run that finds nothing to do; benchmarks/run_overhead.py). A backfill's
windows are such task runs too. The same body is also the ``sync-entity`` flow, for a run
of one entity on its own (from code, or the UI).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from prefect import Flow, State, flow, get_client, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound
from prefect.logging.handlers import APILogHandler
from prefect.runtime import flow_run, task_run
from prefect.settings import (
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    get_current_settings,
    temporary_settings,
)

from connectors.finale import FinaleClient
from connectors.finale.ratelimit import RateLimiter
from connectors.supabase import AppTable, Kind, SupabaseError, open_reader
from connectors.supabase.source import AppTableSource
from flows.limits import shared_limit_exists
from invsync.settings import Settings, load_settings
from pipeline.entities import APP_ENTITIES, EntitySpec, entity_spec, resolve_entities
from pipeline.preflight import PreflightError, check_finale, check_warehouse
from pipeline.sync import EntityRunResult, EntitySync, SyncOptions
from tasks.dq_tasks import check_after_sync
from tasks.report_tasks import health_before, notify_and_emit, publish_artifacts
from tasks.sync_tasks import finish_entity, process_chunk
from warehouse import runs
from warehouse.db import create_warehouse_engine
from warehouse.locks import EntityLocked, entity_lock
from warehouse.migrate import upgrade
from warehouse.runs import RunRecord, RunStatus, SyncSummary

#: A single entity run that takes longer than this is stopped and marked failed by Prefect.
ENTITY_TIMEOUT_SECONDS = 4 * 3600

#: The project's own loggers: their lines (retries, rate-limit pauses, window splits) belong
#: in the flow run's logs in the Prefect UI, not only in the worker's terminal.
PROJECT_LOGGERS = ("connectors", "pipeline", "warehouse", "writeback")


class SyncFailed(Exception):
    """One or more entities failed; the message lists them, ``summary`` has every result.

    ``summary.error`` is the message; a run that never started has no ``run_id`` and no
    entities.
    """

    def __init__(self, message: str, summary: SyncSummary | None = None) -> None:
        super().__init__(message)
        self.summary = replace(summary or SyncSummary(run_id=None), error=message)

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from both arguments (the default passes only ``args``), so the failure
        # survives a copy or a pickle with its summary.
        return type(self), (str(self), self.summary)


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
    if name and flow_run.id and shared_limit_exists(name, str(flow_run.id)):
        from prefect.concurrency.sync import rate_limit

        def shared(method: str) -> None:
            rate_limit(name, occupy=1, strict=True)

    limiter = RateLimiter.per_minute(finale.rate_limit_per_minute, shared=shared)
    return FinaleClient(finale, limiter=limiter)


def _app_source(settings: Settings, specs: list[EntitySpec]) -> AppTableSource:
    """The app's tables (Supabase) the given specs read, through the configured path."""
    tables = {
        spec.collection: AppTable(
            spec.collection,
            key=spec.key_field,
            cursor=spec.cursor_field or "updated_at",
            columns={name: Kind(kind) for name, kind in spec.source_columns.items()},
        )
        for spec in specs
    }
    return AppTableSource(open_reader(settings.supabase()), tables)


def _open_source(settings: Settings, specs: list[EntitySpec]) -> Any:
    """The record source of ``specs`` (all of one ``source``), as a context manager."""
    (source,) = {spec.source for spec in specs}
    if source == "supabase":
        return _app_source(settings, specs)
    return _finale_client(settings)


def _check_source(settings: Settings, specs: list[EntitySpec]) -> None:
    """Fail before a run if the source of ``specs`` is unreachable or refuses the key.

    Raises:
        PreflightError: naming the source and what to do.
    """
    try:
        with _open_source(settings, specs) as source:
            if isinstance(source, AppTableSource):
                source.check_access()
            else:
                check_finale(source)
    except SupabaseError as exc:
        raise PreflightError(f"Supabase: {exc}") from None


def _skipped(run_id: str, entity: str, mode: str, engine: sa.Engine, reason: str) -> RunRecord:
    now = datetime.now(UTC)
    record = RunRecord(
        run_id=run_id,
        entity=entity,
        mode=mode,
        status=RunStatus.SKIPPED,
        started_at=now,
        finished_at=now,
        duration_ms=0,
        error=reason,
        flow_run_id=str(flow_run.id) if flow_run.id else None,
    )
    with engine.begin() as conn:
        runs.start_run(
            conn,
            run_id=run_id,
            flow_run_id=record.flow_run_id,
            entity=entity,
            mode=mode,
            started_at=now,
        )
        # Only the status: the counts and watermarks the row holds stay as they are.
        runs.finish_run(conn, run_id, entity, RunStatus.SKIPPED, error=reason, finished_at=now)
    return record


def _failed(engine: sa.Engine, run_id: str, entity: str, mode: str, error: str) -> RunRecord:
    """The record of a run that failed with ``error``: what ``sync_runs`` holds of it (the
    counts it committed), or, if it failed before it was recorded, just the failure."""
    with engine.connect() as conn:
        recorded = runs.get_run(conn, run_id, entity)
    if recorded is None:
        return RunRecord(
            run_id=run_id, entity=entity, mode=mode, status=RunStatus.FAILED, error=error
        )
    return replace(recorded, status=RunStatus.FAILED, error=error)


def sync_one_entity(
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
) -> RunRecord:
    """Sync one entity: extract pages -> validate -> transform -> load, chunk by chunk.

    Run inside a Prefect flow run, as the ``sync_entity`` flow or the ``sync_entity_task``
    task. Holds the entity's lock for the whole run, so no other run (another deployment,
    a backfill, the CLI) writes the same entity at the same time; if the lock is busy the
    run waits ``LOCK_WAIT_SECONDS`` and is then skipped with a log line.
    ``advance_watermark=False`` (backfills) loads the rows but leaves the watermark alone;
    ``overlap_minutes`` overrides SYNC_OVERLAP_MINUTES (a backfill's windows are
    contiguous, so it reads with none). ``parent_flow_run_id`` records the run under that
    flow run (a backfill's) rather than the one it runs in.

    Returns:
        The run's ``EntityRunResult``, or the ``RunRecord`` of a skipped run.
    """
    logger = get_run_logger()
    settings = load_settings()
    spec = entity_spec(entity)
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
    upgrade(
        settings.warehouse_url, schema=settings.warehouse_schema
    )  # cheap when current; a flow of one entity may run on its own
    engine = create_warehouse_engine(settings.warehouse_url, schema=settings.warehouse_schema)
    try:
        with engine.connect() as conn:
            previous_health = health_before(conn, entity, settings.quarantine_fail_ratio)
        try:
            with (
                entity_lock(engine, entity, wait_seconds=settings.lock_wait_seconds) as locked,
                _project_logs_to_run(),
            ):
                # The run writes on the lock's own connection: it cannot go on unlocked.
                result = _run_entity(
                    settings, engine, spec, options, run_id, parent_flow_run_id, locked
                )
        except EntityLocked as exc:
            logger.warning(str(exc))
            return _skipped(run_id, entity, options.mode, engine, str(exc))
        except Exception as exc:
            failed = _failed(engine, run_id, entity, options.mode, str(exc))
            notify_and_emit(settings, engine, failed, previous_health)
            raise
        if not dry_run and result.status in runs.LOADED_STATUSES:
            # Measured before the health is: a failed check makes the entity degraded.
            check_after_sync(settings, engine, entity, run_id)
        notify_and_emit(settings, engine, result, previous_health)
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
    return result


#: One entity on its own, as a flow run (from code, or the UI).
sync_entity = flow(
    name="sync-entity",
    flow_run_name="sync-{entity}-{mode}",
    log_prints=True,
    timeout_seconds=ENTITY_TIMEOUT_SECONDS,
)(sync_one_entity)

#: One entity of a ``finale-sync`` / ``supabase-sync`` run, as a task run of it.
sync_entity_task = task(
    name="sync-entity",
    task_run_name="sync-{entity}-{mode}",
    log_prints=True,
    timeout_seconds=ENTITY_TIMEOUT_SECONDS,
    cache_policy=NO_CACHE,
)(sync_one_entity)


class _StampRun(logging.Filter):
    """Names the flow run (and task run) on each record: lines from the run's other threads
    (read-ahead, parallel prepares) have no Prefect context of their own."""

    def __init__(self, flow_run_id: str, task_run_id: str | None) -> None:
        super().__init__()
        self.flow_run_id = flow_run_id
        self.task_run_id = task_run_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.flow_run_id = self.flow_run_id
        if self.task_run_id is not None:
            record.task_run_id = self.task_run_id
        return True


@contextmanager
def _project_logs_to_run() -> Iterator[None]:
    """Send the project's INFO-and-above log lines to the logs of the flow run (and task
    run) this runs in, while it runs."""
    if flow_run.id is None:
        yield
        return
    handler = APILogHandler(level=logging.INFO)
    handler.addFilter(_StampRun(str(flow_run.id), str(task_run.id) if task_run.id else None))
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
    spec: EntitySpec,
    options: SyncOptions,
    run_id: str,
    parent_flow_run_id: str | None = None,
    conn: sa.Connection | None = None,
) -> EntityRunResult:
    with (
        _open_source(settings, [spec]) as source,
        EntitySync(
            spec,
            source,
            engine,
            run_id=run_id,
            options=options,
            flow_run_id=parent_flow_run_id or (str(flow_run.id) if flow_run.id else None),
            conn=conn,
        ) as sync,
    ):
        # Read and prepared ahead (SYNC_PARALLEL_CHUNKS at once), loaded in read order.
        for chunk in sync.chunks():
            process_chunk(sync, chunk)
        return finish_entity(sync)


def _mark_crashed(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """on_crashed hook: the process died mid-run; close its 'running' rows as crashed."""
    try:
        settings = load_settings()
        engine = create_warehouse_engine(settings.warehouse_url, schema=settings.warehouse_schema)
        with engine.begin() as conn:
            runs.mark_crashed(
                conn,
                f"flow run crashed: {state.message or 'no message'}",
                now=datetime.now(UTC),
                run_id=str(flow_run.id),
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
        rows = runs.running_runs(conn)
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
            runs.mark_crashed(conn, f"crashed: {reason}", now=now, row_id=row_id)
    return [(entity, reason) for _, entity, reason in dead]


@contextmanager
def without_heartbeat() -> Iterator[None]:
    """Start the flow runs of this block without a heartbeat thread of their own.

    Prefect gives each flow run a heartbeat thread that sleeps in one-second steps and is
    joined when the run ends, so every flow run ends up to a second (0.7 to 0.9 s measured)
    after its work is done. A run started from the shell has its operator watching
    (``invsync`` keeps a heartbeat only when one is configured).
    """
    if get_current_settings().flows.heartbeat_frequency is None:
        yield  # already off: no settings copy (~70 ms each)
        return
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@flow(name="finale-sync", log_prints=True, on_crashed=[_mark_crashed])
def finale_sync(
    entities: list[str] | None = None,
    mode: str = "incremental",
    since: datetime | None = None,
    until: datetime | None = None,
    chunk_size: int | None = None,
    dry_run: bool = False,
) -> SyncSummary:
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
        The run id and each entity's record.

    Raises:
        SyncFailed: The run did not start, or an entity failed (``summary`` has them all).
    """
    return sync_entities(
        resolve_entities(entities),
        mode=mode,
        since=since,
        until=until,
        chunk_size=chunk_size,
        dry_run=dry_run,
    )


@flow(name="supabase-sync", log_prints=True, on_crashed=[_mark_crashed])
def supabase_sync(
    entities: list[str] | None = None,
    mode: str = "incremental",
    since: datetime | None = None,
    until: datetime | None = None,
    chunk_size: int | None = None,
    dry_run: bool = False,
) -> SyncSummary:
    """Sync the app's tables in Supabase (default: all app entities) into the warehouse.

    Args:
        entities: app entity names (``pipeline.entities.APP_ENTITIES``).
        mode, since, until, chunk_size, dry_run: as ``finale_sync``.

    Returns:
        The run id and each entity's record.

    Raises:
        SyncFailed: The run did not start, or an entity failed (``summary`` has them all).
    """
    return sync_entities(
        resolve_entities(entities, APP_ENTITIES),
        mode=mode,
        since=since,
        until=until,
        chunk_size=chunk_size,
        dry_run=dry_run,
    )


def sync_entities(specs: list[EntitySpec], **params: Any) -> SyncSummary:
    """The body of a parent sync flow: check the warehouse and the source once, then one
    ``sync_entity_task`` run per spec, then the run's artifacts.

    Raises:
        SyncFailed: The run did not start, or an entity failed (``summary`` has them all).
    """
    logger = get_run_logger()
    mode = params["mode"]
    settings = load_settings()
    try:
        # A dead warehouse, a rejected key or an unreachable source fails the run once,
        # here, rather than every entity in turn. (A missing setting raises ConfigError,
        # naming the variable.)
        check_warehouse(settings.warehouse_url, schema=settings.warehouse_schema)
        _check_source(settings, specs)
    except PreflightError as exc:
        logger.error("sync not started: %s", exc)
        raise SyncFailed(f"not started: {exc}") from None
    engine = create_warehouse_engine(settings.warehouse_url, schema=settings.warehouse_schema)
    for entity, reason in _close_dead_runs(engine):
        logger.warning("%s: a run was left 'running' and is marked crashed: %s", entity, reason)
    with engine.begin() as conn:
        stale = runs.mark_stale_runs(
            conn, timedelta(minutes=settings.stale_run_minutes), datetime.now(UTC)
        )
    if stale:
        logger.warning(
            "marked %d run(s) stale: still 'running' past %d minutes",
            stale,
            settings.stale_run_minutes,
        )
    run_id = str(flow_run.id) if flow_run.id else str(uuid.uuid4())
    results: dict[str, RunRecord] = {}
    failures: list[str] = []
    for spec in specs:
        entity_state = sync_entity_task(
            entity=spec.name, run_id=run_id, return_state=True, **params
        )
        if entity_state.is_completed():
            record: RunRecord = entity_state.result()
            results[spec.name] = record
        else:
            message = entity_state.message or "failed"
            failures.append(f"{spec.name}: {message}")
            results[spec.name] = _failed(engine, run_id, spec.name, mode, message)
            logger.error("%s failed: %s", spec.name, message)
    publish_artifacts(engine, list(results.values()), run_id, settings.quarantine_fail_ratio)
    engine.dispose()
    summary = SyncSummary(run_id=run_id, entities=results)
    if failures:
        raise SyncFailed("; ".join(failures), summary)
    return summary
