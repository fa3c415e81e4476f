"""Outbound events recorded by real syncs against the sandbox, on SQLite and PostgreSQL.

The expected events come from the warehouse rows and the sandbox's answers, computed here
in plain Python; the outbox must hold exactly those, once each, and nothing for a chunk
whose transaction rolled back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from pipeline_e2e_support import read_collection, run_sync

from events.outbox import read_events
from pipeline import sync as sync_module
from sandbox.control import SandboxControl
from sandbox.server import SandboxHandle
from schemas.tables import event_watch, products, purchase_orders, stock_levels


def _events_after(engine: sa.Engine, seen: int) -> list[tuple[str, str, dict[str, Any]]]:
    with engine.connect() as conn:
        return [(e.type, e.entity_key, e.payload) for e in read_events(conn)[seen:]]


def _count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return len(read_events(conn))


def _order_statuses(engine: sa.Engine) -> dict[str, str | None]:
    query = sa.select(purchase_orders.c.order_id, purchase_orders.c.status).where(
        purchase_orders.c.deleted_at.is_(None)
    )
    with engine.connect() as conn:
        return dict(conn.execute(query).all())


def test_the_first_sync_is_a_baseline_and_each_run_that_changed_rows_says_so(
    engine: sa.Engine, sandbox: SandboxHandle
) -> None:
    run = run_sync(engine, sandbox)
    events = _events_after(engine, 0)
    # No "created" flood for the account's history; one sync.completed per entity loaded.
    assert {t for t, _, _ in events} == {"sync.completed"}
    changed = {n for n, r in run.results.items() if r.inserted or r.updated or r.deleted}
    assert changed == set(run.results)
    completed = {p["entity"]: p for _, _, p in events}
    assert set(completed) == changed
    orders = run.results["purchase_orders"]
    assert completed["purchase_orders"]["inserted"] == orders.inserted
    assert completed["purchase_orders"]["quarantined"] == orders.quarantined
    assert orders.events == {"sync.completed": 1}
    run_again = run_sync(engine, sandbox)
    assert _events_after(engine, len(events)) == []  # nothing changed: nothing announced
    assert all(r.events == {} for r in run_again.results.values())


def test_order_status_changes_are_announced_once_and_not_for_a_rolled_back_chunk(
    engine: sa.Engine,
    sandbox: SandboxHandle,
    control: SandboxControl,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_sync(engine, sandbox)
    before = _order_statuses(engine)
    seen = _count(engine)
    cancelled = [str(i) for i in control.cancel_orders(6)]
    expected = {k: before[k] for k in cancelled if k in before}  # quarantined ones are not
    assert len(expected) >= 3

    # The chunk's rows are written, then its transaction fails: no rows, no events.
    real = sync_module.runs.add_run_counts

    def fail_orders(conn: sa.Connection, run_id: str, entity: str, **counts: int) -> None:
        if entity == "purchase_orders":
            raise RuntimeError("the database went away mid-chunk")
        real(conn, run_id, entity, **counts)

    monkeypatch.setattr(sync_module.runs, "add_run_counts", fail_orders)
    with pytest.raises(RuntimeError, match="went away"):
        run_sync(engine, sandbox, entities=["purchase_orders"])
    assert _events_after(engine, seen) == []
    assert _order_statuses(engine) == before
    monkeypatch.undo()

    run = run_sync(engine, sandbox, entities=["purchase_orders"])
    events = _events_after(engine, seen)
    changes = {k: p for t, k, p in events if t == "purchase_order.status_changed"}
    assert {k: p["previous_status"] for k, p in changes.items()} == expected
    assert {p["status"] for p in changes.values()} == {"ORDER_CANCELLED"}
    assert [t for t, _, _ in events].count("sync.completed") == 1
    assert len(events) == len(expected) + 1
    assert run.results["purchase_orders"].events == {
        "purchase_order.status_changed": len(expected),
        "sync.completed": 1,
    }
    # Every event about an order is in the order's own transaction: the run id is the run's.
    assert {p.get("order_id", k) for t, k, p in events if t != "sync.completed"} == set(expected)
    run_sync(engine, sandbox, entities=["purchase_orders"])
    assert len(_events_after(engine, seen)) == len(events)


def test_a_new_order_in_finale_is_announced_as_created(
    engine: sa.Engine, sandbox: SandboxHandle, control: SandboxControl
) -> None:
    run_sync(engine, sandbox)
    seen = _count(engine)
    loaded = _order_statuses(engine)
    template = next(
        r for r in read_collection(sandbox, "order")
        if r.get("orderId") in loaded and r.get("orderTypeId") == "PURCHASE_ORDER"
    )  # fmt: skip
    url = str(template["orderUrl"]).rsplit("/", 1)[0] + "/EVT-1"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    record = {**template, "orderId": "EVT-1", "orderUrl": url, "lastUpdatedDate": now}
    assert control.add_records("order", [record]) == 1
    run_sync(engine, sandbox, entities=["purchase_orders"])
    events = _events_after(engine, seen)
    created = [(k, p) for t, k, p in events if t == "purchase_order.created"]
    assert [k for k, _ in created] == ["EVT-1"]
    assert created[0][1]["finale_url"] == url
    assert created[0][1]["status"] == template["statusId"]


def _below_reorder_point(engine: sa.Engine) -> set[str]:
    """SKUs below their reorder point, computed here from the warehouse's rows."""
    with engine.connect() as conn:
        points = {
            sku: point
            for sku, point, status in conn.execute(
                sa.select(products.c.sku, products.c.reorder_point, products.c.status).where(
                    products.c.deleted_at.is_(None)
                )
            )
            if status == "PRODUCT_ACTIVE" and point is not None and point > 0
        }
        held: dict[str, Decimal] = {}
        for sku, available in conn.execute(
            sa.select(stock_levels.c.sku, stock_levels.c.quantity_available).where(
                stock_levels.c.deleted_at.is_(None)
            )
        ):
            held[sku] = held.get(sku, Decimal(0)) + available
    return {sku for sku, point in points.items() if held.get(sku, Decimal(0)) < point}


