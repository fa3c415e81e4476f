"""Defensive parsing of Finale's display-formatted values ("1,200", "--", "24 d", "11/28/2024").

GraphQL is asked for raw values (``formatter: "none"``), but Finale's formatting has leaked
through for some fields in production clients, so every converter accepts both the raw and
the display form. The parse functions raise ``ValueError`` on text they do not understand;
``apply_converters`` then keeps the original value, so the schema validation at the boundary
quarantines the record with the offending text instead of the connector guessing.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

Converter = Callable[[Any], Any]

#: The texts Finale shows for "no value" in display-formatted fields (an em dash too),
#: compared after stripping. The one definition of an empty display value: ``pipeline.coerce``
#: reads raw REST values with it as well.
EMPTY_MARKERS = frozenset({"", "--", "-", "—", "n/a", "N/A"})

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_DURATION = re.compile(r"^([+-]?\d+(?:\.\d+)?)\s*([a-z]*)\.?$", re.IGNORECASE)
_DAYS_PER_UNIT = {
    "": 1.0,
    "d": 1.0,
    "day": 1.0,
    "days": 1.0,
    "w": 7.0,
    "wk": 7.0,
    "wks": 7.0,
    "week": 7.0,
    "weeks": 7.0,
    "h": 1 / 24,
    "hr": 1 / 24,
    "hrs": 1 / 24,
    "hour": 1 / 24,
    "hours": 1 / 24,
}
_DATE_FORMATS = ("%m/%d/%Y", "%m/%d/%y", "%Y-%m-%d", "%b %d, %Y", "%B %d, %Y", "%d %b %Y")


def is_empty(value: Any) -> bool:
    """Whether ``value`` means "no value": None, or text that is one of ``EMPTY_MARKERS``.

    ``is_empty(" -- ")`` and ``is_empty("—")`` are true; ``is_empty(0)`` is not.
    """
    return value is None or (isinstance(value, str) and value.strip() in EMPTY_MARKERS)


def parse_display_number(value: Any) -> float | None:
    """Parse a number that may be display-formatted.

    Examples: ``1200`` -> 1200.0, ``"1,200"`` -> 1200.0, ``"$1,200.50"`` -> 1200.5,
    ``"(12.5)"`` -> -12.5, ``"--"`` -> None.

    Raises:
        ValueError: for text that is not a number.
    """
    if is_empty(value):
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    negative = text.startswith("(") and text.endswith(")")
    cleaned = re.sub(r"[\s,$€£%]|^\(|\)$", "", text)
    if not _NUMBER.match(cleaned):
        raise ValueError(f"not a number: {value!r}")
    number = float(cleaned)
    return -number if negative else number


def parse_display_date(value: Any) -> date | None:
    """Parse a date that may be display-formatted ("11/28/2024") or ISO ("2024-11-28...").

    A timestamp keeps only its date part. ``"--"`` -> None.

    Raises:
        ValueError: for text that is not a date.
    """
    if is_empty(value):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        raise ValueError(f"not a date: {value!r}") from None


def parse_duration_days(value: Any) -> float | None:
    """Parse a duration in days that may be display-formatted.

    Examples: ``"24 d"`` -> 24.0, ``"2 weeks"`` -> 14.0, ``24`` -> 24.0, ``"--"`` -> None.

    Raises:
        ValueError: for text that is not a duration.
    """
    if is_empty(value):
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value).strip().replace(",", ""))
    if not match or match.group(2).lower() not in _DAYS_PER_UNIT:
        raise ValueError(f"not a duration in days: {value!r}")
    return float(match.group(1)) * _DAYS_PER_UNIT[match.group(2).lower()]


def blank_to_none(value: Any) -> Any:
    """Replace the display placeholders for "no value" ("--", "") with None, recursively."""
    if isinstance(value, str):
        return None if is_empty(value) else value
    if isinstance(value, list):
        return [blank_to_none(v) for v in value]
    if isinstance(value, dict):
        return {k: blank_to_none(v) for k, v in value.items()}
    return value


def apply_converters(node: dict[str, Any], converters: Mapping[str, Converter]) -> dict[str, Any]:
    """Return a copy of ``node`` with placeholders blanked and the converters applied.

    Args:
        node: one GraphQL node.
        converters: ``{"field": fn}``; dotted paths reach into nested objects and lists
            (``"stockByFacility.unitsInStock"``). A value a converter rejects is kept as is,
            for the boundary validation to report.
    """
    result = blank_to_none(node)
    for path, convert in converters.items():
        _convert_path(result, path.split("."), convert)
    return result  # type: ignore[no-any-return]


def _convert_path(target: Any, path: list[str], convert: Converter) -> None:
    if isinstance(target, list):
        for item in target:
            _convert_path(item, path, convert)
        return
    if not isinstance(target, dict) or path[0] not in target:
        return
    if len(path) > 1:
        _convert_path(target[path[0]], path[1:], convert)
        return
    # A rejected value stays raw: the schema boundary will name it in the quarantine.
    with contextlib.suppress(TypeError, ValueError):
        target[path[0]] = convert(target[path[0]])


# Defaults for the connections in the wire contract; callers may pass their own.
DEFAULT_CONVERTERS: dict[str, dict[str, Converter]] = {
    "productViewConnection": {
        "cost": parse_display_number,
        "unitsInStock": parse_display_number,
        "unitsOnOrder": parse_display_number,
        "stockByFacility.unitsInStock": parse_display_number,
    },
    "orderViewConnection": {
        "total": parse_display_number,
        "orderDate": parse_display_date,
    },
}
