"""Incremental runs write exactly what changed in Finale, on PostgreSQL and SQLite.

After a full sync, an incremental run with no changes writes nothing. Then records change in
the sandbox the ways people change them in Finale (edits, cancelled orders, deactivated
products, stock moves); the next incremental run must report exactly those records, rewrite
exactly their rows (``synced_at`` moves on no other row), and leave the warehouse equal to
the source again.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from pipeline_e2e_support import (
    all_keys,
    assert_warehouse_matches,
    changed_records,
    expected_warehouse,
    outcome,
    read_source,
    result_counts,
    rewritten,
    run_sync,
    synced_at,
    watermarks,
)

from pipeline.entities import ENTITIES
from sandbox.control import SandboxControl
from sandbox.server import SandboxHandle

pytestmark = pytest.mark.slow


def test_incremental_run_writes_exactly_the_changed_records(
    engine: sa.Engine, sandbox: SandboxHandle, control: SandboxControl
) -> None:
    run_sync(engine, sandbox, mode="full")
    before_source = read_source(sandbox)
    before = expected_warehouse(before_source)
    with engine.connect() as conn:
        stamps = synced_at(conn)
        first_marks = watermarks(conn)

    quiet = run_sync(engine, sandbox)

    with engine.connect() as conn:
        assert synced_at(conn) == stamps, "a run without source changes rewrote rows"
        marks = watermarks(conn)
    for entity, result in quiet.results.items():
        assert (result.inserted, result.updated) == (0, 0), entity
        assert result.status == "succeeded", (entity, result.error)
    assert quiet.results["products"].extracted == 0
    # Stock is read whole every time and counted in entries: every loaded one is unchanged.
    assert quiet.results["stock"].unchanged == before.loaded_count("stock")
    for entity, mark in marks.items():
        assert mark is not None and mark >= first_marks[entity], entity

    touched = set(control.touch("product", 25))
    deactivated = set(control.deactivate_products(5))
    cancelled = set(control.cancel_orders(6))
    due_moved = set(control.touch("order", 4))
    renamed_parties = set(control.touch("partygroup", 6))
    renamed_facilities = set(control.touch("facility", 2))
    restocked = set(control.change_stock(20))
    after_source = read_source(sandbox)
    after = expected_warehouse(after_source)

    run = run_sync(engine, sandbox)

    # What changed, by the sandbox's account of its own changes.
    changed = {e: changed_records(before_source, after_source, e) for e in ENTITIES if e != "stock"}
    assert changed["products"] == {str(k) for k in touched | deactivated}
    suppliers = {p["partyId"] for p in after_source.of("vendors")}
    assert changed["vendors"] == {str(k) for k in renamed_parties} & suppliers
    assert changed["facilities"] == {str(k) for k in renamed_facilities}
    purchase = {o["orderId"] for o in after_source.of("purchase_orders")}
    assert changed["purchase_orders"] == {str(k) for k in cancelled | due_moved} & purchase
    assert changed["purchase_orders"], "some cancelled or moved orders are purchase orders"
    wanted = {e: outcome(before, after, e, [(k,) for k in keys]) for e, keys in changed.items()}
    # Stock is read whole every time; only the pairs whose sums moved may be written.
    wanted["stock"] = outcome(before, after, "stock", all_keys(after, "stock"))
    assert wanted["stock"].updated, "the stock moves changed some pairs"
    assert {sku for sku, _ in wanted["stock"].updated} <= set(restocked)

    with engine.connect() as conn:
        moved = rewritten(stamps, synced_at(conn))
        assert_warehouse_matches(conn, after)
    for entity, result in run.results.items():
        assert result_counts(result) == wanted[entity].counts(), entity
        assert result.balanced and result.status == "succeeded", entity
        assert moved[entity] == wanted[entity].written, entity
    assert wanted["products"].updated, "touched and deactivated products are rewritten"
    # Cancelling an order or moving its due date leaves its lines alone.
    assert moved["purchase_order_lines"] == set()
    with engine.connect() as conn:
        statuses = dict(conn.execute(sa.text("SELECT sku, status FROM products")).tuples().all())
    for sku in deactivated:
        if (sku,) in after.rows["products"]:
            assert statuses[sku] == "PRODUCT_INACTIVE", sku
