"""Data quality end to end, from real flow runs: sync, report, alerts, dataset, event.

The sync (``finale-sync``, every entity, full) runs against the sandbox over loopback into
SQLite and PostgreSQL on the session's temporary Prefect server; then the
``data-quality-report`` flow runs. What lands is checked against figures computed here,
independently of the checks: the reconciled counts of the full runs, references resolved
in Python, open quarantine read from its table. Alerts go to a loopback Slack webhook.
The Parquet dataset is read back with DuckDB and pyarrow, as an analyst would.

The generated account is dirty on purpose: one of its eight suppliers has no name, so it
is quarantined, and the products and purchase orders naming it as their vendor are
orphans; one purchase-order line names a product that was quarantined.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb
import fsspec
import pandas as pd
import pyarrow.dataset as ds
import pytest
import sqlalchemy as sa
from dq_support import SLACK_PATH, SlackReceiver
from prefect import get_client
from prefect.events.filters import EventFilter, EventIDFilter

from analytics import DQ_RESULTS, SYNC_RUNS, open_location, read_dataset
from flows.data_quality import data_quality_report
from flows.finale_sync import finale_sync
from pipeline.dq import DEFAULT_SYNC_CHECKS
from pipeline.entities import ENTITIES
from pipeline.status import all_statuses
from reporting.events import EVENT_DQ_REPORT_READY
from sandbox.server import SandboxConfig, SandboxHandle, start_in_thread
from schemas import tables
from warehouse import dq
from warehouse.db import create_warehouse_engine
from warehouse.runs import RunStatus, finish_run, start_run

pytestmark = pytest.mark.usefixtures("prefect_harness")

#: Generated records end a day ago, so their freshness is within the default thresholds.
ANCHOR = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT00:00:00")

LENIENT = """
[defaults]
max_invalid_share = 0.2
max_open_quarantine_share = 0.2
max_orphan_share = 0.2
[entities.vendors]
max_data_age_hours = 8760.0
"""


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    config = SandboxConfig(port=0, products=300, rate_limit_per_minute=0, anchor=ANCHOR)
    with start_in_thread(config) as handle:
        yield handle


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    receiver = SlackReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    sandbox: SandboxHandle,
    warehouse_url: str,
    slack: SlackReceiver,
) -> Path:
    """The settings of a worker: sandbox, warehouse, Slack, thresholds, dataset folder."""
    monkeypatch.chdir(tmp_path)  # no stray .env; the dataset path is not relative to it
    for key, value in sandbox.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("FINALE_SHARED_RATE_LIMIT", "")
    monkeypatch.setenv("QUARANTINE_FAIL_RATIO", "0.5")  # the dirty supplier is 1 in 8
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
    monkeypatch.setenv("ANALYTICS_URL", str(tmp_path / "analytics"))
    monkeypatch.delenv("DQ_CONFIG", raising=False)  # the project's config/dq.toml
    return tmp_path


def _engine(url: str) -> sa.Engine:
    return create_warehouse_engine(url)


def _rows(engine: sa.Engine, query: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(query))


def _orphans(engine: sa.Engine, table: sa.Table, column: str, target: sa.Column) -> int:
    """Live rows of ``table`` whose ``column`` names no row of ``target``, counted in Python."""
    present = {value for (value,) in _rows(engine, sa.select(target))}
    values = _rows(engine, sa.select(table.c[column]).where(table.c.deleted_at.is_(None)))
    return sum(1 for (value,) in values if value is not None and value not in present)


def _read_event(event_id: str) -> Any:
    deadline = time.monotonic() + 20
    with get_client(sync_client=True) as client:
        while True:  # the server's event persister writes in batches
            page = client.read_events(
                filter=EventFilter(id=EventIDFilter(id=[UUID(event_id)])), limit=10
            )
            if page.events or time.monotonic() > deadline:
                return page.events[0] if page.events else None
            time.sleep(0.25)


def test_checks_degrade_alert_land_in_the_table_the_dataset_and_an_event(
    env: Path, warehouse_url: str, slack: SlackReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = finale_sync(mode="full")
    engine = _engine(warehouse_url)
    try:
        _check_sync(engine, summary.run_id, slack)
        first = data_quality_report()
        _check_report(engine, first, slack)
        _check_dataset(engine, env / "analytics", first)
        _check_event(engine, env / "analytics", first)

        # The same report again: its rows and files are replaced, nothing is added, and
        # nothing changed, so nobody is alerted.
        files = sorted(p.relative_to(env) for p in (env / "analytics").rglob("*.parquet"))
        again = data_quality_report(report_id=first["report_id"])
        assert again["report_id"] == first["report_id"]
        assert sorted(p.relative_to(env) for p in (env / "analytics").rglob("*.parquet")) == files
        _check_dataset(engine, env / "analytics", again)
        assert slack.take() == []

        # Looser thresholds: the report's failures pass, each entity recovers, once.
        lenient = env / "lenient.toml"
        lenient.write_text(LENIENT)
        monkeypatch.setenv("DQ_CONFIG", str(lenient))
        data_quality_report()
        assert slack.take() == [
            "products RECOVERED", "purchase_orders RECOVERED", "vendors RECOVERED"
        ]  # fmt: skip
        data_quality_report()
        assert slack.take() == []
        with engine.connect() as conn:
            statuses = all_statuses(conn, quarantine_ratio=0.5)
        assert {s["entity"]: s["status"] for s in statuses} == dict.fromkeys(
            ENTITIES, "operational"
        )
    finally:
        engine.dispose()


def _check_sync(engine: sa.Engine, run_id: str | None, slack: SlackReceiver) -> None:
    """A sync measured its entities' checks under its run id; the dirty supplier made
    vendors degraded, and that alert went out, naming the checks."""
    assert run_id is not None
    with engine.connect() as conn:
        stored = dq.report_results(conn, run_id)
        statuses = {s["entity"]: s for s in all_statuses(conn, quarantine_ratio=0.5)}
    assert {r.origin for r in stored} == {"sync"}
    for entity in ENTITIES:
        checks = {r.check for r in stored if r.entity == entity}
        expected = set(DEFAULT_SYNC_CHECKS)
        assert checks == expected, entity
    failed = sorted((r.entity, r.check, r.subject) for r in stored if not r.passed)
    assert failed == [
        ("vendors", "quarantine", ""),
        ("vendors", "validity", "name must not be blank"),
    ]
    assert statuses["vendors"]["status"] == "degraded"
    assert statuses["vendors"]["failed_checks"] == [
        "quarantine",
        "validity[name must not be blank]",
    ]
    assert statuses["products"]["status"] == "operational"
    [error] = slack.errors()
    assert all(SLACK_PATH not in str(body) for body in slack.bodies), "the webhook stays secret"
    assert slack.take() == ["vendors DEGRADED"]
    assert "data-quality checks failed: quarantine, validity[name must not be blank]" in error


def _check_report(engine: sa.Engine, report: dict[str, Any], slack: SlackReceiver) -> None:
    """The report's figures are the warehouse's; new failures alert, old ones do not."""
    open_entries = sa.select(sa.func.count()).where(
        tables.quarantine.c.entity == "vendors", tables.quarantine.c.resolved_at.is_(None)
    )
    full = sa.select(tables.sync_runs).where(tables.sync_runs.c.mode == "full")
    with engine.connect() as conn:
        results = dq.report_results(conn, report["report_id"])
        full_runs = {row.entity: row for row in conn.execute(full)}
        open_vendors = conn.execute(open_entries).scalar_one()
    stored = {(r.entity, r.check, r.subject): r for r in results}
    assert report["checks"] == len(stored)
    assert {r.origin for r in stored.values()} == {"report"}
    for entity in ENTITIES:
        rows = stored[(entity, "row_count", "")]
        # The full run's reconciled warehouse count, stored by the sync itself.
        assert rows.measured == full_runs[entity].warehouse_count > 0, entity
        assert stored[(entity, "reconciliation", "")].measured == 1.0
        assert stored[(entity, "row_change", "")].measured == 0.0  # same rows as the sync saw
    vendors = _rows(engine, sa.select(sa.func.count()).select_from(tables.vendors))[0][0]
    share = stored[("vendors", "quarantine", "")]
    assert share.measured == pytest.approx(open_vendors / (vendors + open_vendors))
    assert open_vendors == 1 and not share.passed

    product_orphans = _orphans(
        engine, tables.products, "primary_vendor_party_id", tables.vendors.c.party_id
    )
    with_vendor = _rows(
        engine,
        sa.select(sa.func.count()).where(tables.products.c.primary_vendor_party_id.is_not(None)),
    )[0][0]
    vendor_ref = stored[("products", "referential", "products.primary_vendor_party_id -> vendors")]
    assert product_orphans > 0
    assert vendor_ref.measured == pytest.approx(product_orphans / with_vendor)
    assert vendor_ref.detail.startswith(f"{product_orphans:,} of {with_vendor:,} ")
    line_orphans = _orphans(engine, tables.purchase_order_lines, "sku", tables.products.c.sku)
    lines_ref = stored[("purchase_orders", "referential", "purchase_order_lines.sku -> products")]
    assert lines_ref.detail.startswith(f"{line_orphans:,} of ")
    for subject in ("stock_levels.sku -> products", "stock_levels.facility_id -> facilities"):
        assert stored[("stock", "referential", subject)].measured == 0.0
    parents = "facilities.parent_facility_id -> facilities"
    assert stored[("facilities", "referential", parents)].passed

    failed = sorted(
        f"{r.entity}: {r.check}[{r.subject}]" if r.subject else f"{r.entity}: {r.check}"
        for r in stored.values()
        if not r.passed
    )
    assert sorted(report["failed"]) == failed
    assert {f.split(":")[0] for f in failed} == {"products", "purchase_orders", "vendors"}
    # Vendors were degraded already (alerted by the sync); products and orders are news.
    assert report["alerts"] == {"products": "degraded", "purchase_orders": "degraded"}
    assert slack.take() == ["products DEGRADED", "purchase_orders DEGRADED"]


def _check_dataset(engine: sa.Engine, root: Path, report: dict[str, Any]) -> None:
    """DuckDB and pyarrow read the dataset straight from its folder; the figures are the
    warehouse's, each row once."""
    day = datetime.fromisoformat(report["reported_at"]).date()
    with engine.connect() as conn:
        today = dq.results_on(conn, day)
        runs = list(conn.execute(sa.select(tables.sync_runs)).mappings())
    db = duckdb.connect()
    results = db.execute(
        "SELECT entity, date, report_id, check_name, subject, measured, threshold, passed, "
        "origin, reported_at FROM read_parquet(?, hive_partitioning = true)",
        [f"{root}/dataset=dq_results/*/*/*.parquet"],
    ).fetchall()
    assert len(results) == len(today), "every result of the day, once"
    got = {(r[0], r[2], r[3], r[4]): r for r in results}
    assert len(got) == len(results)
    for stored in today:
        row = got[(stored.entity, stored.report_id, stored.check, stored.subject)]
        assert str(row[1]) == day.isoformat()
        assert (row[5], row[6], row[7], row[8]) == (
            stored.measured, stored.threshold, stored.passed, stored.origin)  # fmt: skip
        assert row[9] == stored.reported_at
    failed = db.execute(
        "SELECT count(*) FROM read_parquet(?, hive_partitioning = true) "
        "WHERE report_id = ? AND NOT passed",
        [f"{root}/dataset=dq_results/*/*/*.parquet", report["report_id"]],
    ).fetchone()
    assert failed == (len(report["failed"]),)

    per_entity = dict(
        db.execute(
            "SELECT entity, sum(extracted) FROM read_parquet(?, hive_partitioning = true) "
            "GROUP BY entity",
            [f"{root}/dataset=sync_runs/*/*/*.parquet"],
        ).fetchall()
    )
    expected: dict[str, int] = {}
    for run in runs:
        expected[run["entity"]] = expected.get(run["entity"], 0) + run["extracted"]
    assert per_entity == expected

    # pyarrow reads the same, partition columns from the paths.
    table = ds.dataset(root / "dataset=sync_runs", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == len(runs)
    assert set(table.column("status").to_pylist()) == {RunStatus.SUCCEEDED.value}
    assert table.schema.field("started_at").type.tz == "UTC"
    assert read_dataset(open_location(str(root)), DQ_RESULTS).num_rows == len(today)
    _check_readme_snippets(root, today, len(runs))


def _check_readme_snippets(root: Path, today: list[dq.StoredResult], runs: int) -> None:
    """The README's DuckDB query and pandas line work as written, on this dataset."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```sql\n")[1:]]
    [sql] = [b for b in blocks if "read_parquet(" in b]
    python = readme.split("```python\nimport pandas as pd\n", 1)[1].split("```", 1)[0]
    rows = duckdb.connect().execute(sql.replace("data/analytics", str(root))).fetchall()
    failing = [r for r in today if not r.passed and r.origin == "report"]
    assert len(rows) == len(failing) > 0
    assert {(r[0], r[1], r[2]) for r in rows} == {(r.entity, r.check, r.subject) for r in failing}
    scope: dict[str, Any] = {"pd": pd}
    exec(python.replace("data/analytics", str(root)), scope)
    frame = scope["runs"]
    assert len(frame) == runs and {"entity", "date", "extracted"} <= set(frame.columns)


def _check_event(engine: sa.Engine, root: Path, report: dict[str, Any]) -> None:
    """The event names the report, where its data is and how many checks failed."""
    assert report["event_id"], "the event was emitted"
    event = _read_event(report["event_id"])
    assert event is not None, "the event reached the Prefect server"
    assert event.event == EVENT_DQ_REPORT_READY
    assert event.resource.id == f"inventory-sync.dq.report.{report['report_id']}"
    payload = event.payload
    assert payload["report_id"] == report["report_id"]
    assert payload["dataset_url"] == str(root)
    assert payload["datasets"] == {
        DQ_RESULTS: f"{root}/dataset={DQ_RESULTS}",
        SYNC_RUNS: f"{root}/dataset={SYNC_RUNS}",
    }
    assert payload["failed"] == len(report["failed"]) and payload["checks"] == report["checks"]
    assert payload["failed_by_entity"] == {
        e: sum(1 for f in report["failed"] if f.startswith(f"{e}:"))
        for e in ("vendors", "products", "purchase_orders")
    }
    for path in payload["files"]:
        assert (root / path).is_file(), path
    related = {r.id for r in event.related}
    assert "inventory-sync.entity.products" in related


def test_the_dataset_goes_to_any_fsspec_url_the_same_way(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sqlite_url: str
) -> None:
    """``memory://`` stands in for ``s3://``: no local folder involved, same files, same
    rows, and a re-run of a report replaces its files."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WAREHOUSE_URL", sqlite_url)
    monkeypatch.setenv("ANALYTICS_URL", "memory://analytics-test")
    monkeypatch.setenv("DQ_CONFIG", str(tmp_path / "dq.toml"))
    (tmp_path / "dq.toml").write_text("[defaults]\nmin_rows = 0\n")
    from warehouse.migrate import upgrade

    upgrade(sqlite_url)
    engine = _engine(sqlite_url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for n, entity in enumerate(("products", "stock")):
            start_run(conn, f"run-{n}", None, entity, "full", now - timedelta(minutes=5))
            finish_run(conn, f"run-{n}", entity, "succeeded", finished_at=now, extracted=10 + n)
    try:
        first = data_quality_report(report_id="fixed-report")
        second = data_quality_report(report_id="fixed-report")
    finally:
        engine.dispose()
    memory = fsspec.filesystem("memory")
    files = sorted(memory.find("/analytics-test"))
    assert files == sorted(second["files"]) == sorted(first["files"])
    assert all(f.endswith("part-0.parquet") for f in files)
    assert "/analytics-test/dataset=sync_runs/entity=stock/date=" in " ".join(files)
    location = open_location("memory://analytics-test")
    assert location.url == "memory://analytics-test"
    results = read_dataset(location, DQ_RESULTS)
    assert results.num_rows == second["checks"], "the re-run replaced, did not add"
    assert set(results.column("report_id").to_pylist()) == {"fixed-report"}
    runs = read_dataset(location, SYNC_RUNS)
    assert sorted(zip(runs.column("entity").to_pylist(), runs.column("extracted").to_pylist(),
                      strict=True)) == [("products", 10), ("stock", 11)]  # fmt: skip
    memory.rm("/analytics-test", recursive=True)
