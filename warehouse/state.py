"""Sync bookkeeping: watermarks, the run log, quarantined records (one open entry each).

Everything takes the caller's ``Connection`` and never commits, so a chunk's rows, the
watermark that covers them and the run's counts are committed together. Times are passed
in (``now``, ``started_at``...) rather than read from a clock, which keeps these functions
deterministic and testable.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import json
import math
import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from schemas.tables import quarantine, sync_runs, sync_state
from warehouse import staging

RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
#: Finished, but source and warehouse did not reconcile (counts or checksums differ).
DEGRADED = "degraded"
#: Set by ``mark_stale_runs`` on runs that never reported an end (crashed worker, OOM...).
STALE = "stale"
#: The process running the sync died (reported by Prefect's on_crashed hook).
CRASHED = "crashed"
#: Another run held the entity's lock, so this one did not sync it.
SKIPPED = "skipped"
#: Statuses ``finish_run`` accepts.
FINISHED_STATUSES = frozenset({SUCCEEDED, DEGRADED, FAILED, CANCELLED, STALE, CRASHED, SKIPPED})

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


# --- watermarks ---------------------------------------------------------------------------


def get_watermark(conn: sa.Connection, entity: str) -> datetime | None:
    """The stored watermark of ``entity`` (aware UTC), or ``None`` if there is none."""
    query = sa.select(sync_state.c.watermark).where(sync_state.c.entity == entity)
    return conn.execute(query).scalar_one_or_none()


def set_watermark(
    conn: sa.Connection,
    entity: str,
    watermark: datetime | None,
    *,
    now: datetime,
    force: bool = False,
) -> datetime | None:
    """Advance the watermark of ``entity``; it never moves backwards unless ``force``.

    One atomic upsert (``ON CONFLICT ... WHERE new > old``), so two runs racing cannot
    move it back either. Does not commit.

    Args:
        conn: Connection inside the caller's transaction.
        entity: Entity name (``schemas.tables.ENTITY_TABLES`` key).
        watermark: The new watermark (aware). ``None`` only with ``force`` (reset).
        now: Aware time of the change (``updated_at`` / ``synced_at``).
        force: Set it even if it is older than the stored one (re-sync from a point).

    Returns:
        The watermark stored afterwards.
    """
    insert = _insert(conn, sync_state).values(
        entity=entity, watermark=watermark, updated_at=now, synced_at=now
    )
    excluded = insert.excluded
    newer = sa.or_(sync_state.c.watermark.is_(None), excluded.watermark > sync_state.c.watermark)
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=[sync_state.c.entity],
            set_={
                "watermark": excluded.watermark,
                "updated_at": excluded.updated_at,
                "synced_at": excluded.synced_at,
            },
            where=None if force else newer,
        )
    )
    return get_watermark(conn, entity)


# --- run log -----------------------------------------------------------------------------


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
    insert = _insert(conn, sync_runs).values(
        run_id=run_id,
        flow_run_id=flow_run_id,
        entity=entity,
        mode=mode,
        started_at=started_at,
        status=RUNNING,
        watermark_before=get_watermark(conn, entity),
        synced_at=started_at,
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
    _update_run(conn, run_id, entity, values, require_row=True)


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
        status: One of ``FINISHED_STATUSES``.
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
        raise ValueError(f"status must be one of {sorted(FINISHED_STATUSES)}, got {status!r}")
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
        "status": status,
        "finished_at": finished_at,
        "synced_at": finished_at,
        "error": _truncate(error),
    }
    _update_run(conn, run_id, entity, values, require_row=True)


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


def get_run(conn: sa.Connection, run_id: str, entity: str) -> dict[str, Any] | None:
    """The ``sync_runs`` row of ``(run_id, entity)`` as a dict, or ``None``."""
    query = sa.select(sync_runs).where(sync_runs.c.run_id == run_id, sync_runs.c.entity == entity)
    row = conn.execute(query).mappings().first()
    return dict(row) if row is not None else None


def latest_runs(conn: sa.Connection) -> list[dict[str, Any]]:
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
    return [dict(row) for row in conn.execute(query).mappings()]


# --- quarantine --------------------------------------------------------------------------


def record_quarantine(
    conn: sa.Connection,
    run_id: str,
    entity: str,
    records: Iterable[Mapping[str, Any]],
    created_at: datetime,
) -> int:
    """Store records that failed validation: one open quarantine entry per bad record.

    A record is identified by its ``record_key``: the source key, or for a record without
    one ``"payload:" + md5(payload JSON)``. A key with no open entry gets a new one
    (``times_seen`` 1, first and last seen ``created_at``); an open entry is updated:
    ``last_seen_at``, ``times_seen`` + 1, and the latest reasons, payload and run id. So
    an unchanged bad record read by every overlapping window or backfill stays one entry.
    Within one call the same key twice counts twice and the later record wins.

    Each payload is serialised once by ``payload_json``; the entries go in with one
    ``COPY`` into a staging table and one ``INSERT ... ON CONFLICT`` on PostgreSQL (one
    ``executemany`` upsert elsewhere), bypassing SQLAlchemy's per-parameter processing,
    which dominated the cost. Runs in the caller's transaction.

    Args:
        conn: Connection inside the caller's transaction.
        run_id: Run id.
        entity: Entity name.
        records: Mappings with ``source_key`` (may be missing/None), ``reasons`` (a string,
            or a list of strings stored joined by ``"; "``) and ``payload`` (the record as
            read; NaN, NaT, numpy scalars, Decimals, timestamps... are converted as
            ``to_jsonable`` does).
        created_at: Aware time the records were read (``first_seen_at``/``last_seen_at``).

    Returns:
        The number of records given, duplicates included: what the run read and
        quarantined (add it with ``add_run_counts(quarantined=n)``), not the entries.
    """
    entries: dict[str, list[Any]] = {}  # record_key -> [times, source_key, reasons, payload]
    given = 0
    for record in records:
        given += 1
        source_key = _quarantine_key(record)
        payload = payload_json(record.get("payload"))
        record_key = source_key if source_key is not None else payload_key(payload)
        # Collapsed here because one INSERT ... ON CONFLICT may not update a row twice.
        times = entries[record_key][0] + 1 if record_key in entries else 1
        entries[record_key] = [times, source_key, _reason_text(record), payload]
    if not entries:
        return 0
    # The column type's own conversion: refuses naive times, stores UTC.
    to_db = quarantine.c.last_seen_at.type.bind_processor(conn.dialect)
    stamp = to_db(created_at) if to_db is not None else created_at
    if conn.dialect.name == "postgresql":
        line_start = f"{_copy_text(run_id)}\t{_copy_text(entity)}\t".encode()
        seen = stamp.isoformat()
        line_end = f"\t{seen}\t{seen}\t{seen}\n".encode()  # first seen, last seen, synced
        lines = [
            b"".join(
                (
                    line_start,
                    _copy_text(record_key).encode(),
                    b"\t",
                    _copy_text(source_key).encode(),
                    b"\t",
                    _copy_text(reasons).encode(),
                    b"\t",
                    # JSON text has no raw tabs or newlines (they are escaped in strings),
                    # so only its backslashes need escaping for COPY.
                    payload.replace(b"\\", b"\\\\"),
                    b"\t%d" % times,
                    line_end,
                )
            )
            for record_key, (times, source_key, reasons, payload) in entries.items()
        ]
        if not conn.in_transaction():
            conn.begin()  # what conn.execute would do; COPY goes past SQLAlchemy
        stage = staging.temp_table(
            conn,
            "quarantine_stage",
            [sa.Column(name, quarantine.c[name].type) for name in _QUARANTINE_COLUMNS],
            on_commit_drop=True,
        )
        staging.copy_text(conn, stage, _QUARANTINE_COLUMNS, b"".join(lines))
        columns = ", ".join(_QUARANTINE_COLUMNS)
        source = conn.dialect.identifier_preparer.format_table(stage)
        conn.exec_driver_sql(
            f"INSERT INTO quarantine ({columns}) SELECT {columns} FROM {source}"
            f" {_UPSERT_OPEN_ENTRY}"
        )
    else:
        stamps = (stamp, stamp, stamp)  # first seen, last seen, synced
        staging.insert_many(
            conn,
            quarantine,
            _QUARANTINE_COLUMNS,
            [
                (run_id, entity, key, source_key, reasons, payload.decode(), times, *stamps)
                for key, (times, source_key, reasons, payload) in entries.items()
            ],
            suffix=_UPSERT_OPEN_ENTRY,
        )
    return given


def payload_key(payload: bytes) -> str:
    """The ``record_key`` of a record without a source key: its payload's fingerprint."""
    return "payload:" + hashlib.md5(payload, usedforsecurity=False).hexdigest()


