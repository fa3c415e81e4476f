"""Sync bookkeeping: watermarks and quarantined records (one open entry each).

Everything takes the caller's ``Connection`` and never commits, so a chunk's rows, the
watermark that covers them and the run's counts are committed together. Times are passed
in (``now``, ``started_at``...) rather than read from a clock, which keeps these functions
deterministic and testable. The run log (``sync_runs``) is ``warehouse.runs``; its names
are importable from here too, for existing callers.
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

from schemas.tables import quarantine, sync_state
from warehouse.backends import backend_for
from warehouse.runs import (
    CANCELLED,
    COUNT_FIELDS,
    CRASHED,
    DEGRADED,
    FAILED,
    FINISH_FIELDS,
    FINISHED_STATUSES,
    MAX_ERROR_CHARS,
    RUNNING,
    SKIPPED,
    STALE,
    SUCCEEDED,
    RunStatus,
    add_run_counts,
    finish_run,
    get_run,
    latest_runs,
    mark_stale_runs,
    start_run,
)

__all__ = [
    "CANCELLED",
    "COUNT_FIELDS",
    "CRASHED",
    "DEGRADED",
    "FAILED",
    "FINISHED_STATUSES",
    "FINISH_FIELDS",
    "MAX_ERROR_CHARS",
    "RUNNING",
    "SKIPPED",
    "STALE",
    "SUCCEEDED",
    "RunStatus",
    "add_run_counts",
    "count_open_quarantine",
    "finish_run",
    "get_run",
    "get_watermark",
    "latest_runs",
    "mark_stale_runs",
    "open_quarantine_keys",
    "payload_json",
    "payload_key",
    "record_quarantine",
    "resolve_quarantine",
    "set_watermark",
    "start_run",
    "to_jsonable",
]


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
        entity: Entity name (``pipeline.entities.ENTITIES`` key).
        watermark: The new watermark (aware). ``None`` only with ``force`` (reset).
        now: Aware time of the change (``updated_at`` / ``synced_at``).
        force: Set it even if it is older than the stored one (re-sync from a point).

    Returns:
        The watermark stored afterwards.
    """
    insert = (
        backend_for(conn)
        .insert(sync_state)
        .values(entity=entity, watermark=watermark, updated_at=now, synced_at=now)
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

    Each payload is serialised once by ``payload_json``; the entries go in with one bulk
    insert through ``ON CONFLICT`` (``WarehouseBackend.insert_rows``: COPY into a staging
    table on PostgreSQL, ``executemany`` on SQLite), bypassing SQLAlchemy's per-parameter
    processing, which dominated the cost. Runs in the caller's transaction.

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
    stamps = (stamp, stamp, stamp)  # first seen, last seen, synced
    backend_for(conn).insert_rows(
        conn,
        quarantine,
        _QUARANTINE_COLUMNS,
        [
            (run_id, entity, key, source_key, reasons, payload.decode(), times, *stamps)
            for key, (times, source_key, reasons, payload) in entries.items()
        ],
        on_conflict=_UPSERT_OPEN_ENTRY,
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


def _quarantine_key(record: Mapping[str, Any]) -> str | None:
    key = record.get("source_key")
    return None if _is_missing(key) else str(key)


def _reason_text(record: Mapping[str, Any]) -> str:
    reasons = record.get("reasons")
    if reasons is None or isinstance(reasons, str):
        return reasons or "unspecified"
    return "; ".join(str(r) for r in reasons) or "unspecified"


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)
