"""The documented health-score formula, case by case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from pipeline.status import entity_status, health_score
from warehouse import state
from warehouse.runs import RunRecord

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def run(
    status: str = "succeeded",
    age: timedelta = timedelta(minutes=10),
    extracted: int = 100,
    quarantined: int = 0,
) -> RunRecord:
    return RunRecord(
        run_id="r",
        entity="vendors",
        mode="incremental",
        status=status,
        started_at=NOW - age - timedelta(seconds=5),
        finished_at=NOW - age,
        extracted=extracted,
        inserted=10,
        updated=5,
        quarantined=quarantined,
        error=None,
    )


@pytest.mark.parametrize(
    ("latest", "success", "expected"),
    [
        pytest.param(run(), run(), 100, id="healthy"),
        pytest.param(None, None, 70, id="never-synced"),
        pytest.param(run("failed"), run(), 50, id="last-run-failed"),
        pytest.param(run("degraded"), run("degraded"), 80, id="degraded-reconcile"),
        pytest.param(run(quarantined=5), run(quarantined=5), 80, id="5pct-quarantined"),
        pytest.param(run(quarantined=1), run(quarantined=1), 96, id="1pct-quarantined"),
        pytest.param(run(age=3 * HOUR), run(age=3 * HOUR), 80, id="two-intervals-overdue"),
        pytest.param(run("failed", age=HOUR), run(age=10 * HOUR), 20, id="failed-and-stale"),
    ],
)
def test_health_score(latest: RunRecord | None, success: RunRecord | None, expected: int) -> None:
    assert health_score(latest, success, NOW, HOUR) == expected


@pytest.mark.parametrize(
    ("ratio", "status"),
    [
        pytest.param(0.05, "degraded", id="above-threshold"),
        pytest.param(0.1, "operational", id="below"),
    ],
)
def test_a_quarantine_share_above_the_threshold_alone_degrades_the_entity(
    engine: sa.Engine, ratio: float, status: str
) -> None:
    # 6 of 100 records quarantined: too few to fail the run (at least 3 and above 5% would
    # fail it; here the run succeeded, e.g. a threshold of 10 records), score 80 or more.
    now = datetime.now(UTC)
    with engine.begin() as conn:
        state.start_run(conn, "r1", None, "vendors", "incremental", now - timedelta(minutes=2))
        state.finish_run(
            conn, "r1", "vendors", "succeeded", finished_at=now - timedelta(minutes=1),
            extracted=100, inserted=94, quarantined=6,
        )  # fmt: skip
    with engine.connect() as conn:
        row = entity_status(conn, "vendors", now, quarantine_ratio=ratio)
    assert row["health_score"] >= 76
    assert row["status"] == status
