"""The run log (``sync_runs``): every read and write of it goes through this module.

One row per entity and run: started as ``running``, counted chunk by chunk in the same
transactions as the rows it counts, finished with a ``RunStatus``. Like
``warehouse.state``, nothing here commits, and times are passed in.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
import sqlalchemy as sa

from schemas.tables import sync_runs, sync_state
from warehouse.backends import backend_for


class RunStatus(StrEnum):
    """How a run stands; the values are what ``sync_runs.status`` and the JSON say."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    #: Finished, but source and warehouse did not reconcile (counts or checksums differ).
    DEGRADED = "degraded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: Set by ``mark_stale_runs`` on runs that never reported an end (crashed worker, OOM...).
    STALE = "stale"
    #: The process running the sync died (Prefect's on_crashed hook, or the dead-run sweep).
    CRASHED = "crashed"
    #: Another run held the entity's lock, so this one did not sync it.
    SKIPPED = "skipped"


RUNNING = RunStatus.RUNNING
SUCCEEDED = RunStatus.SUCCEEDED
DEGRADED = RunStatus.DEGRADED
FAILED = RunStatus.FAILED
CANCELLED = RunStatus.CANCELLED
STALE = RunStatus.STALE
CRASHED = RunStatus.CRASHED
SKIPPED = RunStatus.SKIPPED
#: Statuses ``finish_run`` accepts.
FINISHED_STATUSES = frozenset(status for status in RunStatus if status is not RUNNING)
#: Runs that loaded their read (a degraded run did, it just did not reconcile).
LOADED_STATUSES = frozenset({SUCCEEDED, DEGRADED})
#: Runs that did not get to the end of their read.
FAILURE_STATUSES = frozenset({FAILED, CRASHED, STALE})

#: Counters of ``sync_runs`` that ``add_run_counts`` increments.
COUNT_FIELDS = ("extracted", "inserted", "updated", "unchanged", "quarantined", "deleted")
#: Columns ``finish_run`` may set (counters as final totals, replacing the increments).
FINISH_FIELDS = (
    *COUNT_FIELDS,
    "watermark_before",
    "watermark_after",
    "source_count",
    "warehouse_count",
    "source_checksum",
    "warehouse_checksum",
)
#: Longest error text stored; tracebacks beyond this are cut (the head says what failed).
MAX_ERROR_CHARS = 8_000


