"""The ``filter`` query parameter: base64 JSON ``{field: [low, high]}`` with Finale's rules.

- Closed ranges, ``null`` leaves an end open, equal ends mean equality.
- Only top-level scalar fields can be filtered; ``inventoryitem`` cannot be filtered at all.
- ``lastUpdatedDate`` needs a lower bound and may span at most 30 days (``now - low`` when the
  upper bound is open). The control API's ``count`` uses the same semantics without this rule.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson

from sandbox import timefmt
from sandbox.columns import DateColumn, FilterError, Table

MAX_WINDOW_SECONDS = 30 * timefmt.DAY
UNFILTERABLE_COLLECTIONS = frozenset({"inventoryitem"})


@dataclass(frozen=True)
class Filter:
    """A parsed filter: ``(field, low, high)`` clauses with dates already in seconds."""

    clauses: tuple[tuple[str, Any, Any], ...] = ()

    @property
    def key(self) -> str:
        """A canonical text form, used in cache keys."""
        return orjson.dumps(self.clauses).decode()

    def mask(self, table: Table) -> np.ndarray:
        """Alive rows of ``table`` that satisfy every clause."""
        mask = table.alive.copy()
        # The date clause goes first (Finale applies it first); the result is the same either
        # way, but starting from the narrowest mask keeps later masks cheap to combine.
        for field, low, high in sorted(self.clauses, key=lambda c: c[0] != "lastUpdatedDate"):
            mask &= table.columns[field].match(low, high)
        return mask


def decode_param(raw: str) -> Any:
    """Decode the wire form: standard base64 (with padding) of a JSON object.

    Raises:
        FilterError: when the value is not base64 of JSON.
    """
    try:
        text = base64.b64decode(raw.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise FilterError(f"filter is not valid base64: {exc}") from None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise FilterError(f"filter is not valid JSON: {exc}") from None


def encode_param(spec: dict[str, Any]) -> str:
    """The wire form of a filter object (used by tests and the control client)."""
    return base64.b64encode(orjson.dumps(spec)).decode("ascii")


def parse(
    spec: Any,
    table: Table,
    *,
    tz: ZoneInfo,
    now: int,
    enforce_window: bool,
) -> Filter:
    """Validate a decoded filter object against ``table``.

    Args:
        spec: the decoded JSON (must be an object of ``field: [low, high]``).
        table: the collection being read.
        tz: the account time zone, for timestamps that carry an offset.
        now: current time in seconds, for an open-ended ``lastUpdatedDate`` range.
        enforce_window: apply the ``lastUpdatedDate`` lower-bound and 30-day rules.

    Raises:
        FilterError: for anything Finale would answer with HTTP 400.
    """
    if table.name in UNFILTERABLE_COLLECTIONS and enforce_window:
        raise FilterError(f"the {table.name} collection cannot be filtered")
    if not isinstance(spec, dict):
        raise FilterError("filter must be a JSON object of field: [low, high]")
    clauses: list[tuple[str, Any, Any]] = []
    for field, bounds in spec.items():
        column = table.columns.get(field)
        if column is None:
            raise FilterError(f"unknown field {field!r} in filter for {table.name}")
        if not column.filterable:
            raise FilterError(f"field {field!r} cannot be used in a filter")
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise FilterError(f"filter value for {field!r} must be [low, high]")
        low, high = bounds
        if isinstance(column, DateColumn):
            low, high = (_seconds(field, b, tz) for b in (low, high))
            if field == "lastUpdatedDate" and enforce_window:
                _check_window(low, high, now)
        clauses.append((field, low, high))
    return Filter(tuple(sorted(clauses, key=lambda c: c[0])))


def _seconds(field: str, bound: Any, tz: ZoneInfo) -> int | None:
    if bound is None:
        return None
    try:
        return timefmt.parse_timestamp(bound, tz)
    except ValueError:
        raise FilterError(f"{field} bound {bound!r} is not a timestamp") from None


def _check_window(low: int | None, high: int | None, now: int) -> None:
    if low is None:
        raise FilterError("a lastUpdatedDate filter needs a lower bound")
    span = (now if high is None else high) - low
    if span > MAX_WINDOW_SECONDS:
        days = span / timefmt.DAY
        raise FilterError(f"lastUpdatedDate range spans {days:.1f} days; the maximum is 30 days")
