"""What the artifacts show, as data: counts rows, the masked quarantine sample, health."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID, uuid4

import pytest
from conftest import RAW_EMAIL, RAW_NOTE_PHONE, RAW_PHONE

from pipeline.sync import EntityRunResult
from reporting import artifacts
from reporting.artifacts import ProgressArtifact, artifact_key
from reporting.events import (
    EVENT_COMPLETED,
    EVENT_DEGRADED,
    EVENT_FAILED,
    event_name,
    sync_event_payload,
)
from reporting.tables import (
    COUNT_COLUMNS,
    QUARANTINE_COLUMNS,
    counts_table,
    quarantine_summary,
    quarantine_table,
)
from warehouse.runs import RunRecord


def test_counts_table_has_one_row_per_entity_with_every_column(
    results: list[RunRecord],
) -> None:
    rows = counts_table(results)
    assert [r["entity"] for r in rows] == ["vendors", "purchase_orders", "stock"]
    assert all(tuple(r) == COUNT_COLUMNS for r in rows)
    vendors, orders, stock = rows
    assert vendors | {"error": None} == {
        "entity": "vendors", "status": "degraded", "mode": "full", "extracted": 40,
        "inserted": 30, "updated": 5, "unchanged": 3, "quarantined": 2, "deleted": 1,
        "chunks": 1, "duration_s": 4.2, "watermark_before": None,
        "watermark_after": "2026-01-01T11:00:00+00:00",
        "started_at": "2026-01-01T11:00:00+00:00", "finished_at": "2026-01-01T11:00:04+00:00",
        "reconciled": False, "error": None,
    }  # fmt: skip
    assert orders["reconciled"] is None, "incremental runs do not reconcile"
    assert orders["watermark_before"] == "2026-01-01T10:00:00+00:00"
    # A failed entity has no counts: zeros, and its error without the password.
    assert stock["extracted"] == 0 and stock["duration_s"] is None
    assert "FinaleAuthError: 401" in stock["error"]
    assert "hunter2" not in stock["error"]


def test_quarantine_table_masks_personal_data_in_payload_and_reasons(
    results: list[RunRecord],
) -> None:
    table = quarantine_table(results)
    assert tuple(table) == QUARANTINE_COLUMNS
    assert table["entity"] == ["vendors", "vendors"]
    assert table["source_key"] == ["100023", "100024"]
    assert table["reasons"][0] == "email: invalid address j***@a***.com"
    payload = json.loads(table["payload"][0])
    mechs = payload["contactMechList"]
    assert mechs[0]["infoString"] == "j***@a***.com"
    assert mechs[1]["infoString"] == "***67"
    assert payload["userFieldDataList"][0]["attrValue"] == "call Bob on ***43"
    assert payload["partyId"] == "100023"
    dumped = json.dumps(table)
    for raw in (RAW_EMAIL, RAW_PHONE, RAW_NOTE_PHONE, "123-4567"):
        assert raw not in dumped


def test_quarantine_table_without_quarantine_has_headers_and_no_rows() -> None:
    stock = EntityRunResult(run_id="r", entity="stock", mode="full", quarantine_sample=[])
    assert quarantine_table([stock]) == {column: [] for column in QUARANTINE_COLUMNS}


def test_long_payloads_are_cut_after_masking() -> None:
    big = {"notes": "x" * 5000, "email": RAW_EMAIL}
    vendors = EntityRunResult(run_id="r", entity="vendors", mode="full", quarantine_sample=[
        {"source_key": "1", "reasons": "r", "payload": big}])  # fmt: skip
    table = quarantine_table([vendors])
    assert len(table["payload"][0]) < 1600
    assert RAW_EMAIL not in table["payload"][0]


def test_quarantine_summary_tells_this_runs_reads_from_the_open_records(
    results: list[RunRecord], statuses: list[dict[str, Any]]
) -> None:
    assert quarantine_summary(results, statuses) == (
        "this run quarantined 2 records read; open quarantine: 3 records"
    )
    assert quarantine_summary(results, None) == "this run quarantined 2 records read"


def test_quality_report_artifacts_list_every_rule_with_counts_that_add_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    published: dict[str, dict[str, Any]] = {}

    def capture(kind: str, key: str, create: Any, **kwargs: Any) -> UUID:
        published[key] = kwargs
        return uuid4()

    monkeypatch.setattr(artifacts, "_publish", capture)
    entity = {
        "entity": "products", "runs": 3, "failed_runs": 0, "extracted": 30, "quarantined": 9,
        "quarantine_share": 0.3, "open_quarantine": 2, "open_rule_failures": 3,
        "open_by_rule": [["cost must be between 0 and 1e+09", 2], [f"email is {RAW_EMAIL}", 1]],
        "last_reconcile": None,
    }  # fmt: skip
    empty = entity | {"entity": "vendors", "open_quarantine": 0, "open_by_rule": [],
                      "open_rule_failures": 0}  # fmt: skip
    keys = artifacts.publish_quality_report({"since": "2026-01-01", "entities": [entity, empty]})

    assert set(keys) == {"data-quality-report", "data-quality-reasons"}
    [row, _] = published["data-quality-report"]["table"]
    assert (row["quarantined_by_runs"], row["open_quarantine_records"]) == (9, 2)
    markdown = published["data-quality-reasons"]["markdown"]
    assert "## products: open quarantine: 2 records" in markdown
    assert "the counts add up to 3 record-rule failures" in markdown
    assert "- 2 x cost must be between 0 and 1e+09\n- 1 x email is j***@a***.com" in markdown
    assert RAW_EMAIL not in markdown
    assert "## vendors: open quarantine: 0 records\n\n- no open quarantined records" in markdown


@pytest.mark.parametrize(
    ("parts", "key"),
    [
        pytest.param(("sync-counts", "products"), "sync-counts-products", id="simple"),
        pytest.param(("sync-counts", "purchase_orders"), "sync-counts-purchase-orders",
                     id="underscore"),
        pytest.param(("Sync Counts", "Stock!"), "sync-counts-stock", id="case-and-punctuation"),
    ],
)  # fmt: skip
def test_artifact_keys_are_valid_and_stable(parts: tuple[str, ...], key: str) -> None:
    assert artifact_key(*parts) == key


@pytest.mark.parametrize("key", ["Backfill-1", "backfill_1", "", "-x"])
def test_progress_artifact_rejects_invalid_keys(key: str) -> None:
    with pytest.raises(ValueError, match="lowercase letters, digits and dashes"):
        ProgressArtifact(key)


@pytest.mark.parametrize(
    ("status", "name"),
    [
        pytest.param("succeeded", EVENT_COMPLETED, id="succeeded"),
        pytest.param("degraded", EVENT_DEGRADED, id="degraded"),
        pytest.param("failed", EVENT_FAILED, id="failed"),
        pytest.param("crashed", EVENT_FAILED, id="crashed"),
    ],
)
def test_event_name_per_status(status: str, name: str) -> None:
    assert event_name(status) == name


def test_event_name_rejects_unfinished_status() -> None:
    with pytest.raises(ValueError, match="no sync event"):
        event_name("running")


def test_event_payload_has_counts_and_health_and_no_record_data(
    results: list[RunRecord], statuses: list[dict[str, Any]]
) -> None:
    payload = sync_event_payload(results[0], statuses[0])
    assert payload["extracted"] == 40 and payload["quarantined"] == 2
    assert payload["quarantine_share"] == 0.05
    assert payload["reconciled"] is False
    assert payload["health_score"] == 75 and payload["health_status"] == "degraded"
    assert "quarantine_sample" not in payload
    assert RAW_EMAIL not in json.dumps(payload)
    failed = sync_event_payload(results[2])
    assert failed["health_score"] is None
    assert "hunter2" not in json.dumps(failed)
