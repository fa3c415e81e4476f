"""Defensive, vectorised parsing of Finale's raw values into clean pandas columns.

Finale sends numbers as numbers, but also as display strings ("1,200"), placeholders ("--")
and, in dirty accounts, junk: any JSON value can arrive in any field. Each parser returns the
clean column and a boolean mask of the rows whose value was present but could not be taken
as it is, so the caller quarantines those rows with a reason (``problem``) instead of
silently turning junk into NULL or into the text of a list.

The parsers run on every raw row of every chunk, so each has a fast path for what Finale
sends nearly always (plain strings, JSON numbers, canonical timestamps) and hands anything
else to the general, careful path; both paths give the same result for the values the fast
one takes.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

#: Values Finale uses for "no value" in display-formatted fields.
EMPTY_PLACEHOLDERS = frozenset({"", "--", "-", "N/A", "n/a"})

FINALE_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S"

#: Timestamps outside these years are junk (a zeroed Java date, a typo), not Finale dates,
#: and some would not fit every backend's timestamp type.
TIMESTAMP_YEARS = (1900, 2999)

#: An ISO 8601 date-time as Finale writes it, optionally with fractions and a zone.
_ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(?P<zone>Z|[+-]\d{2}(:?\d{2})?)?",
    re.IGNORECASE,
)


# --- text ------------------------------------------------------------------------------------


def to_text(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Strings, stripped; None stays missing, blanks stay blank (validation judges them).

    JSON integers are taken as their decimal text (numeric ids). Everything else that is
    not a string (lists, objects, booleans, fractional numbers) is bad, and so are strings
    the warehouse cannot store faithfully: a NUL character (PostgreSQL text refuses it) or
    a lone UTF-16 surrogate (not valid Unicode).

    Returns:
        (text column, mask of rows whose present value is not storable text).
    """
    if isinstance(series.dtype, pd.StringDtype) or _all_strings(series):
        try:
            out = series.astype("str").str.strip()
        except UnicodeEncodeError:  # a lone surrogate: only the careful path can say which
            pass
        else:
            bad = out.str.contains("\x00", regex=False).fillna(False).astype(bool)
            if not isinstance(out.dtype, pd.StringDtype):
                out = out.where(series.notna())
            return (out.where(~bad) if bad.any() else out), bad
    texts = [_text_or_none(v) for v in series.tolist()]
    bad = pd.Series([t is _BAD for t in texts], index=series.index, dtype=bool)
    values = pd.Series(
        [None if t is _BAD else t for t in texts], index=series.index, dtype="str"
    ).str.strip()
    return values, bad


_BAD = object()


def _all_strings(series: pd.Series) -> bool:
    return series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) in (
        "string",
        "empty",
    )


def _text_or_none(value: Any) -> Any:
    """One value as storable text, None when missing, ``_BAD`` when it is not text."""
    if _is_missing(value):
        return None
    if isinstance(value, str):
        return value if text_problem(value) is None else _BAD
    if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
        return str(int(value))
    return _BAD


def text_problem(value: Any) -> str | None:
    """Why ``value`` cannot be stored as text, or None when it can."""
    if isinstance(value, str):
        if "\x00" in value:
            return "contains a NUL character, which the warehouse cannot store"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid Unicode (it holds a lone surrogate)"
        return None
    if _is_missing(value) or (isinstance(value, int) and not isinstance(value, bool)):
        return None
    return f"is not text (a {json_type(value)})"


# --- numbers ---------------------------------------------------------------------------------


