"""The ``data-quality-report`` flow: the daily data-quality report, handed off to analytics.

It measures every check on every entity (``pipeline.dq``), stores the results in
``dq_results``, alerts on entities whose health that changed (through the sync's alert
path, once per change), publishes the report as artifacts, rewrites the analytics
dataset's partitions of the days it covers (``analytics``), writes the sync-health HTML
report to ``REPORTS_DIR`` (linked from the ``sync-health-report`` artifact) and announces
the report with the event ``inventory-sync.dq.report.ready``.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from analytics import days_between, open_location
from invsync.settings import load_settings
from pipeline.dq import load_dq_config
from pipeline.quality import quality_report
from tasks.dq_tasks import (
    alert_quality_changes,
    announce_report,
    export_analytics,
    health_of_all,
    run_quality_checks,
)
from tasks.report_tasks import write_health_report
from warehouse.db import create_warehouse_engine
from warehouse.migrate import upgrade


@flow(name="data-quality-report", log_prints=True)
def data_quality_report(hours: int = 24, report_id: str | None = None) -> dict[str, Any]:
    """Run the checks, store and export them, alert on changes, announce the report.

    Args:
        hours: how far back the run summary (artifacts) looks; the analytics dataset's
            partitions of the days this window covers are rewritten from the warehouse.
        report_id: the report's id (default: this flow run's id). Running a report again
            under the same id replaces its rows and files.

    Returns:
        ``report_id``, ``reported_at``, ``checks``, ``failed`` (``entity: check[subject]``
        of each failed check), ``alerts``, ``dataset_url``, ``files``, ``event_id`` and
        ``report_path`` (the HTML report).
    """
    from reporting.artifacts import publish_quality_report

    settings = load_settings()
    config = load_dq_config(settings.dq_config)  # a bad key stops the report, named
    location = open_location(settings.analytics_url)
    report_id = report_id or str(flow_run.id or uuid.uuid4())
    upgrade(settings.warehouse_url, schema=settings.warehouse_schema)
    engine = create_warehouse_engine(settings.warehouse_url, schema=settings.warehouse_schema)
    try:
        before = health_of_all(engine, settings.quarantine_fail_ratio)
        report = run_quality_checks(engine, config, report_id)
        alerts = alert_quality_changes(settings, engine, before)
        with engine.connect() as conn:
            summary = quality_report(conn, hours=hours, now=report.reported_at)
        publish_quality_report(summary)
        start = report.reported_at - timedelta(hours=hours)
        days = sorted({*days_between(start, report.reported_at), *report.replaced_dates})
        written = export_analytics(engine, location, days)
        report_path = write_health_report(settings, engine)
        event = announce_report(engine, report, location, written)
    finally:
        engine.dispose()
    failed = [f"{r.entity}: {r.check}[{r.subject}]" if r.subject else f"{r.entity}: {r.check}"
              for r in report.failed]  # fmt: skip
    print(
        f"data-quality report {report_id}: {len(report.results)} checks, {len(failed)} failed"
        + (f" ({'; '.join(failed)})" if failed else "")
    )
    print(f"analytics dataset: {location.url} ({len(written.files)} files written)")
    print(f"sync-health report: {report_path}")
    return {
        "report_id": report_id,
        "reported_at": report.reported_at.isoformat(),
        "checks": len(report.results),
        "failed": failed,
        "alerts": alerts,
        "dataset_url": location.url,
        "files": written.files,
        "rows": written.rows,
        "event_id": str(event.id) if event is not None else None,
        "report_path": report_path,
        "summary": summary,
    }