def test_stock_falling_below_its_reorder_point_is_announced_once_per_crossing(
    engine: sa.Engine, sandbox: SandboxHandle, control: SandboxControl
) -> None:
    run_sync(engine, sandbox)
    below = _below_reorder_point(engine)
    with engine.connect() as conn:
        watched = set(
            conn.execute(
                sa.select(event_watch.c.entity_key).where(
                    event_watch.c.rule == "stock.below_reorder_point",
                    event_watch.c.entity_key != "",
                )
            ).scalars()
        )
    assert watched == below  # the baseline holds exactly the SKUs below, silently
    seen = _count(engine)

    # A product sync raises five reorder points well above what is held (as a buyer would in
    # Finale); the next stock run finds them below, as does a stock variance.
    with engine.begin() as conn:
        held = dict(
            conn.execute(
                sa.select(stock_levels.c.sku, sa.func.sum(stock_levels.c.quantity_available))
                .group_by(stock_levels.c.sku)
                .having(sa.func.sum(stock_levels.c.quantity_available) > 0)
            ).all()
        )
        raised = sorted(
            sku
            for sku in conn.execute(
                sa.select(products.c.sku).where(products.c.status == "PRODUCT_ACTIVE")
            ).scalars()
            if sku in held and sku not in below
        )[:5]
        for sku in raised:
            conn.execute(
                sa.update(products)
                .where(products.c.sku == sku)
                .values(reorder_point=held[sku] + 1000)
            )
    control.change_stock(40)
    run_sync(engine, sandbox, entities=["stock"])
    now_below = _below_reorder_point(engine)
    assert set(raised) <= now_below
    events = _events_after(engine, seen)
    announced = [k for t, k, _ in events if t == "stock.below_reorder_point"]
    assert sorted(announced) == sorted(now_below - below)
    for _, sku, payload in events:
        if sku in raised:
            assert Decimal(payload["quantity_available"]) < Decimal(payload["reorder_point"])
    run_sync(engine, sandbox, entities=["stock"])
    assert [t for t, _, _ in _events_after(engine, seen + len(events))] == []
