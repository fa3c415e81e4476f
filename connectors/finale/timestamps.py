"""Finale's zone-less timestamps <-> timezone-aware UTC datetimes, in one place.

Finale writes ``2024-11-28T05:16:14``: no zone, one-second precision, in the account's time
zone (``FINALE_TIMEZONE``; whether real Finale means UTC or local time is unconfirmed, so the
zone is a setting). Everything inside the connector and above it is aware UTC.

Daylight-saving edges: a wall time that occurs twice (autumn) or never (spring) maps to the
*earlier* of its candidate instants. Earlier is the safe side for watermarks: a sync may read
a record twice (upserts are idempotent) but never skips one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any

FINALE_FORMAT = "%Y-%m-%dT%H:%M:%S"


def _candidates(naive: datetime, tz: tzinfo) -> tuple[datetime, datetime]:
    return (
        naive.replace(tzinfo=tz, fold=0).astimezone(UTC),
        naive.replace(tzinfo=tz, fold=1).astimezone(UTC),
    )


def earliest_utc(naive: datetime, tz: tzinfo) -> datetime:
    """The earliest instant a wall-clock time in ``tz`` may denote (differs only on DST edges)."""
    return min(_candidates(naive, tz))


def latest_utc(naive: datetime, tz: tzinfo) -> datetime:
    """The latest instant a wall-clock time in ``tz`` may denote (differs only on DST edges)."""
    return max(_candidates(naive, tz))


def local_to_utc(naive: datetime, tz: tzinfo) -> datetime:
    """Interpret a naive wall-clock time in ``tz`` as aware UTC (earlier instant on DST edges)."""
    return earliest_utc(naive, tz)


def utc_to_local(moment: datetime, tz: tzinfo) -> datetime:
    """Render an aware datetime as naive wall-clock time in ``tz``.

    Raises:
        ValueError: for a naive datetime (its zone would be a guess).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"datetime {moment.isoformat()} is naive; pass a timezone-aware one")
    return moment.astimezone(tz).replace(tzinfo=None)


def floor_second(moment: datetime) -> datetime:
    """Drop microseconds: Finale filters and stores whole seconds."""
    return moment.replace(microsecond=0)


def parse_finale_datetime(text: str, tz: tzinfo) -> datetime:
    """Parse a Finale timestamp (account wall time) into an aware UTC datetime.

    Tolerates fractional seconds and an explicit offset or ``Z`` (then ``tz`` is not used).

    Args:
        text: e.g. ``"2024-11-28T05:16:14"``.
        tz: the account time zone.

    Raises:
        ValueError: when ``text`` is not an ISO-8601 timestamp.
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is not None:
        return parsed.astimezone(UTC)
    return local_to_utc(parsed, tz)


def format_finale_datetime(moment: datetime, tz: tzinfo) -> str:
    """Render an aware datetime as a Finale timestamp in the account zone, whole seconds.

    Raises:
        ValueError: for a naive datetime.
    """
    return format_local(utc_to_local(moment, tz))


def format_local(naive: datetime) -> str:
    """Render a naive account wall-clock time as a Finale timestamp (microseconds dropped)."""
    return floor_second(naive).strftime(FINALE_FORMAT)


def to_wire(value: Any, tz: tzinfo) -> Any:
    """Prepare a value for a Finale JSON body or filter.

    Datetimes become Finale timestamps in ``tz``, dates become midnight timestamps,
    ``Decimal`` and numpy scalars become plain numbers; containers are converted recursively.

    Raises:
        ValueError: for a naive datetime.
    """
    if isinstance(value, datetime):
        return format_finale_datetime(value, tz)
    if isinstance(value, date):
        return f"{value.isoformat()}T00:00:00"
    if isinstance(value, dict):
        return {str(k): to_wire(v, tz) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_wire(v, tz) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and type(value).__module__ == "numpy":
        return item()
    return value
