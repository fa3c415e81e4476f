"""The ``supabase-to-finale`` flow: purchase-order requests in the app -> Finale orders.

Flows only compose: settings are loaded here at the edge, the work is in ``writeback/`` and
``tasks/writeback_tasks.py``. The flow checks the app database, the warehouse and Finale
before it touches a request; every request then ends with one outcome. The run fails at the
end when a request failed (so alerts fire), after every other request was processed.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.finale_sync import _finale_client, _project_logs_to_run
from invsync.settings import load_settings
from pipeline.preflight import PreflightError, check_finale, check_warehouse
from tasks.writeback_tasks import load_requests_task, publish_summary, push_request_task
from warehouse.db import create_warehouse_engine
from writeback.migrate import create_app_engine
from writeback.preflight import check_app_database, check_catalogue
from writeback.run import WritebackSummary, run_writeback


class WritebackFailed(Exception):
    """The run could not start, or a request failed; ``summary`` has every outcome."""

    def __init__(self, message: str, summary: WritebackSummary | None = None) -> None:
        super().__init__(message)
        self.summary = summary

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self), self.summary)


@flow(name="supabase-to-finale", log_prints=True)
def supabase_to_finale(limit: int | None = None) -> WritebackSummary:
    """Push new and changed purchase-order requests from the app database to Finale.

    Args:
        limit: most requests to process in this run (the rest wait for the next run).

    Returns:
        The run's summary (``status`` ``skipped`` when another run held the lock).

    Raises:
        WritebackFailed: the run did not start, or a request failed (``summary`` says which).
    """
    logger = get_run_logger()
    settings = load_settings()
    settings.finale()  # fail now, naming the variable
    app_url = settings.app_db_url()
    run_id = str(flow_run.id) if flow_run.id else str(uuid.uuid4())
    try:
        check_app_database(app_url)
        check_warehouse(settings.warehouse_url, schema=settings.warehouse_schema)
        check_catalogue(settings.warehouse_url, schema=settings.warehouse_schema)
        with _finale_client(settings) as client:
            check_finale(client)
    except PreflightError as exc:
        logger.error("write-back not started: %s", exc)
        raise WritebackFailed(f"not started: {exc}") from None
    app = create_app_engine(app_url)
    warehouse = create_warehouse_engine(settings.warehouse_url, schema=settings.warehouse_schema)
    try:
        with (
            _finale_client(settings) as client,
            _project_logs_to_run(),
        ):
            summary = run_writeback(
                app,
                warehouse,
                client,
                run_id=run_id,
                limit=limit,
                process=push_request_task,
                load=load_requests_task,
            )
    finally:
        app.dispose()
        warehouse.dispose()
    counts = " ".join(f"{name}={count}" for name, count in summary.counts.items())
    if summary.status != "skipped":
        publish_summary(summary)
    if summary.status == "skipped":
        logger.warning("write-back skipped: %s", summary.error)
    else:
        logger.info("write-back %s: %s", summary.status, counts)
    if summary.status == "failed":
        for line in summary.requests:
            if line["outcome"] == "failed":
                logger.error("request %s failed: %s", line["request_id"], line["error"])
        raise WritebackFailed(summary.error or "a request failed", replace(summary))
    return summary
