"""A full sync loses nothing and adds nothing, on PostgreSQL and SQLite.

Every record the sandbox holds becomes exactly one warehouse row or one quarantine record
(with its reasons and the raw record), the counts say which, and they agree with the
sandbox's own ground truth. A dry run does all of that and then writes nothing.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from pipeline_e2e_support import (
    TABLES,
    Source,
    assert_quarantine_matches,
    assert_warehouse_matches,
    expected_warehouse,
    live_count,
    outcome,
    read_source,
    result_counts,
    run_rows,
    run_sync,
    synced_at,
    watermarks,
)

from pipeline.entities import ENTITIES
from sandbox.control import SandboxControl
from sandbox.server import SandboxHandle
from schemas import tables

pytestmark = pytest.mark.slow


def ground_truth(control: SandboxControl, source: Source) -> dict[str, int]:
    """Records per entity, from the sandbox's own counts where it can count them."""
    for collection, records in source.records.items():
        assert len(records) == control.count(collection), f"incomplete read of {collection}"
    purchase = control.count("order", {"orderTypeId": ["PURCHASE_ORDER", "PURCHASE_ORDER"]})
    suppliers = [p for p in source.records["partygroup"] if "SUPPLIER" in p["roleTypeIdList"]]
    return {
        "facilities": control.count("facility"),
        "vendors": len(suppliers),
        "products": control.count("product"),
        "stock": control.count("inventoryitem"),  # stock counts the entries it reads
        "purchase_orders": purchase,
    }


def test_full_sync_accounts_for_every_source_record(
    engine: sa.Engine, sandbox: SandboxHandle, control: SandboxControl
) -> None:
    run = run_sync(engine, sandbox, mode="full", chunk_size=250)

    source = read_source(sandbox)
    expected = expected_warehouse(source)
    truth = ground_truth(control, source)
    assert expected.quarantined["products"], "the sandbox account has dirty products"
    assert run.results["products"].chunks > 1 and run.results["stock"].chunks > 1
    with engine.connect() as conn:
        runs = run_rows(conn, run.run_id)
        for entity, result in run.results.items():
            assert result.balanced, entity
            assert result.extracted == truth[entity] == expected.extracted[entity], entity
            assert result.quarantined == expected.quarantined_count(entity), entity
            assert (result.updated, result.unchanged, result.deleted) == (0, 0, 0), entity
            loaded = result.extracted - result.quarantined
            assert result.inserted == loaded == expected.loaded_count(entity), entity
            assert live_count(conn, TABLES[entity]) == len(expected.rows[entity]), entity
            recorded = runs[entity]
            assert recorded["status"] == "succeeded", (entity, recorded["error"])
            assert {k: recorded[k] for k in result_counts(result)} == result_counts(result)
            pairs = len(expected.rows[entity])  # reconciliation counts rows (stock: pairs)
            assert recorded["source_count"] == recorded["warehouse_count"] == pairs, entity
            assert recorded["source_checksum"] == recorded["warehouse_checksum"], entity
        assert_warehouse_matches(conn, expected)
        assert_quarantine_matches(conn, run.run_id, expected, source, ENTITIES)
        lines = sum(row[5] for row in expected.rows["purchase_orders"].values())
        assert live_count(conn, tables.purchase_order_lines) == lines


def test_dry_run_records_the_run_but_writes_no_rows(
    engine: sa.Engine, sandbox: SandboxHandle, control: SandboxControl
) -> None:
    # Stock resolves product URLs through the warehouse's product catalogue, which a dry
    # run over an empty warehouse leaves empty: it is dry-run below, over a loaded one.
    first = [e for e in ENTITIES if e != "stock"]
    dry = run_sync(engine, sandbox, entities=first, mode="full", dry_run=True)

    expected = expected_warehouse(read_source(sandbox))
    with engine.connect() as conn:
        for table in (*TABLES.values(), tables.quarantine, tables.sync_state):
            count = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            assert count == 0, f"a dry run wrote {count} rows to {table.name}"
        runs = run_rows(conn, dry.run_id)
    assert set(runs) == set(first)
    for entity, recorded in runs.items():
        assert recorded["mode"] == "full-dry-run"
        assert recorded["status"] == "succeeded", recorded["error"]
        assert recorded["extracted"] == expected.extracted[entity]
        assert recorded["quarantined"] == expected.quarantined_count(entity)
        assert recorded["inserted"] == expected.loaded_count(entity)

    # Over a loaded warehouse and changed records, a dry run counts the changes and still
    # leaves every row, and the watermark, as they were.
    run_sync(engine, sandbox, mode="full")
    before_source = read_source(sandbox)
    before = expected_warehouse(before_source)
    with engine.connect() as conn:
        stamps, marks = synced_at(conn), watermarks(conn)
    touched = control.touch("product", 12)
    after = expected_warehouse(read_source(sandbox))
    wanted = outcome(before, after, "products", [(sku,) for sku in touched])
    assert wanted.updated, "some touched products are loaded ones"

    dry = run_sync(engine, sandbox, entities=["products"], dry_run=True)

    assert result_counts(dry.results["products"]) == wanted.counts()
    with engine.connect() as conn:
        assert synced_at(conn) == stamps
        assert watermarks(conn) == marks
        assert_warehouse_matches(conn, before)
        quarantined = conn.execute(
            sa.select(sa.func.count()).where(tables.quarantine.c.run_id == dry.run_id)
        ).scalar_one()
        assert quarantined == 0
        recorded = run_rows(conn, dry.run_id)["products"]
    assert recorded["mode"] == "incremental-dry-run"
    assert recorded["updated"] == len(wanted.updated)
