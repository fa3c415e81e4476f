"""Thin task over the delivery engine (``events.delivery``)."""

from __future__ import annotations

import sqlalchemy as sa
from prefect import task
from prefect.cache_policies import NO_CACHE

from events.delivery import DeliveryCounts, deliver
from events.subscribers import Subscriber


@task(name="deliver-pending-events", cache_policy=NO_CACHE)
def deliver_pending(
    engine: sa.Engine, subscribers: list[Subscriber], max_seconds: float | None
) -> DeliveryCounts:
    """Fan out new events and send what is due (``events.delivery.deliver``).

    No task retries: a delivery that failed is already scheduled again in the database,
    with its own backoff; retrying the task would only shorten that backoff.
    """
    return deliver(engine, subscribers, max_seconds=max_seconds)
