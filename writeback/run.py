"""One write-back run: lock, read the requests that need work, process and record each.

Plain functions: the ``supabase-to-finale`` flow wraps them in tasks, tests call them as is.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from connectors.finale import FinaleClient
from writeback.push import OUTCOMES, Decision, RequestPusher
from writeback.record import record
from writeback.requests import PurchaseOrderRequest, load_candidates

#: Advisory lock key of write-back runs (one at a time per app database).
RUN_LOCK_ID = 0x1A5B_0012


class WritebackLocked(Exception):
    """Another write-back run holds the lock; this one did nothing."""


@dataclass
class WritebackSummary:
    """What a run did.

    Attributes:
        run_id: the run (the Prefect flow run id when run as a flow).
        status: ``succeeded`` (no request failed), ``failed`` (one did, or the run
            stopped), or ``skipped`` (another run held the lock).
        counts: requests per outcome (every outcome present, zeros included).
        requests: one summary line per processed request.
        error: why the run failed or was skipped.
    """

    run_id: str
    started_at: datetime
    finished_at: datetime | None = None
    status: str = "running"
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    requests: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def add(self, decision: Decision) -> None:
        """Count a processed request."""
        self.counts[decision.outcome] += 1
        self.requests.append(decision.summary())

    def finish(self, status: str | None = None, error: str | None = None) -> WritebackSummary:
        """Close the summary: failed when a request failed, unless told otherwise."""
        self.finished_at = datetime.now(UTC)
        self.error = error or self.error
        if status is None:
            status = "failed" if self.counts["failed"] else "succeeded"
            if self.counts["failed"] and not self.error:
                ids = [r["request_id"] for r in self.requests if r["outcome"] == "failed"]
                self.error = f"{len(ids)} request(s) failed: {', '.join(map(str, ids[:20]))}"
        self.status = status
        return self

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (``invsync writeback --json``)."""
        return {
            "flow": "supabase-to-finale",
            "run_id": self.run_id,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "counts": dict(self.counts),
            "requests": list(self.requests),
            "error": self.error,
        }


@contextmanager
def run_lock(app: sa.Engine) -> Iterator[None]:
    """Hold the write-back lock of this app database for the block.

    A transaction-scoped advisory lock on a connection of its own, held open for the run: it
    also works through Supabase's transaction pooler, which pins the connection while a
    transaction is open. Two runs at once could each create a request's order.

    Raises:
        WritebackLocked: another run holds it.
    """
    with app.connect() as conn, conn.begin():
        got = conn.execute(
            sa.text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": RUN_LOCK_ID}
        ).scalar_one()
        if not got:
            raise WritebackLocked(
                "another write-back run is in progress on this app database; this run did "
                "nothing (the next scheduled run picks up where it ends)"
            )
        yield


def load_requests(app: sa.Engine, limit: int | None = None) -> list[PurchaseOrderRequest]:
    """The requests that may need work (see ``writeback.requests``)."""
    with app.connect() as conn:
        return load_candidates(conn, limit)


def process_request(
    request: PurchaseOrderRequest, pusher: RequestPusher, app: sa.Engine
) -> Decision:
    """Process one request and record the outcome in its own transaction."""
    decision = pusher.process(request)
    with app.begin() as conn:
        return record(conn, request, decision)


Process = Callable[[PurchaseOrderRequest, RequestPusher, sa.Engine], Decision]


def run_writeback(
    app: sa.Engine,
    warehouse: sa.Engine,
    client: FinaleClient,
    *,
    run_id: str | None = None,
    limit: int | None = None,
    process: Process = process_request,
    load: Callable[[sa.Engine, int | None], list[PurchaseOrderRequest]] = load_requests,
) -> WritebackSummary:
    """Push every request that needs it to Finale and write the outcomes back.

    Args:
        app: engine on the app database (the ``purchase_order_requests`` tables).
        warehouse: engine on the warehouse (vendors, facilities, products from Finale).
        client: the Finale client.
        run_id: the run's id (default: a new UUID).
        limit: most requests to process in this run (the rest wait for the next).
        process: processes one request (the flow passes its task).
        load: reads the requests (the flow passes its task).

    Returns:
        The summary; ``status`` is ``failed`` when a request failed, ``skipped`` when
        another run held the lock.

    Raises:
        AuthError: Finale rejected the credentials (nothing more was tried).
    """
    summary = WritebackSummary(run_id=run_id or str(uuid.uuid4()), started_at=datetime.now(UTC))
    try:
        with run_lock(app):
            pusher = RequestPusher(client, warehouse)
            for request in load(app, limit):
                summary.add(process(request, pusher, app))
    except WritebackLocked as exc:
        return summary.finish("skipped", str(exc))
    return summary.finish()
