"""Thin tasks over the data-quality checks (``pipeline.dq``) and the analytics hand-off.

The checks a sync runs never fail the sync: a broken thresholds file or a slow query is
logged and the run's data stays loaded. The daily report's tasks do fail its flow.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date

import sqlalchemy as sa
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.events import Event

from analytics import Location, Written, write_partitions
from events.outbox import record_event
from invsync.settings import Settings
from pipeline.dq import DQConfig, load_dq_config
from pipeline.dq.checks import measured_entities
from pipeline.dq.report import ORIGIN_REPORT, ORIGIN_SYNC, Report, run_checks
from pipeline.entities import APP_ENTITIES, ENTITIES
from pipeline.status import entity_status
from reporting.events import dq_report_payload, emit_dq_report_event
from tasks.report_tasks import alert_on_change, health_before

log = logging.getLogger(__name__)


@task(name="check-after-sync", cache_policy=NO_CACHE)
def check_after_sync(
    settings: Settings, engine: sa.Engine, entity: str, run_id: str
) -> Report | None:
    """Run the thresholds file's ``sync_checks`` on one entity just loaded, stored under
    the sync's run id (origin ``sync``); the entity's status then reflects them.

    Returns:
        The stored report, or None when the checks could not run (logged, never raised).
    """
    try:
        config = load_dq_config(settings.dq_config)
        report = run_checks(
            engine,
            config,
            report_id=run_id,
            origin=ORIGIN_SYNC,
            entities=[entity],
            checks=config.sync_checks,
        )
    except Exception as exc:  # the data is loaded: a check problem must not fail the run
        log.error("data-quality checks of %s not run: %s", entity, exc)
        return None
    for result in report.failed:
        log.warning("%s: check %s failed: %s", entity, result.check, result.detail)
    return report


def health_of_all(engine: sa.Engine, quarantine_ratio: float) -> dict[str, str | None]:
    """The health now of every entity a report measures (None: never finished a run)."""
    with engine.connect() as conn:
        return {
            name: health_before(conn, name, quarantine_ratio) for name in measured_entities(conn)
        }


@task(name="run-quality-checks", cache_policy=NO_CACHE)
def run_quality_checks(engine: sa.Engine, config: DQConfig, report_id: str) -> Report:
    """Measure every check on every entity and store them as report ``report_id``."""
    return run_checks(engine, config, report_id=report_id, origin=ORIGIN_REPORT)


@task(name="alert-quality-changes", cache_policy=NO_CACHE)
def alert_quality_changes(
    settings: Settings, engine: sa.Engine, before: Mapping[str, str | None]
) -> dict[str, str]:
    """Alert on each entity whose health the report changed, through the sync's own path
    (``alert_on_change``: once per change). Entities that never ran are left alone.

    Returns:
        Entity -> the alert kind sent.
    """
    sent: dict[str, str] = {}
    for entity, previous in before.items():
        if previous is None:
            continue
        with engine.connect() as conn:
            status = entity_status(conn, entity, quarantine_ratio=settings.quarantine_fail_ratio)
        kind = alert_on_change(settings, previous, str(status["status"]), status)
        if kind is not None:
            sent[entity] = kind
    return sent


@task(name="export-analytics", cache_policy=NO_CACHE)
def export_analytics(engine: sa.Engine, location: Location, days: list[date]) -> Written:
    """Rewrite the analytics dataset's partitions of ``days`` from the warehouse."""
    with engine.connect() as conn:
        return write_partitions(conn, location, days, [*ENTITIES, *APP_ENTITIES])


@task(name="announce-report", cache_policy=NO_CACHE)
def announce_report(
    engine: sa.Engine, report: Report, location: Location, written: Written
) -> Event | None:
    """Announce the stored and exported report: ``dq.report.ready`` in the outbox, for
    subscribers, and ``inventory-sync.dq.report.ready`` to Prefect, for automations.

    The outbox event is recorded once the results are stored and the dataset written
    (the files it names exist outside the database, so it cannot share their
    transaction); a report that dies before is announced when it is run again.
    """
    payload = dq_report_payload(
        report_id=report.report_id,
        reported_at=report.reported_at.isoformat(),
        dataset_url=location.url,
        datasets={name: location.dataset_url(name) for name in written.rows},
        results=[r.as_dict() for r in report.results],
        files=[f.removeprefix(location.root.rstrip("/") + "/") for f in written.files],
    )
    with engine.begin() as conn:
        record_event(
            conn,
            "dq.report.ready",
            entity="data_quality",
            entity_key=report.report_id,
            payload=payload,
            occurred_at=report.reported_at,
        )
    return emit_dq_report_event(payload)
