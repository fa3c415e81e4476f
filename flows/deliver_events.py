"""The ``deliver-events`` flow: outbox events to their subscribers (``events.delivery``).

Runs every minute (``deliver-events-every-minute`` in prefect.yaml, one at a time). Each
run hands new events out, sends what is due, and logs counts per subscriber, by name only.

The run **fails** when a delivery died in it (used its attempts, or was refused with an
answer that is not worth repeating) or a subscriber could not be served (a database
error): a dead letter needs a person (fix the receiver, then ``invsync events replay``),
and a failed run is what Prefect's UI and automations notice. It fails once per death: a
dead delivery is not attempted again until replayed, so the next runs succeed. An open
circuit breaker or a subscriber another run is serving is not a failure: the deliveries
wait, nothing is lost.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from events.delivery import DeliveryCounts
from events.subscribers import process_environment, subscribers_from_settings
from invsync.settings import load_settings
from tasks.event_tasks import deliver_pending
from warehouse.db import create_warehouse_engine
from warehouse.migrate import upgrade


class DeliveriesFailed(Exception):
    """Deliveries died (or a subscriber could not be served) in this run; ``counts`` has all."""

    def __init__(self, message: str, counts: DeliveryCounts) -> None:
        super().__init__(message)
        self.counts = counts

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the counts through a copy or a pickle (the default passes only ``args``).
        return type(self), (str(self), self.counts)


@flow(name="deliver-events", log_prints=True)
def deliver_events(max_seconds: float = 50.0) -> dict[str, Any]:
    """Fan out and deliver outbox events once.

    Args:
        max_seconds: stop starting new attempts after this long, so a run started every
            minute ends before the next; what is left is sent by the next run.

    Returns:
        The run's counts (``DeliveryCounts.to_json``): totals and per subscriber.

    Raises:
        DeliveriesFailed: a delivery died in this run, or a subscriber could not be served.
    """
    logger = get_run_logger()
    settings = load_settings()
    # Secrets are resolved here, at the edge; below, nothing reads the environment.
    subscribers = subscribers_from_settings(settings.event_subscribers_file, process_environment())
    if not subscribers:
        logger.info("no enabled subscribers (EVENT_SUBSCRIBERS_FILE); nothing to deliver")
        return DeliveryCounts().to_json()
    upgrade(settings.warehouse_url, schema=settings.warehouse_schema)
    engine = create_warehouse_engine(settings.warehouse_url, schema=settings.warehouse_schema)
    try:
        counts = deliver_pending(engine, subscribers, max_seconds)
    finally:
        engine.dispose()
    for name, c in counts.subscribers.items():
        logger.info(
            "%s: delivered=%d retried=%d dead=%d skipped_open_circuit=%d pending=%d "
            "fanned_out=%d circuit=%s%s",
            name, c.delivered, c.retried, c.dead, c.skipped_open_circuit, c.pending,
            c.fanned_out, c.circuit, " (another run is serving it)" if c.locked else "",
        )  # fmt: skip
    problems = [f"{name}: {c.dead} dead" for name, c in counts.subscribers.items() if c.dead]
    problems += [f"{name}: {error}" for name, error in counts.errors.items()]
    if problems:
        raise DeliveriesFailed(
            "deliveries failed (see `invsync events list --status dead`): " + "; ".join(problems),
            counts,
        )
    return counts.to_json()
