"""``lastUpdatedDate`` windows: closed ranges of whole seconds, at most 30 days wide.

Finale filters ``lastUpdatedDate`` on its zone-less wall-clock values, so windows are walked
in the account's wall-clock time, not in UTC. That keeps every window at most ``window_days``
wide as Finale measures it (a 30-day UTC window that crosses a daylight-saving change is
30 days and 1 hour of wall time, which Finale rejects with 400), and keeps consecutive
windows disjoint and gap-free on the values Finale actually compares. Each window also
fits 30 days of elapsed time, in case Finale measures the range that way. The aware UTC bounds a
caller stores as its watermark are derived from the wall-clock bounds (earlier instant on DST
edges, see ``timestamps.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from connectors.finale.errors import InvalidRequestError
from connectors.finale.timestamps import (
    earliest_utc,
    floor_second,
    format_local,
    latest_utc,
    local_to_utc,
    utc_to_local,
)

ONE_SECOND = timedelta(seconds=1)
MAX_WINDOW_DAYS = 30


@dataclass(frozen=True)
class Window:
    """A closed range ``[start, end]`` of account wall-clock time, in whole seconds.

    Attributes:
        start: first second included (naive, account wall-clock time).
        end: last second included (naive, account wall-clock time).
        tz: the account time zone, to express the bounds in UTC.
    """

    start: datetime
    end: datetime
    tz: tzinfo

    @property
    def start_utc(self) -> datetime:
        """``start`` as an aware UTC datetime."""
        return local_to_utc(self.start, self.tz)

    @property
    def end_utc(self) -> datetime:
        """``end`` as an aware UTC datetime (what a watermark may advance to)."""
        return local_to_utc(self.end, self.tz)

    @property
    def single_second(self) -> bool:
        """True when the window is one second wide and cannot be split further."""
        return self.end <= self.start

    def filter_range(self) -> list[str]:
        """The ``[low, high]`` pair for Finale's filter, as Finale timestamps."""
        return [format_local(self.start), format_local(self.end)]

    def split(self) -> tuple[Window, Window]:
        """Split into two disjoint, adjacent halves that together cover this window.

        The first half ends at the midpoint (rounded down to a second); the second starts
        one second later, so no second is read twice and none is skipped.

        Raises:
            ValueError: for a one-second window.
        """
        if self.single_second:
            raise ValueError("a one-second window cannot be split")
        half = int((self.end - self.start).total_seconds()) // 2
        middle = self.start + timedelta(seconds=half)
        return Window(self.start, middle, self.tz), Window(middle + ONE_SECOND, self.end, self.tz)


@dataclass(frozen=True)
class WindowPlan:
    """Walks ``[start, end]`` in consecutive windows of at most ``max_days`` days.

    Attributes:
        start: first second to read (naive, account wall-clock time).
        end: last second to read (naive, account wall-clock time).
        tz: the account time zone.
        max_days: widest window, in days (Finale allows at most 30).
    """

    start: datetime
    end: datetime
    tz: tzinfo
    max_days: int = MAX_WINDOW_DAYS

    @classmethod
    def between(
        cls,
        since: datetime,
        until: datetime,
        *,
        overlap: timedelta,
        tz: tzinfo,
        max_days: int = MAX_WINDOW_DAYS,
    ) -> WindowPlan:
        """Plan ``[since - overlap, until]`` from aware datetimes.

        The overlap applies once, before the first window: it re-reads records whose update
        landed in the same second as the previous run's end, or that a clock skew hid.

        Raises:
            InvalidRequestError: for naive datetimes, a negative overlap or a window width
                outside 1..30 days.
        """
        if not 1 <= max_days <= MAX_WINDOW_DAYS:
            raise InvalidRequestError(
                f"window_days must be between 1 and {MAX_WINDOW_DAYS} (Finale rejects "
                f"lastUpdatedDate ranges wider than 30 days), got {max_days}"
            )
        if overlap < timedelta(0):
            raise InvalidRequestError(f"overlap must not be negative, got {overlap}")
        try:
            start = floor_second(utc_to_local(since - overlap, tz))
            end = floor_second(utc_to_local(until, tz))
        except ValueError as exc:
            raise InvalidRequestError(f"since/until: {exc}") from exc
        return cls(start=start, end=end, tz=tz, max_days=max_days)

    def windows(self) -> Iterator[Window]:
        """Yield the windows in order; the next starts one second after the previous ends."""
        width = timedelta(days=self.max_days)
        cursor = self.start
        while cursor <= self.end:
            window_end = min(cursor + width, self.end)
            # Whether Finale measures the 30 days in wall-clock time or in elapsed time is
            # unknown; across an autumn DST change 30 wall-clock days are 30 d 1 h elapsed,
            # so shorten the window until both measures fit (worst case over DST folds).
            excess = latest_utc(window_end, self.tz) - earliest_utc(cursor, self.tz) - width
            if excess > timedelta(0):
                window_end -= timedelta(seconds=math.ceil(excess.total_seconds()))
            yield Window(cursor, window_end, self.tz)
            cursor = window_end + ONE_SECOND


@dataclass
class WindowPacer:
    """Sizes the parts a window is read in, so that each holds about ``target`` records.

    A 30-day window may hold far more records than one page should (up to the server's cap of
    120,000, where a page of the caller's chunk size is wanted). Without ``offset``, the only
    way to read less at once is a narrower range, so a window is walked in parts: the width of
    the next part comes from the density of the last part read whole, carried from window to
    window. Until a part has been read (the first window of a walk), a part is the rest of the
    window; a part that comes back full is halved by the caller, which also teaches the pacer.

    Attributes:
        target: records a part should hold; kept below the response limit, so that ordinary
            variation in density rarely makes a part come back full (and be read again).
        seconds_per_record: the density last seen; None before the first part.
    """

    target: int
    seconds_per_record: float | None = None

    def next_part(self, window: Window, start: datetime) -> Window:
        """The part of ``window`` to read next: from ``start`` (within it) to at most its end."""
        if self.seconds_per_record is None:
            return Window(start, window.end, window.tz)
        seconds = max(1, int(self.target * self.seconds_per_record))
        return Window(start, min(window.end, start + timedelta(seconds=seconds - 1)), window.tz)

    def observe(self, part: Window, records: int) -> None:
        """Learn from a part read whole: it held ``records`` records (0 counts as 1)."""
        seconds = (part.end - part.start).total_seconds() + 1
        self.seconds_per_record = seconds / max(records, 1)
