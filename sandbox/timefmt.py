"""Finale-style zone-less timestamps, stored as int64 seconds since 1970-01-01 (naive).

The sandbox keeps every date as an integer so filters are plain numpy comparisons; it only
turns them into ``YYYY-MM-DDTHH:MM:SS`` strings when a page is rendered.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

NULL_DATE = np.iinfo(np.int64).min
"""Sentinel for a missing date in a date column (renders as ``null``)."""

DAY = 86_400
_EPOCH = datetime(1970, 1, 1)


def to_seconds(value: datetime) -> int:
    """Seconds since the epoch of a naive datetime, read as wall-clock time."""
    if value.tzinfo is not None:
        value = value.replace(tzinfo=None)
    return int((value - _EPOCH) // timedelta(seconds=1))


def from_seconds(seconds: int) -> datetime:
    """The naive datetime for ``seconds`` since the epoch."""
    return _EPOCH + timedelta(seconds=int(seconds))


def format_seconds(seconds: int | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SS`` for one value, ``None`` for a missing one."""
    if seconds is None or seconds == NULL_DATE:
        return None
    return from_seconds(seconds).strftime("%Y-%m-%dT%H:%M:%S")


def parse_timestamp(text: str, tz: ZoneInfo) -> int:
    """Parse a wire timestamp into seconds (account wall-clock time).

    Accepts ``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM:SS`` and ISO forms with fractions or an
    offset; an offset is converted to the account time zone ``tz`` first.

    Raises:
        ValueError: when ``text`` is not a timestamp.
    """
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a timestamp string")
    parsed = datetime.fromisoformat(text.strip())
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(tz).replace(tzinfo=None)
    return to_seconds(parsed)


def now_seconds(tz: ZoneInfo) -> int:
    """The current wall-clock time in ``tz``, in whole seconds."""
    return to_seconds(datetime.now(tz).replace(tzinfo=None, microsecond=0))


@lru_cache(maxsize=1)
def _time_of_day() -> tuple[str, ...]:
    # 86,400 "HH:MM:SS" strings, built once: formatting a page is then one lookup and one
    # concatenation per value instead of a datetime round trip (about 10x faster).
    return tuple(
        f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)
    )


def format_column(values: np.ndarray) -> list[str | None]:
    """Format an int64 array of seconds; ``NULL_DATE`` entries become ``None``."""
    if len(values) == 0:
        return []
    nulls = values == NULL_DATE
    safe = np.where(nulls, 0, values)
    days = safe // DAY
    secs = (safe - days * DAY).tolist()
    unique_days, inverse = np.unique(days, return_inverse=True)
    day_text = [
        d + "T" for d in np.datetime_as_string(unique_days.astype("datetime64[D]")).tolist()
    ]
    tod = _time_of_day()
    out: list[str | None] = [
        day_text[d] + tod[s] for d, s in zip(inverse.tolist(), secs, strict=True)
    ]
    for pos in np.flatnonzero(nulls).tolist():
        out[pos] = None
    return out


def format_display_date(seconds: int | None) -> str:
    """Finale's display form of a date (``11/28/2024``), ``--`` when missing."""
    if seconds is None or seconds == NULL_DATE:
        return "--"
    return from_seconds(seconds).strftime("%m/%d/%Y")