def open_quarantine_keys(conn: sa.Connection, entity: str) -> set[str]:
    """The ``record_key`` of every open quarantine entry of ``entity``.

    Meant to be intersected with the keys of rows that loaded cleanly, which then go to
    ``resolve_quarantine``. (Payload fingerprints are among them but never match a key.)
    """
    query = sa.select(quarantine.c.record_key).where(
        quarantine.c.entity == entity, quarantine.c.resolved_at.is_(None)
    )
    return set(conn.execute(query).scalars())


def resolve_quarantine(
    conn: sa.Connection, entity: str, keys: Iterable[str], resolved_at: datetime
) -> int:
    """Mark the open quarantine entries of ``keys`` resolved (their record loaded cleanly).

    The entries stay as history; a later failure of the same record opens a new one.
    Keys without an open entry are ignored. Does not commit.

    Args:
        conn: Connection inside the caller's transaction (the chunk that loaded the rows).
        entity: Entity name.
        keys: Record keys (source keys) of rows that loaded cleanly.
        resolved_at: Aware time of the load.

    Returns:
        How many entries were resolved.
    """
    wanted = sorted({str(key) for key in keys if key is not None})  # numpy str etc. too
    resolved = 0
    # In slices: a bound parameter per key, and SQLite caps the parameters of a statement.
    for start in range(0, len(wanted), _RESOLVE_SLICE):
        result = conn.execute(
            sa.update(quarantine)
            .where(
                quarantine.c.entity == entity,
                quarantine.c.resolved_at.is_(None),
                quarantine.c.record_key.in_(wanted[start : start + _RESOLVE_SLICE]),
            )
            .values(resolved_at=resolved_at, synced_at=resolved_at)
        )
        resolved += result.rowcount
    return resolved


