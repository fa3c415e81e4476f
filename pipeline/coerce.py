"""Defensive, vectorised parsing of Finale's raw values into clean pandas columns.

Finale sends numbers as numbers, but also as display strings ("1,200"), placeholders ("--")
and, in dirty accounts, junk. Each parser returns the clean column and a boolean mask of the
rows whose value was present but could not be parsed, so the caller can quarantine those rows
with a reason instead of silently turning junk into NULL.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Values Finale uses for "no value" in display-formatted fields.
EMPTY_PLACEHOLDERS = frozenset({"", "--", "-", "N/A", "n/a"})

FINALE_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


def _blank_as_na(series: pd.Series) -> pd.Series:
    """Treat None, NaN and the empty placeholders as missing."""
    as_text = series.astype("str").str.strip()
    return series.where(~as_text.isin(EMPTY_PLACEHOLDERS) & series.notna())


def to_text(series: pd.Series) -> pd.Series:
    """Strings, stripped; None/NaN stay missing, blanks stay blank (validation judges them)."""
    out = series.astype("str").str.strip()
    return out.where(series.notna())


def to_number(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse numbers, accepting display strings such as "1,200" and "--" (missing).

    Returns:
        (float64 column, mask of rows whose non-empty value was not a number).
    """
    if pd.api.types.is_numeric_dtype(series.dtype):
        # No number is blank or a placeholder: nothing to parse, nothing can be bad.
        return series.astype("float64"), pd.Series(False, index=series.index)
    if series.dtype == object and len(series):
        # JSON numbers arrive as Python ints and floats: convert those directly and parse
        # only the other values (display strings, junk) the careful way below.
        values = series.to_numpy()
        plain = np.fromiter((type(v) in _PLAIN_NUMBER for v in values), bool, len(values))
        if plain.any():
            try:
                numbers = series.where(plain).astype("float64")
            except (OverflowError, TypeError, ValueError):  # an int too large for a float
                return _parse_numbers(series)
            bad = pd.Series(False, index=series.index)
            if not plain.all():
                other = ~plain
                parsed, other_bad = _parse_numbers(series[other])
                numbers[other] = parsed
                bad[other] = other_bad
            return numbers, bad
    return _parse_numbers(series)


#: Value types ``to_number`` converts without parsing text (not bool: True is no number).
_PLAIN_NUMBER = frozenset({int, float, type(None)})


def _parse_numbers(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    present = _blank_as_na(series)
    if pd.api.types.is_numeric_dtype(present.dtype):
        numbers = present.astype("float64")
    else:
        cleaned = present.astype("str").str.replace(",", "", regex=False).str.strip()
        numbers = pd.to_numeric(cleaned.where(present.notna()), errors="coerce").astype("float64")
    bad = present.notna() & numbers.isna()
    return numbers, bad


def to_timestamp(series: pd.Series, tz: str) -> tuple[pd.Series, pd.Series]:
    """Parse Finale's zone-less timestamps, read in the account zone ``tz``, as UTC.

    Ambiguous or non-existent local times (DST changes) resolve to the later instant, so
    a timestamp is never dropped.

    Returns:
        (datetime64[ns, UTC] column, mask of rows whose non-empty value did not parse).
    """
    # One text conversion serves both the blank test and the parse (as _blank_as_na would).
    as_text = series.astype("str")
    present = ~as_text.str.strip().isin(EMPTY_PLACEHOLDERS) & series.notna()
    parsed = pd.to_datetime(
        as_text.str.slice(0, 19).where(present), format=FINALE_DATETIME_FORMAT, errors="coerce"
    )
    if tz != "UTC":
        # ambiguous=False picks standard time, i.e. the later of the two instants.
        later = np.zeros(len(parsed), dtype=bool)
        parsed = parsed.dt.tz_localize(tz, ambiguous=later, nonexistent="shift_forward")
        parsed = parsed.dt.tz_convert("UTC")
    else:
        parsed = parsed.dt.tz_localize("UTC")
    bad = present & parsed.isna()
    return parsed, bad
