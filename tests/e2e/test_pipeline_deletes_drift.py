"""Full runs find what incremental runs cannot, on PostgreSQL and SQLite.

Records deleted in Finale get ``deleted_at`` (an order's lines with it), deactivated
products turn INACTIVE, and rows changed in the warehouse behind the pipeline's back are
rewritten from the source; afterwards the run's source and warehouse counts and checksums
agree and the live rows equal the source.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from pipeline_e2e_support import (
    TABLES,
    Expected,
    assert_warehouse_matches,
    expected_warehouse,
    outcome,
    read_source,
    result_counts,
    rewritten,
    run_rows,
    run_sync,
    synced_at,
)

from pipeline.sync import EntityRunResult
from sandbox.control import SandboxControl
from sandbox.server import SandboxHandle
from schemas import tables

pytestmark = pytest.mark.slow


def deleted_keys(conn: sa.Connection, name: str) -> set[tuple[Any, ...]]:
    """Keys of the rows of ``name`` marked deleted."""
    table = TABLES[name]
    keys = [c for c in table.primary_key.columns]
    return set(conn.execute(sa.select(*keys).where(table.c.deleted_at.is_not(None))).tuples())


def assert_reconciled(
    conn: sa.Connection, run_id: str, results: dict[str, EntityRunResult], expected: Expected
) -> None:
    """Every entity run succeeded and its source and warehouse sides agree."""
    recorded = run_rows(conn, run_id)
    for entity, result in results.items():
        row = recorded[entity]
        assert row["status"] == "succeeded", (entity, row["error"])
        live = len(expected.rows[entity])
        assert row["source_count"] == row["warehouse_count"] == live, entity
        assert row["source_checksum"] == row["warehouse_checksum"], entity
        assert result.balanced, entity


def test_full_run_marks_deleted_records_and_reconciles(
    engine: sa.Engine, sandbox: SandboxHandle, control: SandboxControl
) -> None:
    run_sync(engine, sandbox, mode="full")
    before = expected_warehouse(read_source(sandbox))
    products = sorted(k for (k,) in before.rows["products"])
    orders = sorted(k for (k,) in before.rows["purchase_orders"])
    vendors = sorted(k for (k,) in before.rows["vendors"])
    never_loaded = sorted(before.quarantined["products"])[:1]
    gone = {
        "products": products[:3] + products[-2:],
        "purchase_orders": orders[:3],
        "vendors": vendors[:1],
    }
    collections = {"products": "product", "purchase_orders": "order", "vendors": "partygroup"}
    for entity, ids in gone.items():
        extra = never_loaded if entity == "products" else []
        assert control.delete(collections[entity], ids + extra) == ids + extra
    deactivated = control.deactivate_products(4)
    after = expected_warehouse(read_source(sandbox), known=before)
    with engine.connect() as conn:
        stamps = synced_at(conn)
    started = datetime.now(UTC)

    run = run_sync(engine, sandbox, mode="full")

    with engine.connect() as conn:
        assert_warehouse_matches(conn, after)
        assert_reconciled(conn, run.run_id, run.results, after)
        for entity, ids in gone.items():
            assert run.results[entity].deleted == len(ids), entity
            assert deleted_keys(conn, entity) == {(k,) for k in ids}, entity
        stamp = tables.products.c.deleted_at
        for when in conn.execute(sa.select(stamp).where(stamp.is_not(None))).scalars():
            assert when >= started
        lines = tables.purchase_order_lines
        deleted_lines = {k for k, _ in deleted_keys(conn, "purchase_order_lines")}
        live_orders = set(
            conn.execute(sa.select(lines.c.order_id).where(lines.c.deleted_at.is_(None))).scalars()
        )
        statuses = dict(
            conn.execute(sa.select(tables.products.c.sku, tables.products.c.status)).tuples().all()
        )
        moved = rewritten(stamps, synced_at(conn))
    assert deleted_lines == set(gone["purchase_orders"]), "a deleted order's lines go with it"
    assert not live_orders & set(gone["purchase_orders"])
    loaded_deactivated = [sku for sku in deactivated if (sku,) in before.rows["products"]]
    assert loaded_deactivated, "some deactivated products were loaded"
    for sku in loaded_deactivated:
        assert statuses[sku] == "PRODUCT_INACTIVE", sku
    products_outcome = outcome(before, after, "products", after.rows["products"])
    assert products_outcome.updated == {(sku,) for sku in loaded_deactivated}
    assert run.results["products"].updated == len(loaded_deactivated)
    # Only the deleted and the deactivated rows were written.
    assert moved["products"] == products_outcome.updated | {(k,) for k in gone["products"]}
    assert moved["stock"] == set()


def test_full_run_repairs_rows_changed_behind_its_back(
    engine: sa.Engine, sandbox: SandboxHandle
) -> None:
    run_sync(engine, sandbox, mode="full")
    expected = expected_warehouse(read_source(sandbox))
    sku = sorted(k for (k,) in expected.rows["products"])[7]
    pair = sorted(expected.rows["stock"])[11]
    line = sorted(expected.rows["purchase_order_lines"])[5]
    vendor = sorted(k for (k,) in expected.rows["vendors"])[0]
    now = datetime.now(UTC)
    with engine.begin() as conn:
        p, s, pol, v = (
            tables.products,
            tables.stock_levels,
            tables.purchase_order_lines,
            tables.vendors,
        )
        conn.execute(sa.update(p).where(p.c.sku == sku).values(cost=p.c.cost + 100))
        conn.execute(
            sa.update(s)
            .where(s.c.sku == pair[0], s.c.facility_id == pair[1])
            .values(quantity_on_hand=s.c.quantity_on_hand + 7)
        )
        conn.execute(
            sa.update(pol)
            .where(pol.c.order_id == line[0], pol.c.line_no == line[1])
            .values(unit_price=123.45)
        )
        conn.execute(sa.delete(v).where(v.c.party_id == vendor))
        conn.execute(
            sa.insert(p).values(
                sku="PHANTOM-1",
                finale_url="/acme/api/product/PHANTOM-1",
                name="Not in Finale",
                content_hash="0" * 32,
                synced_at=now,
            )
        )
        stamps = synced_at(conn)

    run = run_sync(engine, sandbox, mode="full")

    with engine.connect() as conn:
        assert_warehouse_matches(conn, expected)
        assert_reconciled(conn, run.run_id, run.results, expected)
        moved = rewritten(stamps, synced_at(conn))
        assert deleted_keys(conn, "products") == {("PHANTOM-1",)}
    counts = {e: result_counts(r) for e, r in run.results.items()}
    assert (counts["products"]["updated"], run.results["products"].deleted) == (1, 1)
    assert (counts["stock"]["updated"], counts["stock"]["inserted"]) == (1, 0)
    assert (counts["vendors"]["inserted"], counts["vendors"]["updated"]) == (1, 0)
    assert moved["products"] == {(sku,), ("PHANTOM-1",)}
    assert moved["stock"] == {pair}
    assert moved["vendors"] == {(vendor,)}
    assert moved["purchase_order_lines"] == {line}
    assert moved["purchase_orders"] == moved["facilities"] == set()
