"""Tasks that tell people how a sync went: alerts, events and artifacts.

They never fail the sync: a broken Slack webhook must not turn a good load into a failed
run. Each step logs its own problem and carries on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import deployment, flow_run

from invsync.settings import Settings
from notifications import Alert, Notifier, channels_from_settings, flow_run_link, transition
from pipeline.status import all_statuses, entity_status
from reporting import emit_sync_event, publish_run_artifacts
from warehouse import runs
from warehouse.runs import RunRecord, RunStatus

log = logging.getLogger(__name__)


def health_before(conn: sa.Connection, entity: str, quarantine_ratio: float) -> str | None:
    """The entity's health before a run: None if it never finished a run (a first run)."""
    if not runs.count_finished_runs(conn, entity):
        return None
    return str(entity_status(conn, entity, quarantine_ratio=quarantine_ratio)["status"])


@task(name="notify-and-emit", cache_policy=NO_CACHE)
def notify_and_emit(
    settings: Settings,
    engine: sa.Engine,
    result: RunRecord,
    previous_health: str | None,
) -> str | None:
    """Emit the run's event and alert on a change of the entity's health.

    Args:
        settings: Where alerts go.
        engine: The warehouse, for the entity's health after the run.
        result: The run's record (an ``EntityRunResult``, or what a failed run left).
        previous_health: ``health_before`` the run.

    Returns:
        The alert kind sent, or None.
    """
    entity = result.entity
    with engine.connect() as conn:
        status = entity_status(conn, entity, quarantine_ratio=settings.quarantine_fail_ratio)
    if result.status is RunStatus.SKIPPED:
        return None
    try:
        emit_sync_event(result, status)
    except Exception as exc:  # events are best effort
        log.warning("could not emit the sync event of %s: %s", entity, type(exc).__name__)
    current = RunStatus.FAILED if result.status is RunStatus.FAILED else status["status"]
    return alert_on_change(settings, previous_health, current, status, result)


def alert_on_change(
    settings: Settings,
    previous_health: str | None,
    current: str,
    status: Mapping[str, Any],
    result: RunRecord | None = None,
) -> str | None:
    """Send the alert a change of an entity's health calls for, if any (``transition``).

    The one alerting path: a sync's end (``notify_and_emit``) and a data-quality report
    both come here, so an entity's change is alerted once, whoever noticed it.

    Args:
        settings: Where alerts go.
        previous_health: The entity's health before (None: it never finished a run).
        current: Its health now (a status JSON ``status``, or a run's status).
        status: Its status JSON row now (``failed_checks`` name the checks that failed).
        result: The run that changed it, if a run did (its counts go in the alert).

    Returns:
        The alert kind sent, or None.
    """
    entity = str(status["entity"])
    kind = transition(previous_health, current)
    if kind is None:
        return None
    record = result or RunRecord(run_id="", entity=entity, mode="")
    alert = Alert.from_result(
        kind,
        record,
        deployment=deployment.name,
        flow_run_url=_flow_run_link(),
        status=status,
    )
    checks = status.get("failed_checks") or []
    if kind != "recovered" and not alert.error and checks:
        alert = replace(alert, error="data-quality checks failed: " + ", ".join(checks))
    if result is None:
        alert = replace(alert, run_id=None)
    delivered = Notifier(channels_from_settings(settings)).send(alert)
    log.info("%s alert for %s delivered to: %s", kind, entity, ", ".join(delivered) or "none")
    return kind


@task(name="write-health-report", cache_policy=NO_CACHE)
def write_health_report(settings: Settings, engine: sa.Engine) -> str:
    """Write the sync-health HTML report to REPORTS_DIR and link it from the
    ``sync-health-report`` artifact; returns the file's absolute path."""
    from reporting.artifacts import publish_report_link
    from reporting.health import summary_line
    from reporting.html_report import load_health_data, render_report, write_report

    with engine.connect() as conn:
        data = load_health_data(conn, quarantine_ratio=settings.quarantine_fail_ratio)
    path = write_report(render_report(data), settings.reports_dir, data.now)
    publish_report_link(str(path), summary=summary_line(data.rows))
    return str(path)


def _flow_run_link() -> str | None:
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    return flow_run_link(
        flow_run.id, flow_run.name, PREFECT_UI_URL.value(), PREFECT_API_URL.value()
    )


@task(name="publish-artifacts", cache_policy=NO_CACHE)
def publish_artifacts(
    engine: sa.Engine,
    results: Sequence[RunRecord],
    run_id: str,
    quarantine_ratio: float,
) -> list[str]:
    """Publish the health, counts and quarantine-sample artifacts of the run."""
    now = datetime.now(UTC)
    with engine.connect() as conn:
        statuses = all_statuses(conn, now, quarantine_ratio=quarantine_ratio)
        moved = runs.records_written_since(conn, now - timedelta(hours=24))
    published = publish_run_artifacts(results, statuses, run_id=run_id, moved_24h=moved, now=now)
    return list(published)
