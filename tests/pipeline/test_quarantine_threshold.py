"""When a run's quarantine makes it fail: a share of the records and a minimum count."""

from __future__ import annotations

import pytest

from pipeline.entities import ENTITIES
from pipeline.sync import EntitySync, SyncOptions


@pytest.mark.parametrize(
    ("extracted", "quarantined", "status"),
    [
        pytest.param(8, 1, "succeeded", id="one-of-eight-is-below-the-minimum-count"),
        pytest.param(1000, 3, "succeeded", id="0.3pct-is-below-the-share"),
        pytest.param(40, 3, "failed", id="7.5pct-and-three-records"),
        pytest.param(0, 0, "succeeded", id="empty-run"),
    ],
)
def test_quarantine_threshold_needs_share_and_count(
    extracted: int, quarantined: int, status: str
) -> None:
    options = SyncOptions(quarantine_fail_ratio=0.05, quarantine_fail_min_records=3)
    sync = EntitySync(ENTITIES["vendors"], None, None, run_id="r", options=options)  # type: ignore[arg-type]
    sync.result.extracted, sync.result.quarantined = extracted, quarantined
    assert sync._judge() == status
    if status == "failed":
        assert "QUARANTINE_FAIL_RATIO of 0.05" in (sync.result.error or "")
