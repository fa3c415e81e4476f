"""A data-quality report: the checks measured and stored under one report id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import sqlalchemy as sa

from pipeline.dq.checks import measure
from pipeline.dq.config import DQConfig
from warehouse import dq
from warehouse.dq import CheckResult

#: ``dq_results.origin`` of the daily report and of the checks a sync runs.
ORIGIN_REPORT = "report"
ORIGIN_SYNC = "sync"


@dataclass
class Report:
    """One stored report.

    Attributes:
        report_id: its id (``dq_results.report_id``).
        reported_at: when it measured.
        origin: ``report`` or ``sync``.
        results: what it measured.
        replaced_dates: the UTC dates of the rows it replaced (a re-run of the report), so
            the analytics partitions of those days are rewritten too.
    """

    report_id: str
    reported_at: datetime
    origin: str
    results: list[CheckResult]
    replaced_dates: set[date] = field(default_factory=set)

    @property
    def failed(self) -> list[CheckResult]:
        """The results that did not pass."""
        return [r for r in self.results if not r.passed]


def run_checks(
    engine: sa.Engine,
    config: DQConfig,
    *,
    report_id: str,
    origin: str,
    entities: Sequence[str] | None = None,
    checks: Sequence[str] | None = None,
    now: datetime | None = None,
) -> Report:
    """Measure the checks and store them as report ``report_id``, in one transaction.

    Storing the same report again (a retried flow, a sync's entity run retried under its
    run id) replaces its earlier rows of the same entities.

    Args:
        engine: the warehouse.
        config: the thresholds.
        report_id: the report's id.
        origin: ``ORIGIN_REPORT`` or ``ORIGIN_SYNC``.
        entities: entity names (default: all).
        checks: check names (default: all).
        now: the report's time (default: now).
    """
    now = now or datetime.now(UTC)
    with engine.begin() as conn:
        replaced = dq.report_dates(conn, report_id)
        results = measure(
            conn, config, report_id=report_id, entities=entities, checks=checks, now=now
        )
        dq.replace_report(
            conn, report_id, results, reported_at=now, origin=origin, entities=entities
        )
    return Report(report_id, now, origin, results, replaced)
