"""The data-quality results (``dq_results``): every read and write of it goes through here.

Like ``warehouse.runs``, nothing here commits: callers pass a connection in their own
transaction, and times are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from schemas.tables import dq_results


@dataclass(frozen=True)
class CheckResult:
    """One measurement of one check for one entity.

    Attributes:
        entity: the entity measured.
        check: the check's name (``pipeline.dq.config.CHECK_NAMES``).
        subject: what within the entity it measured: a column, a pandera rule, a
            reference (``products.primary_vendor_party_id -> vendors``); "" when the check
            measures the entity as a whole.
        measured: the value measured (a count, a share, hours); None when there was
            nothing to measure (no previous report, no full run yet).
        threshold: the limit it was compared with; None when the check has none.
        passed: whether the measurement is within the threshold.
        detail: one short sentence a person reads.
    """

    entity: str
    check: str
    subject: str
    measured: float | None
    threshold: float | None
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (``check`` named as in the table: ``check_name``)."""
        out = asdict(self)
        out["check_name"] = out.pop("check")
        return out


@dataclass(frozen=True)
class StoredResult(CheckResult):
    """A ``CheckResult`` as ``dq_results`` holds it, with its report.

    Attributes:
        report_id: the report (or sync run) that measured it.
        reported_at: when.
        origin: ``report`` or ``sync``.
    """

    report_id: str = ""
    reported_at: datetime | None = None
    origin: str = ""


def replace_report(
    conn: sa.Connection,
    report_id: str,
    results: Iterable[CheckResult],
    *,
    reported_at: datetime,
    origin: str,
    entities: Sequence[str] | None = None,
) -> int:
    """Store a report's results, replacing what the same report stored before.

    Args:
        conn: connection inside the caller's transaction.
        report_id: the report's id; its earlier rows (of ``entities``) are deleted first.
        results: the measurements.
        reported_at: aware time of the report.
        origin: ``report`` (the daily flow) or ``sync`` (after an entity's load).
        entities: only replace these entities' rows (a sync run stores one entity at a
            time under its run id); None = all of the report's rows.

    Returns:
        The number of rows written.
    """
    delete = sa.delete(dq_results).where(dq_results.c.report_id == report_id)
    if entities is not None:
        delete = delete.where(dq_results.c.entity.in_(list(entities)))
    conn.execute(delete)
    rows = [
        {
            "report_id": report_id,
            "entity": r.entity,
            "check_name": r.check,
            "subject": r.subject,
            "reported_at": reported_at,
            "origin": origin,
            "measured": r.measured,
            "threshold": r.threshold,
            "passed": r.passed,
            "detail": r.detail,
        }
        for r in results
    ]
    if rows:
        conn.execute(sa.insert(dq_results), rows)
    return len(rows)


def previous_measure(
    conn: sa.Connection, entity: str, check: str, *, exclude_report: str, subject: str = ""
) -> float | None:
    """The latest stored ``measured`` of ``(entity, check, subject)`` outside one report."""
    query = (
        sa.select(dq_results.c.measured)
        .where(
            dq_results.c.entity == entity,
            dq_results.c.check_name == check,
            dq_results.c.subject == subject,
            dq_results.c.report_id != exclude_report,
        )
        .order_by(dq_results.c.reported_at.desc())
        .limit(1)
    )
    value = conn.execute(query).scalar()
    return None if value is None else float(value)


def latest_results(conn: sa.Connection, entity: str) -> list[StoredResult]:
    """The entity's results as last measured, check by check.

    For each check, the rows of the latest report that measured it: a referential
    failure found by the daily report stands until the next report measures it again,
    even when syncs in between ran other checks.
    """
    latest = (
        sa.select(
            dq_results.c.check_name, sa.func.max(dq_results.c.reported_at).label("reported_at")
        )
        .where(dq_results.c.entity == entity)
        .group_by(dq_results.c.check_name)
        .subquery()
    )
    query = (
        sa.select(dq_results)
        .join(
            latest,
            sa.and_(
                dq_results.c.check_name == latest.c.check_name,
                dq_results.c.reported_at == latest.c.reported_at,
            ),
        )
        .where(dq_results.c.entity == entity)
        .order_by(dq_results.c.check_name, dq_results.c.subject)
    )
    return [_stored(row) for row in conn.execute(query).mappings()]


def failed_checks(conn: sa.Connection, entity: str) -> list[StoredResult]:
    """The entity's failed results as last measured (``latest_results`` that failed)."""
    return [r for r in latest_results(conn, entity) if not r.passed]


def report_results(conn: sa.Connection, report_id: str) -> list[StoredResult]:
    """Every stored row of one report, by entity, check and subject."""
    query = (
        sa.select(dq_results)
        .where(dq_results.c.report_id == report_id)
        .order_by(dq_results.c.entity, dq_results.c.check_name, dq_results.c.subject)
    )
    return [_stored(row) for row in conn.execute(query).mappings()]


def report_dates(conn: sa.Connection, report_id: str) -> set[date]:
    """The UTC dates the report's stored rows fall on (none: not stored yet)."""
    query = (
        sa.select(dq_results.c.reported_at).where(dq_results.c.report_id == report_id).distinct()
    )
    return {when.astimezone(UTC).date() for (when,) in conn.execute(query)}


def results_on(conn: sa.Connection, day: date) -> list[StoredResult]:
    """Every result reported on the UTC date ``day``, by time."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    query = (
        sa.select(dq_results)
        .where(
            dq_results.c.reported_at >= start,
            dq_results.c.reported_at < start + timedelta(days=1),
        )
        .order_by(dq_results.c.reported_at, dq_results.c.entity, dq_results.c.check_name)
    )
    return [_stored(row) for row in conn.execute(query).mappings()]


def results_between(conn: sa.Connection, start: datetime, end: datetime) -> list[StoredResult]:
    """Every result reported in ``[start, end)``, by time, entity and check."""
    query = (
        sa.select(dq_results)
        .where(dq_results.c.reported_at >= start, dq_results.c.reported_at < end)
        .order_by(dq_results.c.reported_at, dq_results.c.entity, dq_results.c.check_name)
    )
    return [_stored(row) for row in conn.execute(query).mappings()]


def _stored(row: sa.RowMapping) -> StoredResult:
    return StoredResult(
        entity=row["entity"],
        check=row["check_name"],
        subject=row["subject"],
        measured=row["measured"],
        threshold=row["threshold"],
        passed=bool(row["passed"]),
        detail=row["detail"],
        report_id=row["report_id"],
        reported_at=row["reported_at"],
        origin=row["origin"],
    )