def count_open_quarantine(conn: sa.Connection, entity: str | None = None) -> int:
    """How many distinct records are in quarantine now (open entries), of one entity or all."""
    query = (
        sa.select(sa.func.count()).select_from(quarantine).where(quarantine.c.resolved_at.is_(None))
    )
    if entity is not None:
        query = query.where(quarantine.c.entity == entity)
    return int(conn.execute(query).scalar_one())


def payload_json(payload: Any) -> bytes:
    """``payload`` as JSON (UTF-8), converted as ``to_jsonable`` converts it, but faster.

    orjson writes plain dicts (str keys), lists, str, int, float, bool and None itself
    (NaN and infinities as ``null``, as ``to_jsonable`` does) and hands every other value
    (numpy, pandas, Decimal, datetime, dataclass...) to ``to_jsonable``. What orjson
    refuses (non-str dict keys, integers beyond 64 bits, nesting past 255 levels) goes
    through ``to_jsonable`` whole.
    """
    try:
        return orjson.dumps(payload, default=to_jsonable, option=_PASS_TO_TO_JSONABLE)
    except orjson.JSONEncodeError:
        pass
    plain = to_jsonable(payload)
    try:
        return orjson.dumps(plain)
    except orjson.JSONEncodeError:  # integers beyond 64 bits
        return json.dumps(plain).encode()