def to_number(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse numbers, accepting display strings such as "1,200" and "--" (missing).

    Returns:
        (float64 column, mask of rows whose non-empty value was not a finite number).
    """
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        numbers = series.astype("float64")
        return numbers, pd.Series(np.isinf(numbers.to_numpy()), index=series.index)
    if series.dtype == object and len(series):
        # JSON numbers arrive as Python ints and floats: convert those directly and parse
        # only the other values (display strings, junk) the careful way below.
        values = series.to_numpy()
        # map() over the types runs at C speed; a generator costs ~3x more per value.
        plain = np.fromiter(map(_PLAIN_NUMBER.__contains__, map(type, values)), bool, len(values))
        if plain.any():
            numbers = values.copy()
            numbers[~plain] = None  # NaN once converted, as Series.where would give
            try:
                converted = numbers.astype("float64")
            except (OverflowError, TypeError, ValueError):  # an int too large for a float
                return _parse_numbers(series)
            result = pd.Series(converted, index=series.index, name=series.name)
            bad = pd.Series(np.isinf(converted), index=series.index)
            # Placeholders ("--") are missing, not bad, and stay NaN; only the rest (display
            # strings, junk) need the careful parser. They have no surrounding whitespace,
            # so the exact match is what the stripped comparison would find.
            other = ~plain
            other[other] = [not (type(v) is str and v in EMPTY_PLACEHOLDERS) for v in values[other]]
            if other.any():
                parsed, other_bad = _parse_numbers(series[other])
                result[other] = parsed
                bad[other] = other_bad
            return result, bad
    return _parse_numbers(series)


#: Value types ``to_number`` converts without parsing text (not bool: True is no number).
_PLAIN_NUMBER = frozenset({int, float, type(None)})


def _parse_numbers(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    numbers = np.array([_number_or_nan(v) for v in series.tolist()], dtype=np.float64)
    present = np.array([not _is_blank(v) for v in series.tolist()], dtype=bool)
    bad = present & ~np.isfinite(numbers)
    return (
        pd.Series(numbers, index=series.index, name=series.name),
        pd.Series(bad, index=series.index),
    )


def _number_or_nan(value: Any) -> float:
    """One raw value as a float; NaN when it is missing or not a number."""
    if isinstance(value, bool | np.bool_) or _is_blank(value):
        return math.nan
    if isinstance(value, int | float | np.integer | np.floating):
        try:
            return float(value)
        except OverflowError:  # an integer beyond any float: no finite number
            return math.inf
    if isinstance(value, str):
        try:
            return float(value.replace(",", "").strip())
        except ValueError:
            return math.nan
    return math.nan


# --- timestamps ------------------------------------------------------------------------------


def to_timestamp(series: pd.Series, tz: str) -> tuple[pd.Series, pd.Series]:
    """Parse Finale's timestamps as UTC.

    Zone-less values (what Finale sends) are read in the account zone ``tz``; values that
    carry ``Z`` or an offset are converted with it. Ambiguous or non-existent local times
    (DST changes) resolve to the later instant, so a timestamp is never dropped. Anything
    else that is present (other formats, other JSON types, years outside
    ``TIMESTAMP_YEARS``) is bad.

    Returns:
        (datetime64[us, UTC] column; mask of rows whose non-empty value did not parse).
    """
    parsed = _exact_timestamps(series)
    if parsed is not None:
        bad = pd.Series(False, index=series.index, name=series.name)
        zoned = None
    else:
        parsed, zoned, bad = _careful_timestamps(series)
    if tz != "UTC":
        # ambiguous=False picks standard time, i.e. the later of the two instants.
        later = np.zeros(len(parsed), dtype=bool)
        parsed = parsed.dt.tz_localize(tz, ambiguous=later, nonexistent="shift_forward")
        parsed = parsed.dt.tz_convert("UTC")
    else:
        parsed = parsed.dt.tz_localize("UTC")
    parsed = parsed.astype("datetime64[us, UTC]")
    if zoned is not None and zoned.notna().any():
        parsed = parsed.where(zoned.isna(), zoned)
    years = parsed.dt.year
    out_of_range = (years < TIMESTAMP_YEARS[0]) | (years > TIMESTAMP_YEARS[1])
    if out_of_range.any():
        bad = bad | out_of_range.fillna(False).astype(bool)
        parsed = parsed.where(~out_of_range.fillna(False).astype(bool))
    return parsed, bad


def _careful_timestamps(series: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(naive local times, UTC times of zone-carrying values, bad mask), value by value."""
    local: list[str | None] = []
    zoned: list[str | None] = []
    bad: list[bool] = []
    for value in series.tolist():
        text = value.strip() if isinstance(value, str) else None
        match = _ISO_DATETIME.fullmatch(text) if text is not None else None
        usable = match is not None and text_problem(text) is None
        has_zone = usable and match is not None and match.group("zone") is not None
        local.append(text if usable and not has_zone else None)
        zoned.append(text if has_zone else None)
        bad.append(not usable and not _is_blank(value))
    index = series.index
    naive = _iso(local, index, utc=False)
    aware = _iso(zoned, index, utc=True)
    unparsed = (naive.isna() & pd.Series(local, index=index, dtype=object).notna()) | (
        aware.isna() & pd.Series(zoned, index=index, dtype=object).notna()
    )
    return naive, aware, pd.Series(bad, index=index) | unparsed


def _iso(values: list[str | None], index: pd.Index, *, utc: bool) -> pd.Series:
    """ISO 8601 texts parsed one by one (mixed precisions and offsets), NaT where they fail."""
    parsed = [
        pd.NaT if v is None else pd.to_datetime(v, format="ISO8601", utc=utc, errors="coerce")
        for v in values
    ]
    unit = "datetime64[us, UTC]" if utc else "datetime64[us]"
    return pd.Series(parsed, index=index, dtype=object).astype(unit)


def _exact_timestamps(series: pd.Series) -> pd.Series | None:
    """The naive datetime64 column when every present value is exactly Finale's format.

    What Finale sends nearly always, and pandas' own parser reads it in one pass, ~2x faster
    than the careful path. None (take the careful path) when any value is not a string or
    does not parse, or none is present.
    """
    if series.dtype != object or pd.api.types.infer_dtype(series, skipna=True) != "string":
        return None
    parsed = pd.to_datetime(series, format=FINALE_DATETIME_FORMAT, errors="coerce")
    missing = parsed.isna()
    if missing.all() or (missing & series.notna()).any():
        return None
    return parsed


# --- shared ----------------------------------------------------------------------------------


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for reasons an operator reads ("a list")."""
    if isinstance(value, bool | np.bool_):
        return "boolean"
    if isinstance(value, int | float | np.integer | np.floating):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _is_blank(value: Any) -> bool:
    """Missing, or one of Finale's empty placeholders (after stripping)."""
    return _is_missing(value) or (isinstance(value, str) and value.strip() in EMPTY_PLACEHOLDERS)
