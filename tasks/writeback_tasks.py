"""Thin Prefect tasks over ``writeback.run``: one task to read the requests, one per request.

A task is retried only for what a retry can fix (the app database hiccupped): Finale's own
transient failures are retried inside the connector, and a rejected credential is not
retried at all. Retrying a request is safe: its Finale ``orderId`` is derived from its id,
so a repeated create finds the order instead of making a second one.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from prefect import Task, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from connectors.finale import FinaleError
from connectors.redact import redact_secrets
from writeback.push import Decision, RequestPusher
from writeback.requests import PurchaseOrderRequest
from writeback.run import WritebackSummary, load_requests, process_request

log = logging.getLogger(__name__)

#: Artifact key of each run's per-request outcomes (its history is the runs' history).
SUMMARY_KEY = "writeback-requests"


def _worth_retrying(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    error = state.result(raise_on_failure=False)
    return not isinstance(error, FinaleError)


@task(
    name="load-po-requests",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
)
def load_requests_task(app: sa.Engine, limit: int | None = None) -> list[PurchaseOrderRequest]:
    """The purchase-order requests that may need work."""
    return load_requests(app, limit)


@task(
    name="push-po-request",
    task_run_name="po-request-{request.id}",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=_worth_retrying,
)
def push_request_task(
    request: PurchaseOrderRequest, pusher: RequestPusher, app: sa.Engine
) -> Decision:
    """Push one request to Finale and record its outcome in the app database."""
    return process_request(request, pusher, app)


def publish_summary(summary: WritebackSummary) -> None:
    """Publish the run's outcomes as the ``writeback-requests`` table artifact (best effort:
    the outcomes are already in the app database)."""
    counts = ", ".join(f"{name} {count}" for name, count in summary.counts.items() if count)
    rows = [
        {**line, "error": redact_secrets(line["error"]) if line["error"] else None}
        for line in summary.requests
    ]
    try:
        create_table_artifact(
            key=SUMMARY_KEY,
            table=rows or [{"request_id": None, "outcome": "no requests needed work"}],
            description=f"Write-back run `{summary.run_id}`: {summary.status}"
            + (f" ({counts})" if counts else ""),
            _sync=True,  # type: ignore[call-arg]
        )
    except Exception as exc:
        log.warning(
            "could not publish the %s artifact: %s",
            SUMMARY_KEY,
            redact_secrets(f"{type(exc).__name__}: {exc}"),
        )
