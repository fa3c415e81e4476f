"""Walking lastUpdatedDate windows: width, step, overlap, zones, splitting."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from connectors.finale import InvalidRequestError
from connectors.finale.windows import ONE_SECOND, Window, WindowPlan

CHICAGO = ZoneInfo("America/Chicago")


def _plan(since: datetime, until: datetime, **kwargs: object) -> list[Window]:
    kwargs.setdefault("overlap", timedelta(0))
    kwargs.setdefault("tz", UTC)
    return list(WindowPlan.between(since, until, **kwargs).windows())  # type: ignore[arg-type]


def test_a_range_wider_than_30_days_is_walked_in_windows_of_at_most_30_days() -> None:
    since = datetime(2025, 1, 1, tzinfo=UTC)
    until = datetime(2025, 4, 1, tzinfo=UTC)  # 90 days
    windows = _plan(since, until)
    # 30 d + 30 d + (30 d - 2 s): each 1 s step eats into the last window.
    assert len(windows) == 3
    assert windows[-1].end - windows[-1].start == timedelta(days=30) - 2 * ONE_SECOND
    # Three more seconds and a fourth (one-second) window is needed.
    assert len(_plan(since, until + 3 * ONE_SECOND)) == 4
    assert all(w.end - w.start <= timedelta(days=30) for w in windows)
    assert windows[0].end - windows[0].start == timedelta(days=30)
    assert windows[0].start_utc == since
    assert windows[-1].end_utc == until


def test_next_window_starts_one_second_after_the_previous_end() -> None:
    windows = _plan(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 3, 1, tzinfo=UTC))
    for previous, following in itertools.pairwise(windows):
        assert following.start == previous.end + ONE_SECOND


def test_overlap_applies_only_before_the_first_window() -> None:
    since = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    windows = _plan(since, since + timedelta(days=45), overlap=timedelta(minutes=5))
    assert windows[0].start_utc == since - timedelta(minutes=5)
    assert windows[1].start == windows[0].end + ONE_SECOND  # no second overlap


def test_bounds_are_whole_seconds() -> None:
    since = datetime(2025, 1, 1, 0, 0, 0, 700_000, tzinfo=UTC)
    until = datetime(2025, 1, 2, 0, 0, 0, 300_000, tzinfo=UTC)
    (window,) = _plan(since, until)
    assert window.filter_range() == ["2025-01-01T00:00:00", "2025-01-02T00:00:00"]


def test_windows_are_rendered_in_a_non_utc_account_zone() -> None:
    since = datetime(2025, 1, 10, 6, 0, tzinfo=UTC)  # 00:00 CST
    until = datetime(2025, 1, 11, 6, 0, tzinfo=UTC)
    (window,) = _plan(since, until, tz=CHICAGO)
    assert window.filter_range() == ["2025-01-10T00:00:00", "2025-01-11T00:00:00"]
    # ...while the bounds handed back for watermarks are UTC again.
    assert window.start_utc == since
    assert window.end_utc == until


def test_windows_over_a_dst_change_stay_within_30_days_of_wall_time() -> None:
    # 2025-03-09: Chicago springs forward. 30 days of UTC would be 30 d 1 h of wall time.
    since = datetime(2025, 2, 20, 6, 0, tzinfo=UTC)
    until = datetime(2025, 5, 1, tzinfo=UTC)
    for window in _plan(since, until, tz=CHICAGO):
        low, high = (datetime.fromisoformat(v) for v in window.filter_range())
        assert high - low <= timedelta(days=30)


def test_windows_over_autumn_dst_also_fit_30_days_of_elapsed_time() -> None:
    # 2024-11-03: Chicago falls back. 30 wall-clock days would be 30 d 1 h elapsed.
    since = datetime(2024, 10, 20, 5, 0, tzinfo=UTC)
    until = datetime(2025, 1, 1, tzinfo=UTC)
    windows = _plan(since, until, tz=CHICAGO)
    for window in windows:
        low, high = (datetime.fromisoformat(v) for v in window.filter_range())
        assert high - low <= timedelta(days=30)
        assert window.end_utc - window.start_utc <= timedelta(days=30)
    # The first window crosses the change: exactly 30 days elapsed, 1 hour less on the wall.
    assert windows[0].end_utc - windows[0].start_utc == timedelta(days=30)
    assert windows[0].end - windows[0].start == timedelta(days=30) - timedelta(hours=1)
    for previous, following in itertools.pairwise(windows):
        assert following.start == previous.end + ONE_SECOND  # still gap-free


def test_a_short_range_is_one_window_and_an_inverted_range_none() -> None:
    since = datetime(2025, 1, 1, tzinfo=UTC)
    assert len(_plan(since, since + timedelta(hours=1))) == 1
    assert _plan(since, since - timedelta(hours=1)) == []


@pytest.mark.parametrize("days", [pytest.param(31, id="31"), pytest.param(0, id="0")])
def test_window_days_outside_1_to_30_is_rejected(days: int) -> None:
    with pytest.raises(InvalidRequestError, match="window_days"):
        _plan(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC), max_days=days)


def test_naive_since_is_rejected() -> None:
    with pytest.raises(InvalidRequestError, match="naive"):
        _plan(datetime(2025, 1, 1), datetime(2025, 2, 1, tzinfo=UTC))


def test_split_halves_are_adjacent_disjoint_and_cover_the_window() -> None:
    window = Window(datetime(2025, 1, 1), datetime(2025, 1, 1, 0, 0, 9), UTC)  # 10 seconds
    first, second = window.split()
    assert first.start == window.start and second.end == window.end
    assert second.start == first.end + ONE_SECOND
    assert first.end == datetime(2025, 1, 1, 0, 0, 4)


def test_a_two_second_window_splits_into_two_single_seconds() -> None:
    window = Window(datetime(2025, 1, 1), datetime(2025, 1, 1, 0, 0, 1), UTC)
    first, second = window.split()
    assert first.single_second and second.single_second
    assert (first.start, second.start) == (window.start, window.end)


def test_a_single_second_cannot_be_split() -> None:
    window = Window(datetime(2025, 1, 1), datetime(2025, 1, 1), UTC)
    with pytest.raises(ValueError):
        window.split()
