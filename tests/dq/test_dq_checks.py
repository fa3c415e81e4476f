"""Each data-quality check measures what the warehouse holds: known rows in, known figures out.

The warehouse is real (the ``engine`` fixture: SQLite and PostgreSQL, migrated); the rows
are written here with known defects (a missing URL, a duplicated URL, orphans, open
quarantine, an old sync, a full run that did not reconcile), so every measured value,
threshold and verdict is stated exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from pipeline.dq import DQConfig, measure, parse_dq_config
from pipeline.dq.report import run_checks
from pipeline.status import entity_status
from schemas import tables
from warehouse import dq
from warehouse.dq import CheckResult
from warehouse.runs import finish_run, start_run
from warehouse.state import record_quarantine

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)
UPDATED = NOW - timedelta(hours=30)
SYNC = dict(content_hash="0" * 32, synced_at=NOW)


def _insert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    names = {name for row in rows for name in row}
    conn.execute(sa.insert(table), [{**SYNC, **dict.fromkeys(names), **row} for row in rows])


def _run(
    conn: sa.Connection, entity: str, finished: datetime, *, mode: str = "incremental", **kw: Any
) -> None:
    run_id = f"run-{entity}-{finished.isoformat()}-{mode}"
    start_run(conn, run_id, None, entity, mode, finished - timedelta(seconds=5))
    finish_run(conn, run_id, entity, kw.pop("status", "succeeded"), finished_at=finished, **kw)


@pytest.fixture
def warehouse(engine: sa.Engine) -> sa.Engine:
    """Vendors, products, facilities, stock and orders with known defects."""
    with engine.begin() as conn:
        _insert(
            conn,
            tables.facilities,
            [
                {
                    "facility_id": "F1",
                    "facility_url": "/f/1",
                    "name": "Main",
                    "last_updated_at": UPDATED,
                },
                {
                    "facility_id": "F2",
                    "facility_url": "/f/2",
                    "name": "Shelf",
                    "parent_facility_id": "F1",
                },
                # A parent that is not in the warehouse: an orphan of the self-reference.
                {
                    "facility_id": "F3",
                    "facility_url": "/f/3",
                    "name": "Lost",
                    "parent_facility_id": "F9",
                },
            ],
        )
        _insert(
            conn,
            tables.vendors,
            [
                {"party_id": "V1", "finale_url": "/v/1", "name": "Acme"},
                {"party_id": "V2", "finale_url": "/v/2", "name": "Gone", "deleted_at": NOW},
            ],
        )
        _insert(
            conn,
            tables.products,
            [
                {
                    "sku": "P1",
                    "finale_url": "/p/1",
                    "primary_vendor_party_id": "V1",
                    "last_updated_at": NOW - timedelta(hours=2),
                },
                # Deleted vendors still count as present (as for the catalogues).
                {"sku": "P2", "finale_url": "/p/2", "primary_vendor_party_id": "V2"},
                {
                    "sku": "P3",
                    "finale_url": "/p/2",
                    "primary_vendor_party_id": "V7",
                },  # dup URL, orphan
                {"sku": "P4", "finale_url": "/p/4", "primary_vendor_party_id": None},
                # Deleted rows are not measured at all.
                {
                    "sku": "P5",
                    "finale_url": "/p/4",
                    "primary_vendor_party_id": "V8",
                    "deleted_at": NOW,
                },
            ],
        )
        _insert(
            conn,
            tables.stock_levels,
            [
                {
                    "sku": s,
                    "facility_id": f,
                    "quantity_on_hand": 1,
                    "quantity_on_order": 0,
                    "quantity_reserved": 0,
                    "quantity_available": 1,
                }
                for s, f in [("P1", "F1"), ("P2", "F2"), ("P9", "F1"), ("P1", "F8")]
            ],
        )
        _insert(
            conn,
            tables.purchase_orders,
            [
                {
                    "order_id": "O1",
                    "finale_url": "/o/1",
                    "vendor_party_id": "V1",
                    "destination_facility_id": "F1",
                },
            ],
        )
        _insert(
            conn,
            tables.purchase_order_lines,
            [
                {"order_id": "O1", "line_no": n, "sku": sku}
                for n, sku in enumerate(["P1", "P2", "P404", None], start=1)
            ],
        )
        # Products: two open records (one failing two rules), one resolved entry (ignored).
        record_quarantine(
            conn,
            "r1",
            "products",
            [
                {
                    "source_key": "P6",
                    "reasons": ["cost must be between 0 and 1e+09 (got -5.0)", "name is missing"],
                    "payload": {},
                },
                {"source_key": "P7", "reasons": "name is missing", "payload": {}},
                {"source_key": "P8", "reasons": "name is missing", "payload": {}},
            ],
            NOW,
        )
        conn.execute(
            sa.update(tables.quarantine)
            .where(tables.quarantine.c.record_key == "P8")
            .values(resolved_at=NOW)
        )
        _run(conn, "products", NOW - timedelta(minutes=10))
        _run(conn, "vendors", NOW - timedelta(hours=5))  # 5 h old: an hourly entity, overdue
        _run(
            conn,
            "stock",
            NOW - timedelta(hours=1),
            mode="full",
            source_count=5,
            warehouse_count=4,
            source_checksum="a",
            warehouse_checksum="b",
        )
        _run(
            conn,
            "facilities",
            NOW - timedelta(hours=2),
            mode="full",
            source_count=3,
            warehouse_count=3,
            source_checksum="c",
            warehouse_checksum="c",
        )
    return engine  # fmt: skip


def _by(results: list[CheckResult]) -> dict[tuple[str, str, str], CheckResult]:
    return {(r.entity, r.check, r.subject): r for r in results}


def _measure(engine: sa.Engine, config: DQConfig | None = None, **kw: Any) -> dict:
    with engine.connect() as conn:
        return _by(measure(conn, config or DQConfig(), report_id="t", now=NOW, **kw))


def test_row_counts_and_completeness_count_live_rows_only(warehouse: sa.Engine) -> None:
    got = _measure(warehouse, entities=["products"], checks=["row_count", "completeness"])
    rows = got[("products", "row_count", "")]
    assert (rows.measured, rows.threshold, rows.passed) == (4, 1, True)
    # Key columns: the primary key and the Finale URL; both complete among live rows.
    assert got[("products", "completeness", "sku")].measured == 1.0
    assert got[("products", "completeness", "finale_url")].measured == 1.0
    assert ("products", "completeness", "primary_vendor_party_id") not in got


def test_completeness_of_a_column_the_thresholds_name(warehouse: sa.Engine) -> None:
    config = parse_dq_config(
        {"entities": {"products": {"min_completeness_by_column": {"primary_vendor_party_id": 0.8}}}}
    )
    got = _measure(warehouse, config, entities=["products"], checks=["completeness"])
    result = got[("products", "completeness", "primary_vendor_party_id")]
    assert (result.measured, result.threshold, result.passed) == (0.75, 0.8, False)
    assert result.detail.startswith("3 of 4 live rows have primary_vendor_party_id")


def test_uniqueness_finds_a_shared_url_but_not_one_shared_with_a_deleted_row(
    warehouse: sa.Engine,
) -> None:
    got = _measure(warehouse, entities=["products", "stock"], checks=["uniqueness"])
    url = got[("products", "uniqueness", "finale_url")]
    assert (url.measured, url.passed) == (1, False)
    assert url.detail == "1 surplus rows share 1 finale_url values"
    assert got[("products", "uniqueness", "sku")].passed
    assert got[("stock", "uniqueness", "sku+facility_id")].measured == 0


def test_referential_integrity_of_each_declared_reference(warehouse: sa.Engine) -> None:
    got = _measure(warehouse, checks=["referential"])
    vendor = got[("products", "referential", "products.primary_vendor_party_id -> vendors")]
    # P1 -> V1 and P2 -> V2 (deleted, still present) resolve; P3 -> V7 does not; P4 is null.
    assert (vendor.measured, vendor.passed) == (pytest.approx(1 / 3), False)
    stock_sku = got[("stock", "referential", "stock_levels.sku -> products")]
    stock_facility = got[("stock", "referential", "stock_levels.facility_id -> facilities")]
    assert stock_sku.measured == stock_facility.measured == 0.25
    lines = got[("purchase_orders", "referential", "purchase_order_lines.sku -> products")]
    assert lines.measured == pytest.approx(1 / 3)
    assert lines.detail.startswith("1 of 3 purchase_order_lines.sku values name no products.sku")
    parent = got[("facilities", "referential", "facilities.parent_facility_id -> facilities")]
    assert (parent.measured, parent.passed) == (0.5, False)
    orders = got[("purchase_orders", "referential", "purchase_orders.vendor_party_id -> vendors")]
    assert orders.passed and orders.measured == 0.0


def test_validity_counts_open_records_per_rule_and_quarantine_their_share(
    warehouse: sa.Engine,
) -> None:
    got = _measure(warehouse, entities=["products", "vendors"], checks=["validity", "quarantine"])
    # 4 live rows + 2 open records = 6 records; the resolved entry is history.
    name = got[("products", "validity", "name is missing")]
    cost = got[("products", "validity", "cost must be between 0 and 1e+09")]
    assert (name.measured, name.threshold, name.passed) == (pytest.approx(2 / 6), 0.05, False)
    assert cost.measured == pytest.approx(1 / 6)
    share = got[("products", "quarantine", "")]
    assert (share.measured, share.passed) == (pytest.approx(2 / 6), False)
    assert share.detail.startswith("2 open quarantine records of 6")
    clean = got[("vendors", "validity", "")]
    assert (clean.measured, clean.passed) == (0.0, True)


def test_freshness_of_data_and_of_the_last_successful_sync(warehouse: sa.Engine) -> None:
    got = _measure(warehouse, checks=["data_freshness", "sync_freshness"])
    products = got[("products", "data_freshness", "")]
    assert (products.measured, products.threshold, products.passed) == (2.0, 720.0, True)
    assert ("stock", "data_freshness", "") not in got, "stock_levels has no last_updated_at"
    synced = got[("products", "sync_freshness", "")]
    # Products are expected every 15 minutes: at most 2 x 0.25 h.
    assert (synced.measured, synced.threshold, synced.passed) == (
        pytest.approx(10 / 60, abs=1e-3), 0.5, True)  # fmt: skip
    vendors = got[("vendors", "sync_freshness", "")]
    assert (vendors.measured, vendors.threshold, vendors.passed) == (5.0, 2.0, False)
    never = got[("purchase_orders", "sync_freshness", "")]
    assert (never.measured, never.passed, never.detail) == (
        None, False, "never synced successfully")  # fmt: skip


def test_reconciliation_of_the_last_full_run(warehouse: sa.Engine) -> None:
    got = _measure(warehouse, checks=["reconciliation"])
    assert got[("stock", "reconciliation", "")].passed is False
    assert got[("stock", "reconciliation", "")].measured == 0.0
    assert got[("facilities", "reconciliation", "")].measured == 1.0
    assert got[("products", "reconciliation", "")].detail == "no full run yet"
    lenient = parse_dq_config({"entities": {"stock": {"require_reconciled": False}}})
    assert _measure(warehouse, lenient, checks=["reconciliation"])[
        ("stock", "reconciliation", "")
    ].passed


def test_row_change_compares_with_the_previous_report_and_a_rerun_replaces_its_rows(
    warehouse: sa.Engine,
) -> None:
    config = DQConfig()
    first = run_checks(warehouse, config, report_id="r1", origin="report", now=NOW)
    assert _by(first.results)[("products", "row_change", "")].measured is None
    with warehouse.begin() as conn:
        conn.execute(
            sa.update(tables.products)
            .where(tables.products.c.sku.in_(["P1", "P2", "P3"]))
            .values(deleted_at=NOW)
        )
    later = NOW + timedelta(hours=1)
    second = run_checks(warehouse, config, report_id="r2", origin="report", now=later)
    change = _by(second.results)[("products", "row_change", "")]
    assert (change.measured, change.threshold, change.passed) == (-0.75, -0.5, False)
    assert change.detail.startswith("4 -> 1 live rows (-75.0%")
    # The same report again: compared with r1 still (never with itself), rows replaced.
    again = run_checks(warehouse, config, report_id="r2", origin="report", now=later)
    assert _by(again.results)[("products", "row_change", "")].measured == -0.75
    assert again.replaced_dates == {later.date()}
    with warehouse.connect() as conn:
        stored = dq.report_results(conn, "r2")
        total = conn.execute(sa.select(sa.func.count()).select_from(tables.dq_results)).scalar()
    assert len(stored) == len(again.results) and total == len(first.results) + len(stored)
    row = next(r for r in stored if (r.entity, r.check) == ("products", "row_change"))
    assert (row.measured, row.threshold, row.passed, row.origin) == (-0.75, -0.5, False, "report")
    assert row.reported_at == later


def test_a_failed_check_makes_an_otherwise_healthy_entity_degraded(
    warehouse: sa.Engine,
) -> None:
    with warehouse.connect() as conn:
        before = entity_status(conn, "products", NOW)
    assert (before["status"], before["failed_checks"]) == ("operational", [])
    run_checks(warehouse, DQConfig(), report_id="r1", origin="report", now=NOW,
               entities=["products"])  # fmt: skip
    with warehouse.connect() as conn:
        after = entity_status(conn, "products", NOW)
    assert after["status"] == "degraded" and after["health_score"] == before["health_score"]
    assert after["failed_checks"] == [
        "quarantine",
        "referential[products.primary_vendor_party_id -> vendors]",
        "uniqueness[finale_url]",
        "validity[cost must be between 0 and 1e+09]",
        "validity[name is missing]",
    ]
    # A sync's checks (no referential, no uniqueness) leave the report's verdicts standing;
    # they replace only what they measure again.
    lenient = parse_dq_config(
        {"defaults": {"max_invalid_share": 0.5, "max_open_quarantine_share": 0.5}}
    )
    run_checks(warehouse, lenient, report_id="s1", origin="sync", entities=["products"],
               checks=lenient.sync_checks, now=NOW + timedelta(minutes=1))  # fmt: skip
    with warehouse.connect() as conn:
        later = entity_status(conn, "products", NOW)
    assert later["failed_checks"] == [
        "referential[products.primary_vendor_party_id -> vendors]",
        "uniqueness[finale_url]",
    ]


def test_an_app_entity_is_measured_once_it_has_run(warehouse: sa.Engine) -> None:
    assert "purchase_order_requests" not in {e for e, _, _ in _measure(warehouse)}
    with warehouse.begin() as conn:
        _insert(
            conn,
            tables.app_purchase_order_requests,
            [
                {
                    "request_id": "1",
                    "vendor_party_id": "V1",
                    "status": "ready",
                    "sync_status": "new",
                    "destination_facility_id": "F1",
                },
                {
                    "request_id": "2",
                    "vendor_party_id": "V404",
                    "status": "ready",
                    "sync_status": "new",
                },
            ],
        )
        _run(conn, "purchase_order_requests", NOW - timedelta(minutes=5))
    got = _measure(warehouse)
    vendor = got[
        (
            "purchase_order_requests",
            "referential",
            "app_purchase_order_requests.vendor_party_id -> vendors",
        )
    ]
    assert (vendor.measured, vendor.passed) == (0.5, False)
    rows = got[("purchase_order_requests", "row_count", "")]
    assert rows.measured == 2
    freshness = got[("purchase_order_requests", "sync_freshness", "")]
    assert freshness.threshold == pytest.approx(20 / 60, abs=1e-3)  # 2 x its 10 minutes
    with warehouse.connect() as conn:
        assert entity_status(conn, "purchase_order_requests", NOW)["status"] == "operational"
