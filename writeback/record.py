"""Write a decision back to the app database: the request's sync columns and conflicts."""

from __future__ import annotations

import sqlalchemy as sa

from writeback import tables as t
from writeback.push import Decision
from writeback.requests import PurchaseOrderRequest


def record(conn: sa.Connection, request: PurchaseOrderRequest, decision: Decision) -> Decision:
    """Store ``decision`` for ``request`` (in the caller's transaction); returns it.

    Only write-back's own columns are written, so an app edit made meanwhile is kept, and
    ``synced_at`` is set to when the request was *read*: an edit made after that still shows
    as ``updated_at > synced_at`` on the next run. A conflict already open for the same app
    state is not recorded twice (the outcome becomes ``unchanged``).
    """
    if decision.conflict is not None:
        c = t.conflicts
        already = conn.execute(
            sa.select(c.c.id).where(
                c.c.request_id == request.id,
                c.c.resolved_at.is_(None),
                c.c.app_hash == decision.conflict["app_hash"],
                c.c.app_status == decision.conflict["app_status"],
            )
        ).first()
        if already is None:
            conn.execute(sa.insert(c).values(**decision.conflict))
        else:
            decision.outcome = "unchanged"
    if decision.resolve_conflicts:
        conn.execute(
            sa.update(t.conflicts)
            .where(t.conflicts.c.request_id == request.id, t.conflicts.c.resolved_at.is_(None))
            .values(resolved_at=sa.func.now())
        )
    changes = dict(decision.changes)
    if decision.looked:
        changes["synced_at"] = request.read_at
    conn.execute(sa.update(t.requests).where(t.requests.c.id == request.id).values(**changes))
    return decision
