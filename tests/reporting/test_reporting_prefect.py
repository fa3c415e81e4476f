"""Artifacts and events from a real flow run on a temporary Prefect server, read back.

One flow publishes the run's artifacts and emits its events, twice (two runs), and the tests
read the artifacts back through the Prefect client: the keys are the same in both runs (so
the UI shows a history per key), the quarantine sample holds masked values and never the raw
email, and the events can be read back from the events API.
"""

from __future__ import annotations

import json
import time
from typing import Any
from uuid import UUID

import pytest
from conftest import RAW_EMAIL, RAW_PHONE, RESULTS, STATUSES
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterId,
    ArtifactFilterKey,
)
from prefect.client.schemas.objects import Artifact
from prefect.events import Event
from prefect.events.filters import EventFilter, EventIDFilter
from prefect.runtime import flow_run

from reporting import (
    EVENT_COMPLETED,
    EVENT_DEGRADED,
    EVENT_FAILED,
    create_progress,
    emit_sync_event,
    publish_run_artifacts,
)
from warehouse.runs import RunRecord

pytestmark = pytest.mark.usefixtures("prefect_harness")

EXPECTED_KEYS = {
    "sync-counts",
    "sync-counts-vendors",
    "sync-counts-purchase-orders",
    "sync-counts-stock",
    "sync-quarantine-sample",
    "sync-health",
}


@flow(name="report-sync-run")
def report_sync_run(results: list[RunRecord], statuses: list[dict[str, Any]]) -> dict[str, Any]:
    """What the sync flow will do at its end: publish artifacts, emit one event per entity."""
    published = publish_run_artifacts(results, statuses)
    by_entity = {s["entity"]: s for s in statuses}
    events = [emit_sync_event(r, by_entity.get(r.entity)) for r in results]
    return {"flow_run_id": flow_run.id, "published": published, "events": events}


@flow(name="report-backfill")
def report_backfill(key: str) -> UUID | None:
    bar = create_progress(key, "Backfill of vendors")
    bar.update(50)
    bar.update(50)  # unchanged: no API call
    bar.update(150)  # clamped to 100
    return bar.artifact_id


@flow(name="report-sync-run-async")
async def report_sync_run_async(results: list[RunRecord]) -> dict[str, Any]:
    """The same from an async flow, where Prefect's helpers would otherwise return coroutines."""
    return {"flow_run_id": flow_run.id, "published": publish_run_artifacts(results)}


@pytest.fixture(scope="module")
def runs(prefect_harness: None) -> list[dict[str, Any]]:
    """Two runs of the reporting flow (the second to prove the keys are stable)."""
    return [report_sync_run(RESULTS, STATUSES), report_sync_run(RESULTS, STATUSES)]


def read_artifacts(flow_run_id: str, keys: set[str] | None = None) -> list[Artifact]:
    artifact_filter = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    if keys is not None:
        artifact_filter.key = ArtifactFilterKey(any_=sorted(keys))
    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=artifact_filter)


def test_every_artifact_is_published_under_a_stable_key(runs: list[dict[str, Any]]) -> None:
    for run in runs:
        assert set(run["published"]) == EXPECTED_KEYS
        artifacts = read_artifacts(run["flow_run_id"])
        assert {a.key for a in artifacts} == EXPECTED_KEYS
    # Same keys, different artifacts: the UI shows both runs in each key's history.
    with get_client(sync_client=True) as client:
        history = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["sync-counts"]))
        )
    ids = {a.id for a in history}
    assert {run["published"]["sync-counts"] for run in runs} <= ids


def test_counts_artifact_is_a_table_of_entity_counts(runs: list[dict[str, Any]]) -> None:
    [artifact] = read_artifacts(runs[0]["flow_run_id"], {"sync-counts"})
    assert artifact.type == "table"
    rows = json.loads(str(artifact.data))
    by_entity = {row["entity"]: row for row in rows}
    assert set(by_entity) == {"vendors", "purchase_orders", "stock"}
    assert by_entity["purchase_orders"]["unchanged"] == 470
    assert by_entity["vendors"]["watermark_after"] == "2026-01-01T11:00:00+00:00"
    assert "hunter2" not in str(artifact.data)
    assert artifact.description is not None and "vendors degraded" in artifact.description


