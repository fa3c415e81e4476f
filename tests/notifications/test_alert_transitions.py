"""One alert per state change, never one per retry: the transition table, cell by cell."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notifications import Alert, transition
from warehouse.runs import RunRecord, RunStatus

# Every (previous, current) pair of the documented table, with the alert it must send.
TABLE = [
    # first run
    pytest.param(None, "succeeded", None, id="first-run-succeeded-is-silent"),
    pytest.param(None, "degraded", "degraded", id="first-run-degraded"),
    pytest.param(None, "failed", "failed", id="first-run-failed"),
    pytest.param(None, "crashed", "crashed", id="first-run-crashed"),
    # from healthy
    pytest.param("succeeded", "succeeded", None, id="healthy-stays-healthy"),
    pytest.param("succeeded", "degraded", "degraded", id="healthy-to-degraded"),
    pytest.param("succeeded", "failed", "failed", id="healthy-to-failed"),
    pytest.param("succeeded", "crashed", "crashed", id="healthy-to-crashed"),
    # from degraded
    pytest.param("degraded", "succeeded", "recovered", id="degraded-recovers"),
    pytest.param("degraded", "degraded", None, id="degraded-again-is-silent"),
    pytest.param("degraded", "failed", "failed", id="degraded-escalates-to-failed"),
    pytest.param("degraded", "crashed", "crashed", id="degraded-escalates-to-crashed"),
    # from failed
    pytest.param("failed", "succeeded", "recovered", id="failed-recovers"),
    pytest.param("failed", "degraded", "degraded", id="failed-improves-to-degraded"),
    pytest.param("failed", "failed", None, id="failed-retry-is-silent"),
    pytest.param("failed", "crashed", None, id="failed-then-crashed-same-outage"),
    # from crashed
    pytest.param("crashed", "succeeded", "recovered", id="crashed-recovers"),
    pytest.param("crashed", "degraded", "degraded", id="crashed-improves-to-degraded"),
    pytest.param("crashed", "failed", None, id="crashed-then-failed-same-outage"),
    pytest.param("crashed", "crashed", None, id="crashed-again-is-silent"),
]

ALIASES = [
    # status JSON vocabulary (pipeline/status.py) and Prefect's
    pytest.param("operational", "failed", "failed", id="operational-to-failed"),
    pytest.param("failing", "completed", "recovered", id="failing-to-completed"),
    pytest.param("failing", "failed", None, id="failing-to-failed-silent"),
    pytest.param("stale", "failed", None, id="stale-counts-as-down"),
    pytest.param("FAILED", " Succeeded ", "recovered", id="case-and-space-insensitive"),
    # previous statuses that say nothing about health behave like a first run
    pytest.param("running", "succeeded", None, id="previous-running-success-silent"),
    pytest.param("running", "failed", "failed", id="previous-running-failure-alerts"),
    pytest.param("cancelled", "failed", "failed", id="previous-cancelled-failure-alerts"),
    # an unknown previous status must never swallow an alert
    pytest.param("some-future-status", "failed", "failed", id="unknown-previous-alerts"),
]


@pytest.mark.parametrize(("previous", "current", "expected"), TABLE)
def test_transition_table(previous: str | None, current: str, expected: str | None) -> None:
    assert transition(previous, current) == expected


@pytest.mark.parametrize(("previous", "current", "expected"), ALIASES)
def test_transition_folds_status_aliases(
    previous: str | None, current: str, expected: str | None
) -> None:
    assert transition(previous, current) == expected


def test_retries_of_one_failure_alert_once() -> None:
    history = ["succeeded", "failed", "failed", "failed", "crashed", "failed", "succeeded"]
    alerts = [transition(prev, cur) for prev, cur in zip([None, *history], history, strict=False)]
    assert [a for a in alerts if a] == ["failed", "recovered"]


@pytest.mark.parametrize("current", ["running", "", "bogus"], ids=["running", "empty", "bogus"])
def test_unknown_current_status_is_a_wiring_error(current: str) -> None:
    with pytest.raises(ValueError, match="unknown run status"):
        transition("succeeded", current)


def test_alert_re_redacts_and_truncates_the_error() -> None:
    error = (
        "HTTPStatusError: 401 for https://bob:hunter2@app.example.com/x?key=abc123 "
        "Authorization: Basic dXNlcjpwYXNzd29yZA== password=swordfish " + "x" * 5000
    )
    alert = Alert(kind="failed", entity="products", error=error)
    assert alert.error is not None
    for secret in ("hunter2", "abc123", "dXNlcjpwYXNzd29yZA==", "swordfish"):
        assert secret not in alert.error
    assert len(alert.error) < 1100
    assert alert.error.endswith("more chars)")


def test_alert_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="alert kind"):
        Alert(kind="exploded", entity="products")  # type: ignore[arg-type]


def test_alert_from_result_takes_counts_share_and_freshness() -> None:
    result = RunRecord(
        run_id="r-1",
        entity="products",
        mode="full",
        status=RunStatus.FAILED,
        extracted=200,
        inserted=150,
        updated=10,
        unchanged=20,
        quarantined=20,
        error="20 of 200 products records (10.0%) failed validation",
    )
    status = {"entity": "products", "health_score": 30, "last_sync": "2026-01-01T10:00:00+00:00"}
    alert = Alert.from_result(
        "failed", result, deployment="finale-sync/hourly", flow_run_url="http://ui/runs/1",
        status=status,
    )  # fmt: skip
    assert alert.counts == {
        "extracted": 200, "inserted": 150, "updated": 10, "unchanged": 20, "quarantined": 20,
    }  # fmt: skip
    assert alert.quarantine_share == pytest.approx(0.1)
    assert alert.last_success_at == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert alert.health_score == 30
    assert alert.run_id == "r-1"
    assert alert.deployment == "finale-sync/hourly"


def test_alert_from_a_failed_entity_without_counts() -> None:
    failed = RunRecord(run_id="r-1", entity="stock", mode="incremental",
                       status=RunStatus.FAILED, error="boom")  # fmt: skip
    alert = Alert.from_result("failed", failed)
    assert alert.counts["extracted"] == 0
    assert alert.quarantine_share is None
    assert alert.last_success_at is None


def test_recovery_alert_carries_no_error() -> None:
    recovered = RunRecord(run_id="r-2", entity="stock", mode="incremental",
                          status=RunStatus.SUCCEEDED, error="old")  # fmt: skip
    alert = Alert.from_result("recovered", recovered)
    assert alert.error is None


@pytest.mark.parametrize(
    ("ui", "api", "link"),
    [
        pytest.param("http://ui:4200", None, "http://ui:4200/runs/flow-run/R1", id="ui"),
        pytest.param(None, "http://srv:4200/api", "http://srv:4200/runs/flow-run/R1", id="api"),
        pytest.param(None, None, "sync-stock (R1); no Prefect UI address is set", id="none"),
    ],
)
def test_alerts_link_the_flow_run_or_name_it_never_a_broken_link(
    ui: str | None, api: str | None, link: str
) -> None:
    from notifications import flow_run_link

    got = flow_run_link("R1", "sync-stock", ui, api)
    assert got is not None and got.startswith(link)
    assert "None/" not in got
    assert flow_run_link(None, None, ui, api) is None
