"""Defensive, vectorised parsing of Finale's raw values into clean pandas columns.

Finale sends numbers as numbers, but also as display strings ("1,200"), placeholders ("--")
and, in dirty accounts, junk: any JSON value can arrive in any field. Each parser returns the
clean column and a boolean mask of the rows whose value was present but could not be taken
as it is, so the caller quarantines those rows with a reason (``text_problem``, or the
rule's own words) instead of silently turning junk into NULL or into the text of a list.

Each parser is one columnar pass: the values are sorted by JSON type once (``_kinds``), then
each kind is converted as a whole (strings by pyarrow and pandas string kernels, numbers by
one ``astype``) and every other kind is bad. What counts as "no value" in a display field is
``connectors.finale.display.EMPTY_MARKERS``, shared with the GraphQL connector.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from connectors.finale.display import EMPTY_MARKERS

#: Timestamps outside these years are junk (a zeroed Java date, a typo), not Finale dates,
#: and some would not fit every backend's timestamp type.
TIMESTAMP_YEARS = (1900, 2999)

#: An ISO 8601 date-time as Finale writes it, optionally with fractions (RE2 syntax, ASCII
#: digits only); with no zone, as Finale sends it, or with ``Z`` or an offset.
_ISO_DATETIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?"
_ISO_LOCAL = _ISO_DATETIME + "$"
_ISO_ZONED = _ISO_DATETIME + "(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)$"

# --- sorting values by kind ------------------------------------------------------------------

#: Kinds of raw value (codes in the array ``_kinds`` returns).
_MISSING, _TEXT, _INTEGER, _FLOAT, _OTHER = range(5)

_MISSING_TYPES = (type(None), type(pd.NA), type(pd.NaT))


def _kind_of_type(kind: type) -> int:
    if issubclass(kind, bool | np.bool_):
        return _OTHER  # True is neither a number nor text
    if issubclass(kind, str):
        return _TEXT
    if issubclass(kind, int | np.integer):
        return _INTEGER
    if issubclass(kind, float | np.floating | Decimal):
        return _FLOAT  # a numeric column of an app database arrives as Decimal
    return _MISSING if issubclass(kind, _MISSING_TYPES) else _OTHER


class _Sorted(NamedTuple):
    """Raw values sorted by kind."""

    kinds: np.ndarray  # the kind of each value (``_TEXT``, ...)
    #: When every present value is a string (the usual text column), the values as Arrow
    #: strings, null where missing; else None.
    strings: pa.Array | None = None
    #: When every present value is an integer, or every one a float (the usual number
    #: column), the values as float64, NaN where missing; else None.
    numbers: np.ndarray | None = None


#: What ``infer_dtype`` says of a column whose present values are all of one kind.
_UNIFORM = {"string": _TEXT, "empty": _TEXT, "integer": _INTEGER, "floating": _FLOAT}


def _kinds(values: np.ndarray) -> _Sorted:
    """Sort ``values`` (an object array) by kind; a float NaN is missing."""
    kind = _UNIFORM.get(pd.api.types.infer_dtype(values, skipna=True))
    if kind is not None:
        # The usual column: Arrow's conversion, which the parsers need anyway, also finds
        # the missing values in one pass. Numbers are converted as the type Arrow infers,
        # then cast safely: an integer no float holds exactly is refused there (a cast
        # straight to float64 would wrap a NumPy uint64 to -1).
        try:
            if kind == _TEXT:
                strings = pa.array(values, type=pa.large_string(), from_pandas=True)
                missing = strings.is_null().to_numpy(zero_copy_only=False)
                return _Sorted(np.where(missing, _MISSING, kind).astype(np.int8), strings)
            arrow = pa.array(values, from_pandas=True).cast(pa.float64())
            numbers = arrow.to_numpy(zero_copy_only=False, writable=True)  # null: NaN
            # NaN: a null, or a NaN Arrow keeps as a number (a NumPy float32's).
            kinds = np.where(np.isnan(numbers), _MISSING, kind).astype(np.int8)
            return _Sorted(kinds, numbers=numbers)
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            pass  # a lone surrogate, a huge integer, an odd NumPy type: sorted value by value
    missing = pd.isna(values)
    types = list(map(type, values))
    code = {kind: _kind_of_type(kind) for kind in set(types)}
    kinds = np.fromiter(map(code.__getitem__, types), np.int8, len(values))
    kinds[missing] = _MISSING
    return _Sorted(kinds)


def distinct_strings(values: np.ndarray) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Factorise the strings of ``values`` (an object array), for rules that take text
    and must refuse anything else present.

    Returns:
        (per value, the position of its string in the distinct strings, -1 when it is not
        a string; the distinct strings, as they are; mask of the values that are neither
        strings nor missing).
    """
    kinds, strings, _ = _kinds(values)
    others = (kinds != _TEXT) & (kinds != _MISSING)
    if strings is None:  # other kinds (or a lone surrogate), which Arrow cannot hold
        texts = values.copy()
        texts[kinds != _TEXT] = None
        codes, distinct = pd.factorize(texts)  # None: -1
        return codes, distinct.tolist(), others
    encoded = pc.dictionary_encode(strings)  # ~4x faster than factorising the objects
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    return codes, encoded.dictionary.to_pylist(), others