def to_jsonable(value: Any, _depth: int = 0) -> Any:
    """Convert ``value`` to plain JSON types, losing nothing that JSON can say.

    Missing values (None, NaN, NaT, ``pd.NA``) and infinities become ``null`` (JSON has no
    NaN, and PostgreSQL refuses it); Decimals become strings (exact); timestamps, dates
    and times become ISO 8601 strings; numpy scalars/arrays become numbers/lists; bytes
    become base64; mappings get string keys; anything else becomes ``str(value)``.
    """
    if _depth > 64:
        return str(value)
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else None
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else pd.Timestamp(value).isoformat()
    if isinstance(value, np.timedelta64):
        return None if np.isnat(value) else pd.Timedelta(value).isoformat()
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, pd.Timedelta):
        return value.isoformat()
    if isinstance(value, timedelta):
        return pd.Timedelta(value).isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value, _depth + 1)
    if isinstance(value, uuid.UUID):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value), _depth + 1)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, pd.Series | pd.Index | np.ndarray):
        return [to_jsonable(v, _depth + 1) for v in value.tolist()]
    if isinstance(value, set | frozenset):
        items = [to_jsonable(v, _depth + 1) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, list | tuple):
        return [to_jsonable(v, _depth + 1) for v in value]
    return str(value)


# --- internals ---------------------------------------------------------------------------


#: Columns ``record_quarantine`` writes, in its row order.
_QUARANTINE_COLUMNS = (
    "run_id",
    "entity",
    "record_key",
    "source_key",
    "reasons",
    "payload",
    "times_seen",
    "first_seen_at",
    "last_seen_at",
    "synced_at",
)
#: Adds a staged entry to the open one of its record, if any (the partial unique index's
#: predicate names it as the conflict target). ``first_seen_at`` stays the first.
_UPSERT_OPEN_ENTRY = (
    "ON CONFLICT (entity, record_key) WHERE resolved_at IS NULL DO UPDATE SET"
    " run_id = excluded.run_id, source_key = excluded.source_key,"
    " reasons = excluded.reasons, payload = excluded.payload,"
    " times_seen = quarantine.times_seen + excluded.times_seen,"
    " last_seen_at = excluded.last_seen_at, synced_at = excluded.synced_at"
)
#: Keys per UPDATE of ``resolve_quarantine``.
_RESOLVE_SLICE = 500
#: Types orjson would write itself but differently from ``to_jsonable``'s text.
_PASS_TO_TO_JSONABLE = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _quarantine_key(record: Mapping[str, Any]) -> str | None:
    key = record.get("source_key")
    return None if _is_missing(key) else str(key)


def _reason_text(record: Mapping[str, Any]) -> str:
    reasons = record.get("reasons")
    if reasons is None or isinstance(reasons, str):
        return reasons or "unspecified"
    return "; ".join(str(r) for r in reasons) or "unspecified"


def _copy_text(value: str | None) -> str:
    """``value`` as a field of ``COPY``'s text format."""
    return "\\N" if value is None else value.translate(_COPY_ESCAPES)


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    """The dialect's INSERT (both have ``on_conflict_do_update`` and ``excluded``)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported warehouse dialect {conn.dialect.name!r}")


def _update_run(
    conn: sa.Connection, run_id: str, entity: str, values: dict[str, Any], *, require_row: bool
) -> None:
    where = (sync_runs.c.run_id == run_id, sync_runs.c.entity == entity)
    if values:
        result = conn.execute(sa.update(sync_runs).where(*where).values(**values))
        found = result.rowcount > 0
    else:
        found = conn.execute(sa.select(sync_runs.c.id).where(*where)).first() is not None
    if require_row and not found:
        raise LookupError(f"no sync run {run_id!r} for entity {entity!r}")


def _truncate(error: str | None) -> str | None:
    if error is None or len(error) <= MAX_ERROR_CHARS:
        return error
    # Size the marker for the longest possible count, so the result never exceeds the cap.
    keep = MAX_ERROR_CHARS - len(f"... [{len(error)} chars cut]")
    return f"{error[:keep]}... [{len(error) - keep} chars cut]"


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)
