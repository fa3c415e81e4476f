"""Reports count DISTINCT OPEN quarantine records, not reads: the data-quality report (by
rule, every rule, counts that add up), the status rows and the demo's lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from invsync.demo import quarantine_lines
from pipeline.quality import quality_report
from pipeline.status import all_statuses, entity_status
from warehouse import runs, state
from warehouse.runs import RunRecord, RunStatus, SyncSummary

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
RANGE = "cost must be between 0 and 1e+09"


def _bad(key: str | None, reasons: str, payload: Any = None) -> dict[str, Any]:
    return {"source_key": key, "reasons": reasons, "payload": payload or {"k": key}}


def _seed(engine: sa.Engine) -> None:
    """Three product runs that read the same bad records again, and one bad order."""
    name_and_range = f"{RANGE} (got 7e12); name is missing"
    five_rules = "a is missing; b is missing; c is missing; d is missing; e is missing"
    reads = [
        # SKU-1 fails the range rule with two different values over the runs.
        [_bad("SKU-1", f"{RANGE} (got 7e12)"), _bad("SKU-2", name_and_range),
         _bad("SKU-9", "name is missing")],
        [_bad("SKU-1", f"{RANGE} (got -5.0)"), _bad("SKU-2", name_and_range),
         _bad("SKU-3", "cost is not a number (got '12x')")],
        [_bad("SKU-1", f"{RANGE} (got -5.0)"), _bad(None, "productId is missing", {"url": "/p"}),
         _bad("SKU-4", five_rules)],
    ]  # fmt: skip
    with engine.begin() as conn:
        for i, records in enumerate(reads):
            at = NOW - timedelta(hours=3 - i)
            runs.start_run(conn, f"run-{i}", None, "products", "incremental", at)
            n = state.record_quarantine(conn, f"run-{i}", "products", records, at)
            runs.add_run_counts(conn, f"run-{i}", "products", extracted=10, quarantined=n)
            runs.finish_run(conn, f"run-{i}", "products", runs.SUCCEEDED, finished_at=at)
        state.resolve_quarantine(conn, "products", ["SKU-9"], NOW - timedelta(hours=1))
        order = _bad(
            "PO-1",
            "line 1: unit_price is missing; line 2: unit_price is missing; "
            "line 2: quantity must be >= 0 (got -1)",
        )
        state.record_quarantine(conn, "run-0", "purchase_orders", [order], NOW)


def test_quality_report_lists_every_rule_of_the_open_records(engine: sa.Engine) -> None:
    _seed(engine)
    with engine.connect() as conn:
        report = quality_report(conn, hours=24, now=NOW)
    by_entity = {e["entity"]: e for e in report["entities"]}
    products = by_entity["products"]

    # The runs read 9 bad records; 5 distinct records are open (SKU-9 loaded since).
    assert (products["runs"], products["extracted"], products["quarantined"]) == (3, 30, 9)
    assert products["open_quarantine"] == 5
    # (got 7e12) and (got -5.0) are one rule; every rule is listed, not a top 5.
    assert products["open_by_rule"] == [
        [RANGE, 2],
        ["a is missing", 1],
        ["b is missing", 1],
        ["c is missing", 1],
        ["cost is not a number", 1],
        ["d is missing", 1],
        ["e is missing", 1],
        ["name is missing", 1],
        ["productId is missing", 1],
    ]
    # The counts add up to the (open record, rule) failures.
    assert products["open_rule_failures"] == sum(n for _, n in products["open_by_rule"]) == 10

    orders = by_entity["purchase_orders"]
    assert orders["open_quarantine"] == 1
    assert orders["open_by_rule"] == [["quantity must be >= 0", 1], ["unit_price is missing", 1]]
    assert orders["open_rule_failures"] == 2
    assert by_entity["vendors"] | {"last_reconcile": None} == {
        "entity": "vendors", "runs": 0, "failed_runs": 0, "extracted": 0, "quarantined": 0,
        "quarantine_share": 0.0, "open_quarantine": 0, "open_by_rule": [],
        "open_rule_failures": 0, "last_reconcile": None,
    }  # fmt: skip


def test_status_rows_carry_the_open_quarantine_records(engine: sa.Engine) -> None:
    _seed(engine)
    with engine.connect() as conn:
        products = entity_status(conn, "products", NOW)
        rows = {r["entity"]: r for r in all_statuses(conn, NOW)}
    assert products["open_quarantine"] == 5
    assert products["metrics"]["errors"] == 3, "the latest run's own quarantined records"
    assert {name: r["open_quarantine"] for name, r in rows.items()} == {
        "facilities": 0,
        "vendors": 0,
        "products": 5,
        "stock": 0,
        "purchase_orders": 1,
    }


def test_demo_prints_each_runs_quarantine_and_the_open_records(engine: sa.Engine) -> None:
    _seed(engine)

    def record(entity: str, **fields: Any) -> RunRecord:
        return RunRecord(run_id="r", entity=entity, mode="full", **fields)

    full = SyncSummary(
        run_id="full",
        entities={
            "products": record("products", quarantined=6),
            "stock": record("stock", quarantined=0),
            "purchase_orders": record("purchase_orders", quarantined=1),
        },
    )
    inc = SyncSummary(
        run_id="inc",
        entities={
            "products": record("products", quarantined=3),
            "stock": record("stock", status=RunStatus.FAILED),
        },
    )
    with engine.connect() as conn:
        open_records = state.count_open_quarantine(conn)
    lines = quarantine_lines({"the full sync": full, "the incremental sync": inc}, open_records)
    assert lines == [
        "  the full sync quarantined 7 records it read (products 6, purchase_orders 1)",
        "  the incremental sync quarantined 3 records it read (products 3)",
        "  open quarantine: 6 records (distinct, not yet loaded cleanly; see the quarantine table)",
    ]