def test_quarantine_artifact_holds_masked_values_never_the_raw_ones(
    runs: list[dict[str, Any]],
) -> None:
    [artifact] = read_artifacts(runs[0]["flow_run_id"], {"sync-quarantine-sample"})
    assert artifact.type == "table"
    data = str(artifact.data)
    table = json.loads(data)
    assert table["source_key"] == ["100023", "100024"]
    payload = json.loads(table["payload"][0])
    assert payload["contactMechList"][0]["infoString"] == "j***@a***.com"
    assert payload["contactMechList"][1]["infoString"] == "***67"
    assert RAW_EMAIL not in data
    assert RAW_PHONE not in data
    assert "123-4567" not in data


def test_health_artifact_is_a_coloured_table_without_json(runs: list[dict[str, Any]]) -> None:
    [artifact] = read_artifacts(runs[0]["flow_run_id"], {"sync-health"})
    assert artifact.type == "markdown"
    data = str(artifact.data)
    assert "| **vendors** | 🟡 degraded (75) |" in data
    assert "| **stock** | 🔴 failing (20) | never |" in data
    assert "```json" not in data and '"health_score"' not in data
    assert RAW_EMAIL not in data and "abcdefgh12345678" not in data
    assert artifact.description == (
        "Sync health of every entity in sync run `run-0001`: 1 degraded · 1 failing"
    )


def test_every_artifact_says_what_it_holds(runs: list[dict[str, Any]]) -> None:
    artifacts = {a.key: a for a in read_artifacts(runs[0]["flow_run_id"])}
    descriptions = {key: a.description or "" for key, a in artifacts.items()}
    assert not any(d.startswith("Sync run") for d in descriptions.values())
    assert descriptions["sync-counts"].startswith("Records read, written, quarantined")
    assert descriptions["sync-counts-stock"].startswith("stock: records read")
    assert descriptions["sync-quarantine-sample"].startswith("Sample of the records quarantined")


def test_events_are_emitted_per_entity_with_counts_and_health(
    runs: list[dict[str, Any]],
) -> None:
    events: list[Event] = runs[0]["events"]
    assert [e.event for e in events] == [EVENT_DEGRADED, EVENT_COMPLETED, EVENT_FAILED]
    vendors = events[0]
    assert dict(vendors.resource) == {
        "prefect.resource.id": "inventory-sync.entity.vendors",
        "prefect.resource.name": "vendors",
    }
    assert vendors.payload["quarantined"] == 2
    assert vendors.payload["health_score"] == 75
    # Prefect links the event to the flow run it was emitted from.
    related = {r.id for r in vendors.related}
    assert f"prefect.flow-run.{runs[0]['flow_run_id']}" in related
    for event in events:
        dumped = event.model_dump_json()
        assert RAW_EMAIL not in dumped and "hunter2" not in dumped


def test_events_can_be_read_back_from_the_events_api(runs: list[dict[str, Any]]) -> None:
    emitted = {e.id: e for e in runs[0]["events"]}
    event_filter = EventFilter(id=EventIDFilter(id=list(emitted)))
    found: dict[UUID, Any] = {}
    deadline = time.monotonic() + 20
    with get_client(sync_client=True) as client:
        # Events are written by the server's event persister in batches: poll briefly.
        while len(found) < len(emitted) and time.monotonic() < deadline:
            found = {e.id: e for e in client.read_events(filter=event_filter, limit=50).events}
            if len(found) < len(emitted):
                time.sleep(0.25)
    assert set(found) == set(emitted)
    for event_id, event in found.items():
        assert event.event == emitted[event_id].event
        assert event.resource.id == emitted[event_id].resource.id
        assert event.payload["entity"] == emitted[event_id].payload["entity"]


def test_artifacts_are_published_from_an_async_flow_too(prefect_harness: None) -> None:
    import asyncio

    run = asyncio.run(report_sync_run_async(RESULTS[:1]))
    keys = {"sync-counts", "sync-counts-vendors", "sync-quarantine-sample", "sync-health"}
    assert set(run["published"]) == keys
    assert {a.key for a in read_artifacts(run["flow_run_id"])} == keys


def test_progress_artifact_is_created_then_updated_in_place(prefect_harness: None) -> None:
    artifact_id = report_backfill("backfill-test-0001")
    assert artifact_id is not None
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(id=ArtifactFilterId(any_=[artifact_id]))
        )
        same_key = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["backfill-test-0001"]))
        )
    [artifact] = artifacts
    assert artifact.type == "progress"
    assert float(artifact.data) == 100.0  # type: ignore[arg-type]
    assert len(same_key) == 1, "updates change the one artifact, they do not add versions"