@dataclass
class RunRecord:
    """One entity run as ``sync_runs`` records it; what flows, alerts and reports pass around.

    ``pipeline.sync.EntityRunResult`` extends it with what only the running process knows
    (chunks, the quarantine sample). ``as_dict`` is the one place it becomes JSON.

    Attributes:
        run_id: Our run id (one per flow run and entity set).
        entity: Entity name.
        mode: ``incremental``, ``full``, ``backfill`` or ``import`` (a file, ``invsync import``).
        status: How the run stands.
        extracted: Records read from Finale.
        inserted: Rows inserted.
        updated: Rows updated.
        unchanged: Rows read that had not changed.
        quarantined: Records that failed validation.
        deleted: Rows marked deleted (full reads).
        watermark_before: The watermark the run started from.
        watermark_after: The watermark it committed, if it moved it.
        source_count: Records in Finale (full reads, which reconcile).
        warehouse_count: Rows in the warehouse (full reads).
        source_checksum: Checksum of Finale's records (full reads).
        warehouse_checksum: Checksum of the warehouse's rows (full reads).
        started_at: Aware start time; ``None`` for a run that failed before it was recorded.
        finished_at: Aware end time; ``None`` while running.
        duration_ms: How long it took; ``None`` while running or never started.
        error: Why it failed, was skipped or degraded.
        flow_run_id: The Prefect flow run it ran under, if any.
    """

    run_id: str
    entity: str
    mode: str
    status: RunStatus = RunStatus.RUNNING
    extracted: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    deleted: int = 0
    watermark_before: datetime | None = None
    watermark_after: datetime | None = None
    source_count: int | None = None
    warehouse_count: int | None = None
    source_checksum: str | None = None
    warehouse_checksum: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    error: str | None = None
    flow_run_id: str | None = None

    def __post_init__(self) -> None:
        self.status = RunStatus(self.status)  # "failed" read from anywhere becomes FAILED

    @property
    def reconciled(self) -> bool | None:
        """Whether source and warehouse agree; ``None`` for runs that do not reconcile."""
        if self.source_checksum is None:
            return None
        return (
            self.source_count == self.warehouse_count
            and self.source_checksum == self.warehouse_checksum
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly dict: datetimes as ISO strings, the status as its value."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
            elif isinstance(value, RunStatus):
                out[key] = value.value
        return out

    @classmethod
    def from_row(cls, row: sa.RowMapping) -> RunRecord:
        """The record of a ``sync_runs`` row (``duration_ms`` from its start and end)."""
        names = {f.name for f in fields(RunRecord)} - {"duration_ms"}
        values = {name: row[name] for name in names if name in row}
        values["status"] = RunStatus(row["status"])
        started, finished = row.get("started_at"), row.get("finished_at")
        if started is not None and finished is not None:
            values["duration_ms"] = int((finished - started) / timedelta(milliseconds=1))
        return cls(**values)


@dataclass
class SyncSummary:
    """One ``finale-sync`` run: its id and each entity's record, in sync order.

    Attributes:
        run_id: The run id (``None`` when the run never started).
        entities: ``{entity name: its run record}``.
        error: Why the run failed, if it did (each failed entity, or why it never started).
    """

    run_id: str | None
    entities: dict[str, RunRecord] = field(default_factory=dict)
    error: str | None = None

    @property
    def statuses(self) -> set[RunStatus]:
        """The statuses its entity runs ended with."""
        return {record.status for record in self.entities.values()}

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly dict: ``{"run_id", "entities": {name: record}}`` (and ``"error"``)."""
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "entities": {name: record.as_dict() for name, record in self.entities.items()},
        }
        if self.error is not None:
            out["error"] = self.error
        return out


# --- writes ------------------------------------------------------------------------------


def start_run(
    conn: sa.Connection,
    run_id: str,
    flow_run_id: str | None,
    entity: str,
    mode: str,
    started_at: datetime,
) -> int:
    """Record that a run of ``entity`` started; returns the ``sync_runs.id``.

    ``watermark_before`` is taken from ``sync_state``. Starting the same ``(run_id,
    entity)`` again (a retried flow) reuses the row: status back to ``running``, new
    ``started_at``, counts kept (they describe work already committed).

    Args:
        conn: Connection inside the caller's transaction.
        run_id: Our run id (one per flow run and entity set).
        flow_run_id: Prefect flow-run id, if any.
        entity: Entity name.
        mode: ``incremental``, ``full``...
        started_at: Aware start time.
    """
    watermark = sa.select(sync_state.c.watermark).where(sync_state.c.entity == entity)
    insert = (
        backend_for(conn)
        .insert(sync_runs)
        .values(
            run_id=run_id,
            flow_run_id=flow_run_id,
            entity=entity,
            mode=mode,
            started_at=started_at,
            status=RUNNING,
            watermark_before=watermark.scalar_subquery(),
            synced_at=started_at,
        )
    )
    excluded = insert.excluded
    upsert = insert.on_conflict_do_update(
        index_elements=[sync_runs.c.run_id, sync_runs.c.entity],
        set_={
            "flow_run_id": excluded.flow_run_id,
            "mode": excluded.mode,
            "started_at": excluded.started_at,
            "status": RUNNING,
            "finished_at": None,
            "error": None,
            "synced_at": excluded.synced_at,
        },
    ).returning(sync_runs.c.id)
    return int(conn.execute(upsert).scalar_one())


def add_run_counts(conn: sa.Connection, run_id: str, entity: str, **deltas: int) -> None:
    """Add ``deltas`` to the run's counters (``inserted=5`` adds 5), in one UPDATE.

    Args:
        conn: Connection inside the caller's transaction (with the chunk it counts).
        run_id: Run id given to ``start_run``.
        entity: Entity name.
        **deltas: Non-negative increments for any of ``COUNT_FIELDS``.

    Raises:
        ValueError: Unknown counter or negative/non-integer delta.
        LookupError: No such run.
    """
    unknown = sorted(set(deltas) - set(COUNT_FIELDS))
    if unknown:
        raise ValueError(f"unknown run counters {unknown}; expected some of {COUNT_FIELDS}")
    values: dict[str, Any] = {}
    for name, delta in deltas.items():
        if isinstance(delta, bool) or not isinstance(delta, int | np.integer) or delta < 0:
            raise ValueError(f"{name}: increment must be a non-negative integer, got {delta!r}")
        if delta:
            values[name] = sync_runs.c[name] + int(delta)
    _update_run(conn, run_id, entity, values)


def finish_run(
    conn: sa.Connection,
    run_id: str,
    entity: str,
    status: str,
    error: str | None = None,
    *,
    finished_at: datetime,
    **fields: Any,
) -> None:
    """Record how a run ended.

    Args:
        conn: Connection (the final chunk's transaction, or a fresh one after a failure).
        run_id: Run id given to ``start_run``.
        entity: Entity name.
        status: One of ``FINISHED_STATUSES`` (a ``RunStatus`` or its value).
        error: Error text for failed runs (cut to ``MAX_ERROR_CHARS``).
        finished_at: Aware end time.
        **fields: Any of ``FINISH_FIELDS``: ``watermark_after``, the reconciliation's
            counts and checksums, and the counters as final totals (they replace what
            ``add_run_counts`` accumulated; ``None`` leaves a column as it is).

    Raises:
        ValueError: Unknown status or field.
        LookupError: No such run.
    """
    if status not in FINISHED_STATUSES:
        expected = sorted(s.value for s in FINISHED_STATUSES)
        raise ValueError(f"status must be one of {expected}, got {status!r}")
    unknown = sorted(set(fields) - set(FINISH_FIELDS))
    if unknown:
        raise ValueError(f"unknown run fields {unknown}; expected some of {FINISH_FIELDS}")
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in COUNT_FIELDS:
            values[name] = value
        elif value is not None:
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"{name}: total must be a non-negative integer, got {value!r}")
            values[name] = int(value)  # numpy integers are not SQL parameters
    values |= {
        "status": RunStatus(status),
        "finished_at": finished_at,
        "synced_at": finished_at,
        "error": _truncate(error),
    }
    _update_run(conn, run_id, entity, values)


def finish_record(conn: sa.Connection, record: RunRecord) -> None:
    """Record how ``record``'s run ended: its status, error, end time and ``FINISH_FIELDS``.

    Raises:
        ValueError: The record has no ``finished_at``, or its status is not a finished one.
        LookupError: No such run.
    """
    if record.finished_at is None:
        raise ValueError(f"the run of {record.entity} has no finished_at")
    finish_run(
        conn,
        record.run_id,
        record.entity,
        record.status,
        record.error,
        finished_at=record.finished_at,
        **{name: getattr(record, name) for name in FINISH_FIELDS},
    )


def mark_stale_runs(conn: sa.Connection, older_than: timedelta, now: datetime) -> int:
    """Mark runs still ``running`` after ``older_than`` as ``stale``; returns how many.

    A worker that dies (OOM, node lost) never calls ``finish_run``; without this its run
    would look in progress forever and hide the failure from monitoring.

    Args:
        conn: Connection inside the caller's transaction.
        older_than: Longest a run may legitimately take.
        now: Aware current time.
    """
    cutoff = now - older_than
    note = f"marked {STALE}: still {RUNNING} after {older_than} (worker died?)"
    result = conn.execute(
        sa.update(sync_runs)
        .where(sync_runs.c.status == RUNNING, sync_runs.c.started_at < cutoff)
        .values(
            status=STALE,
            finished_at=now,
            synced_at=now,
            error=sa.func.coalesce(sync_runs.c.error, note),
        )
    )
    return int(result.rowcount)


def mark_crashed(
    conn: sa.Connection,
    error: str,
    *,
    now: datetime,
    run_id: str | None = None,
    row_id: int | None = None,
) -> int:
    """Mark ``running`` rows crashed: those of run ``run_id``, or the row ``row_id``.

    Rows that finished meanwhile are left as they are. Returns how many were marked.

    Args:
        conn: Connection inside the caller's transaction.
        error: Why (stored as the rows' error).
        now: Aware current time (``finished_at``).
        run_id: Every entity's row of this run (a flow run that crashed).
        row_id: One row (``sync_runs.id``, from ``running_runs``).
    """
    if (run_id is None) == (row_id is None):
        raise ValueError("pass exactly one of run_id and row_id")
    which = sync_runs.c.run_id == run_id if run_id is not None else sync_runs.c.id == row_id
    result = conn.execute(
        sa.update(sync_runs)
        .where(which, sync_runs.c.status == RUNNING)
        .values(status=CRASHED, finished_at=now, error=error)
    )
    return int(result.rowcount)


# --- reads -------------------------------------------------------------------------------


def get_run(conn: sa.Connection, run_id: str, entity: str) -> RunRecord | None:
    """The record of ``(run_id, entity)``, or ``None``."""
    query = sa.select(sync_runs).where(sync_runs.c.run_id == run_id, sync_runs.c.entity == entity)
    row = conn.execute(query).mappings().first()
    return RunRecord.from_row(row) if row is not None else None


def latest_runs(conn: sa.Connection) -> list[RunRecord]:
    """The most recent run of each entity (by ``started_at``, then ``id``), by entity name."""
    newer = sync_runs.alias("newer")
    has_newer = (
        sa.select(sa.literal(1))
        .where(
            newer.c.entity == sync_runs.c.entity,
            sa.or_(
                newer.c.started_at > sync_runs.c.started_at,
                sa.and_(newer.c.started_at == sync_runs.c.started_at, newer.c.id > sync_runs.c.id),
            ),
        )
        .exists()
    )
    query = sa.select(sync_runs).where(~has_newer).order_by(sync_runs.c.entity)
    return [RunRecord.from_row(row) for row in conn.execute(query).mappings()]


def running_runs(conn: sa.Connection) -> list[tuple[int, str, str]]:
    """``(id, entity, flow_run_id)`` of the rows still ``running`` that name a flow run."""
    query = sa.select(sync_runs.c.id, sync_runs.c.entity, sync_runs.c.flow_run_id).where(
        sync_runs.c.status == RUNNING, sync_runs.c.flow_run_id.is_not(None)
    )
    return [(int(row_id), entity, run) for row_id, entity, run in conn.execute(query)]


def count_finished_runs(conn: sa.Connection, entity: str) -> int:
    """How many runs of ``entity`` are not ``running`` (0: it never finished one)."""
    query = (
        sa.select(sa.func.count())
        .select_from(sync_runs)
        .where(sync_runs.c.entity == entity, sync_runs.c.status != RUNNING)
    )
    return int(conn.execute(query).scalar_one())


#: The ``sync_runs.mode`` of a file import (``formats.imports``).
IMPORT_MODE = "import"


def last_finished_run(
    conn: sa.Connection, entity: str, statuses: Collection[str] | None = None
) -> RunRecord | None:
    """The latest (by ``started_at``, then ``id``) sync of ``entity`` that is not running.

    File imports (mode ``import``, ``invsync import``) are left out: an entity's health is
    how its syncs from its source fare, which a file loaded by hand says nothing about.

    Args:
        conn: Connection.
        entity: Entity name.
        statuses: Only runs that ended in one of these (e.g. ``LOADED_STATUSES``).
    """
    query = (
        sa.select(sync_runs)
        .where(
            sync_runs.c.entity == entity,
            sync_runs.c.status != RUNNING,
            sync_runs.c.mode != IMPORT_MODE,
        )
        .order_by(sync_runs.c.started_at.desc(), sync_runs.c.id.desc())
        .limit(1)
    )
    if statuses is not None:
        query = query.where(sync_runs.c.status.in_(sorted(statuses)))
    row = conn.execute(query).mappings().first()
    return RunRecord.from_row(row) if row is not None else None


def runs_started_since(conn: sa.Connection, entity: str, since: datetime) -> list[RunRecord]:
    """The runs of ``entity`` started at or after ``since``, oldest first."""
    query = (
        sa.select(sync_runs)
        .where(sync_runs.c.entity == entity, sync_runs.c.started_at >= since)
        .order_by(sync_runs.c.started_at)
    )
    return [RunRecord.from_row(row) for row in conn.execute(query).mappings()]


def runs_started_between(conn: sa.Connection, start: datetime, end: datetime) -> list[RunRecord]:
    """The runs of every entity started in ``[start, end)``, by start time."""
    query = (
        sa.select(sync_runs)
        .where(sync_runs.c.started_at >= start, sync_runs.c.started_at < end)
        .order_by(sync_runs.c.started_at, sync_runs.c.id)
    )
    return [RunRecord.from_row(row) for row in conn.execute(query).mappings()]


def records_written_since(conn: sa.Connection, since: datetime) -> dict[str, int]:
    """Records written (inserted + updated) per entity by the runs started at or after
    ``since``; entities without such runs are absent."""
    written = sa.func.sum(sync_runs.c.inserted + sync_runs.c.updated)
    query = (
        sa.select(sync_runs.c.entity, written)
        .where(sync_runs.c.started_at >= since)
        .group_by(sync_runs.c.entity)
    )
    return {entity: int(total or 0) for entity, total in conn.execute(query)}


# --- internals ---------------------------------------------------------------------------


def _update_run(conn: sa.Connection, run_id: str, entity: str, values: dict[str, Any]) -> None:
    where = (sync_runs.c.run_id == run_id, sync_runs.c.entity == entity)
    if values:
        result = conn.execute(sa.update(sync_runs).where(*where).values(**values))
        found = result.rowcount > 0
    else:
        found = conn.execute(sa.select(sync_runs.c.id).where(*where)).first() is not None
    if not found:
        raise LookupError(f"no sync run {run_id!r} for entity {entity!r}")


def _truncate(error: str | None) -> str | None:
    if error is None or len(error) <= MAX_ERROR_CHARS:
        return error
    # Size the marker for the longest possible count, so the result never exceeds the cap.
    keep = MAX_ERROR_CHARS - len(f"... [{len(error)} chars cut]")
    return f"{error[:keep]}... [{len(error) - keep} chars cut]"
