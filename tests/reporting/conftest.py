"""Fixtures for the reporting tests: entity results (``EntityRunResult``, ``RunRecord``),
status rows shaped like ``pipeline.status.entity_status``, and the Prefect test harness.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from pipeline.sync import EntityRunResult
from warehouse.runs import RunRecord, RunStatus

RAW_EMAIL = "jane.doe@acme-supply.com"
RAW_PHONE = "+1 (555) 123-4567"
RAW_NOTE_PHONE = "555-987-6543"


def _vendor_payload() -> dict[str, Any]:
    # A raw Finale partyGroup record as the quarantine keeps it.
    return {
        "partyId": "100023",
        "groupName": "Acme Supply",
        "statusId": "PARTY_ENABLED",
        "contactMechList": [
            {"contactMechTypeId": "EMAIL_ADDRESS", "infoString": RAW_EMAIL},
            {"contactMechTypeId": "TELECOM_NUMBER", "infoString": RAW_PHONE},
            {"contactMechTypeId": "POSTAL_ADDRESS", "address1": "1 Main St", "city": "Austin"},
        ],
        "userFieldDataList": [{"attrName": "notes", "attrValue": f"call Bob on {RAW_NOTE_PHONE}"}],
        "lastUpdatedDate": "2026-01-01T10:00:00",
    }


RESULTS: list[RunRecord] = [
    EntityRunResult(
        run_id="run-0001",
        entity="vendors",
        mode="full",
        status=RunStatus.DEGRADED,
        extracted=40,
        inserted=30,
        updated=5,
        unchanged=3,
        quarantined=2,
        deleted=1,
        chunks=1,
        watermark_before=None,
        watermark_after=datetime(2026, 1, 1, 11, tzinfo=UTC),
        source_count=38,
        warehouse_count=39,
        source_checksum="abc",
        warehouse_checksum="abd",
        started_at=datetime(2026, 1, 1, 11, tzinfo=UTC),
        finished_at=datetime(2026, 1, 1, 11, 0, 4, tzinfo=UTC),
        duration_ms=4250,
        error=None,
        quarantine_sample=[
            {
                "source_key": "100023",
                "reasons": f"email: invalid address {RAW_EMAIL}",
                "payload": _vendor_payload(),
            },
            {
                "source_key": "100024",
                "reasons": "groupName: null",
                "payload": {"partyId": "100024"},
            },
        ],
    ),
    EntityRunResult(
        run_id="run-0001",
        entity="purchase_orders",
        mode="incremental",
        status=RunStatus.SUCCEEDED,
        extracted=500,
        inserted=20,
        updated=10,
        unchanged=470,
        quarantined=0,
        deleted=0,
        chunks=2,
        watermark_before=datetime(2026, 1, 1, 10, tzinfo=UTC),
        watermark_after=datetime(2026, 1, 1, 11, tzinfo=UTC),
        started_at=datetime(2026, 1, 1, 11, 0, 4, tzinfo=UTC),
        finished_at=datetime(2026, 1, 1, 11, 0, 9, tzinfo=UTC),
        duration_ms=5000,
        quarantine_sample=[],
    ),
    # What flows/finale_sync.py records for an entity whose task run failed before its run
    # was recorded: no counts, no times, just the error.
    RunRecord(
        run_id="run-0001",
        entity="stock",
        mode="incremental",
        status=RunStatus.FAILED,
        error="FinaleAuthError: 401 for https://bob:hunter2@app.test/acme password=hunter2",
    ),
]

STATUSES: list[dict[str, Any]] = [
    {
        "integration": "finale_inventory",
        "entity": "vendors",
        "status": "degraded",
        "last_sync": "2026-01-01T11:00:04+00:00",
        "metrics": {"records_synced": 35, "sync_duration_ms": 4250, "errors": 2,
                    "next_sync": "2026-01-01T12:00:04+00:00"},
        "health_score": 75,
        "open_quarantine": 3,
        "last_error": None,
    },
    {
        "integration": "finale_inventory",
        "entity": "stock",
        "status": "failing",
        "last_sync": None,
        "metrics": {"records_synced": 0, "sync_duration_ms": None, "errors": 1,
                    "next_sync": None},
        "health_score": 20,
        "open_quarantine": 0,
        "last_error": f"failed for {RAW_EMAIL}: Authorization: Bearer abcdefgh12345678",
    },
]  # fmt: skip


@pytest.fixture
def results() -> list[RunRecord]:
    """Three entity results: degraded with a quarantine sample, succeeded, failed."""
    return copy.deepcopy(RESULTS)


@pytest.fixture
def statuses() -> list[dict[str, Any]]:
    """Status JSON rows for two of the entities."""
    return copy.deepcopy(STATUSES)
