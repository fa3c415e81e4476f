"""A backfill plans its windows with the connector's planner: never wider than Finale allows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from flows.backfill import plan_windows

CHICAGO = ZoneInfo("America/Chicago")
ONE_SECOND = timedelta(seconds=1)
THIRTY_DAYS = timedelta(days=30)


def _wall(instant: datetime) -> datetime:
    return instant.astimezone(CHICAGO).replace(tzinfo=None)


@pytest.mark.parametrize(
    ("since", "until"),
    [
        pytest.param(
            datetime(2025, 10, 15, tzinfo=UTC), datetime(2025, 12, 31, tzinfo=UTC), id="autumn"
        ),
        pytest.param(
            datetime(2025, 2, 20, tzinfo=UTC), datetime(2025, 4, 30, tzinfo=UTC), id="spring"
        ),
    ],
)
def test_backfill_across_a_dst_change_plans_windows_finale_accepts(
    since: datetime, until: datetime
) -> None:
    windows = plan_windows(since, until, 30, CHICAGO)

    assert windows[0][0] == since
    assert windows[-1][1] == until
    for (_, end), (next_start, _) in pairwise(windows):
        assert next_start - end == ONE_SECOND, "adjacent: no gap, no second read twice"
    for start, end in windows:
        assert start.tzinfo is not None and end.tzinfo is not None
        # At most 30 days both as Finale compares them (account wall-clock time) and in
        # elapsed time.
        assert _wall(end) - _wall(start) <= THIRTY_DAYS
        assert end - start <= THIRTY_DAYS


def test_the_window_across_spring_forward_is_30_wall_clock_days_not_30_utc_days() -> None:
    # 30 UTC days across 2025-03-09 (CST -> CDT) are 30 days and 1 hour on the account's
    # clock, which Finale rejects with 400; the window ends an hour earlier instead.
    since = datetime(2025, 2, 20, 6, tzinfo=UTC)  # 00:00 CST
    windows = plan_windows(since, since + timedelta(days=45), 30, CHICAGO)
    assert windows[0] == (since, since + THIRTY_DAYS - timedelta(hours=1))
    assert _wall(windows[0][1]) - _wall(since) == THIRTY_DAYS