def _objects(series: pd.Series) -> np.ndarray:
    return series.to_numpy(dtype=object)


def _texts(
    values: np.ndarray,
    take: np.ndarray,
    index: pd.Index,
    *,
    nul: bool = True,
    strings: pa.Array | None = None,
) -> tuple[pd.Series, np.ndarray]:
    """``values[take]`` (strings) as a stripped string column, missing elsewhere.

    ``strings``, when given, is ``values`` already as Arrow strings (``_kinds``'s, when
    ``take`` is every present value). Also returns the mask of the taken strings the
    warehouse cannot store (a lone UTF-16 surrogate, which is not valid Unicode, and,
    unless ``nul`` is false because the caller rejects them anyway, a NUL character, which
    PostgreSQL text refuses); those are missing in the column.
    """
    bad = np.zeros(len(values), dtype=bool)
    if strings is not None:
        texts = strings
    else:
        taken = np.full(len(values), None, dtype=object)
        taken[take] = values[take]
        try:
            texts = pa.array(taken, type=pa.large_string())
        except UnicodeEncodeError:  # a lone surrogate somewhere: find which, keep the rest
            bad[take] = [text_problem(v) is not None for v in values[take]]
            taken[bad] = None
            texts = pa.array(taken, type=pa.large_string())
    # Arrow's trim is what pandas' ``str.strip`` runs; calling it directly skips a copy.
    texts = pc.utf8_trim_whitespace(texts)
    if nul and _holds_nul(texts):
        has_nul = pc.match_substring(texts, "\x00").fill_null(False)
        bad |= has_nul.to_numpy(zero_copy_only=False)
        texts = pc.if_else(has_nul, None, texts)
    return pd.Series(texts, index=index, dtype="str"), bad


def _holds_nul(texts: pa.Array) -> bool:
    """Whether any string in ``texts`` holds a NUL character.

    In UTF-8 only U+0000 encodes as a zero byte, so one scan of the data buffer answers for
    the whole column; the per-string search (~40x slower) runs only when it finds one.
    """
    data = texts.buffers()[2]
    return data is not None and memoryview(data).tobytes().find(b"\x00") >= 0


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
    values = _objects(series)
    kinds, strings, _ = _kinds(values)
    integers = kinds == _INTEGER
    if integers.any():
        values = values.copy()
        values[integers] = [str(int(v)) for v in values[integers]]
    column, bad = _texts(values, (kinds == _TEXT) | integers, series.index, strings=strings)
    bad |= (kinds == _FLOAT) | (kinds == _OTHER)
    return column, pd.Series(bad, index=series.index)


def text_problem(value: Any) -> str | None:
    """Why ``value`` cannot be stored as text, or None when it can (the reason ``to_text``
    gives a bad value)."""
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

    JSON numbers (and an app database's Decimals) are taken as they are; strings are
    stripped, their thousands separators dropped and the rest read as a decimal number; an
    empty marker ("--", "N/A", ...) is missing. Booleans, lists, objects, junk text and
    non-finite numbers are bad.

    Returns:
        (float64 column, mask of rows whose non-empty value was not a finite number).
    """
    kind = series.dtype
    if pd.api.types.is_numeric_dtype(kind) and not pd.api.types.is_bool_dtype(kind):
        numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)  # all numbers already
        present = ~series.isna().to_numpy()
    else:
        values = _objects(series)
        kinds, strings, numbers = _kinds(values)
        plain = (kinds == _INTEGER) | (kinds == _FLOAT)
        if numbers is None:
            numbers = np.full(len(values), np.nan)
            if plain.any():
                numbers[plain] = _floats(values[plain])
        present = kinds != _MISSING
        text = kinds == _TEXT
        if text.any():
            texts, _ = _texts(values, text, series.index, strings=strings)
            texts = texts[text]
            empty = texts.isin(EMPTY_MARKERS).to_numpy(dtype=bool)
            numbers[text] = pd.to_numeric(
                texts.str.replace(",", "", regex=False).astype(object), errors="coerce"
            ).to_numpy(dtype=np.float64, na_value=np.nan)
            present[np.flatnonzero(text)[empty]] = False
    bad = present & ~np.isfinite(numbers)
    return (
        pd.Series(numbers, index=series.index, name=series.name),
        pd.Series(bad, index=series.index),
    )


def _floats(numbers: np.ndarray) -> np.ndarray:
    """JSON numbers as floats; an integer too large for a float becomes inf (not finite)."""
    try:
        return numbers.astype(np.float64)
    except OverflowError:
        return np.array([_float_or_inf(v) for v in numbers], dtype=np.float64)


def _float_or_inf(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf


# --- timestamps ------------------------------------------------------------------------------


def to_timestamp(series: pd.Series, tz: str) -> tuple[pd.Series, pd.Series]:
    """Parse Finale's timestamps as UTC.

    Zone-less values (what Finale sends) are read in the account zone ``tz``; values that
    carry ``Z`` or an offset are converted with it; a column of aware timestamps (what an
    app database sends) is taken as it is. Ambiguous or non-existent local times
    (DST changes) resolve to the later instant, so a timestamp is never dropped. Empty
    markers ("--") are missing. Anything else that is present (other formats, other JSON
    types, years outside ``TIMESTAMP_YEARS``) is bad.

    Returns:
        (datetime64[us, UTC] column; mask of rows whose non-empty value did not parse).
    """
    index = series.index
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        # A typed source (an app database) sends instants: taken as they are, in range.
        parsed = series.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
        bad = (parsed.notna() & ~_in_years(parsed)).to_numpy()
        return parsed.where(~bad).rename(series.name), pd.Series(bad, index=index)
    values = _objects(series)
    kinds, arrow, _ = _kinds(values)
    text = kinds == _TEXT
    strings, bad = _texts(values, text, index, nul=False, strings=arrow)  # no NUL in the pattern
    local_text = _matches(strings, _ISO_LOCAL)
    zoned = np.zeros(len(index), dtype=bool)
    if (local_text != text).any():  # some are zoned or junk (a second pass, for those only)
        zoned = _matches(strings, _ISO_ZONED)
    matched = local_text | zoned
    bad |= (kinds == _FLOAT) | (kinds == _INTEGER) | (kinds == _OTHER)
    unmatched = np.flatnonzero(text & ~matched & ~bad)
    bad[unmatched] = ~strings.iloc[unmatched].isin(EMPTY_MARKERS).to_numpy(dtype=bool)
    local = _iso(strings.where(local_text), utc=False)
    if tz != "UTC":
        # A year past the range cannot be localised (9999 plus a few hours overflows); a
        # year next to it may still be in range once in UTC.
        local = local.where(_in_years(local, slack=1))
        # ambiguous=False picks standard time, i.e. the later of the two instants.
        later = np.zeros(len(local), dtype=bool)
        parsed = local.dt.tz_localize(tz, ambiguous=later, nonexistent="shift_forward")
        parsed = parsed.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    else:
        parsed = local.dt.tz_localize("UTC")
    if zoned.any():
        instants = _iso(strings.where(zoned), utc=True)
        parsed = parsed.where(~zoned, instants)
    parsed = parsed.where(_in_years(parsed))
    bad |= matched & parsed.isna().to_numpy()  # no such date ("2024-02-30T...") or year
    return parsed.rename(series.name), pd.Series(bad, index=index, name=series.name)


def _matches(strings: pd.Series, pattern: str) -> np.ndarray:
    """Whether each string matches ``pattern`` (RE2); a missing one does not."""
    found = pc.match_substring_regex(pa.array(strings.array), pattern=pattern)
    return found.fill_null(False).to_numpy(zero_copy_only=False)


def _in_years(times: pd.Series, slack: int = 0) -> pd.Series:
    """Whether each time falls in ``TIMESTAMP_YEARS`` (widened by ``slack`` years)."""
    # Two comparisons with the bounds' instants: a third of the cost of ``dt.year``.
    first = pd.Timestamp(np.datetime64(f"{TIMESTAMP_YEARS[0] - slack:04d}-01-01", "us"))
    after = pd.Timestamp(np.datetime64(f"{TIMESTAMP_YEARS[1] + slack + 1:04d}-01-01", "us"))
    tz = times.dt.tz
    if tz is not None:
        first, after = first.tz_localize(tz), after.tz_localize(tz)
    return (times >= first) & (times < after)


def _iso(texts: pd.Series, *, utc: bool) -> pd.Series:
    """ISO 8601 texts (mixed precisions and offsets) as datetimes, NaT where they fail."""
    # pandas parses a NumPy array of str objects ~2x faster than an Arrow-backed column.
    strings = texts.to_numpy(dtype=object, na_value=None)
    parsed = pd.Series(pd.to_datetime(strings, format="ISO8601", utc=utc, errors="coerce"))
    parsed.index = texts.index
    return parsed.astype("datetime64[us, UTC]" if utc else "datetime64[us]")


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
