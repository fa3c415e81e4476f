"""Canonical text of warehouse rows, and the content hash and checksums built on it.

The loader decides "changed or not" by comparing a row's ``content_hash`` with the stored
one, so the hash must depend on the *value* a row will have in the database, never on how
a DataFrame happened to hold it (float or ``Decimal``, ``int64`` or ``Int64``, a UTC or a
+02:00 timestamp). Each business column is therefore rendered to one canonical text first:

============  ==========================================================================
column type   canonical text
============  ==========================================================================
NULL          absent: ``\\N`` in the row line (any null: ``None``, NaN, ``NaT``, ``pd.NA``)
Text/String   the string itself (``str(value)`` for non-strings); NUL characters refused
Numeric(p,s)  plain decimal with exactly ``s`` fraction digits, rounded half away from
              zero like PostgreSQL, no exponent, no ``-0``: ``1.5`` -> ``1.5000``;
              floats are read by their shortest repr (``0.1`` is ``0.1``, not
              ``0.1000000000000000055...``); ``|value| < 10**(p-s)`` is enforced
Integer       base-10 digits; integral floats/Decimals/strings accepted (``3.0`` -> ``3``)
DateTime      the UTC instant as ``YYYY-MM-DD HH:MM:SS.ffffff`` (truncated to
              microseconds, PostgreSQL's precision); naive datetimes are refused
============  ==========================================================================

The row's canonical line is PostgreSQL's COPY text format: those texts in table column
order, joined by TAB, with ``\\`` TAB LF CR in text escaped as ``\\\\ \\t \\n \\r`` and NULL as
``\\N``. That format is unambiguous (no two rows share a line) and is exactly what the
PostgreSQL loader streams to ``COPY``, so it is rendered once and used twice.
``content_hash = md5(utf-8 line).hexdigest()``.

The table checksum is order independent: the row count and the sum over rows of the first
8 hex digits of ``content_hash`` read as an unsigned 32-bit integer. The warehouse computes
the same sum in SQL (``warehouse.load.table_checksum``).
"""

from __future__ import annotations

import binascii
import hashlib
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from pandas.api import types as ptypes

#: Columns the loader maintains itself; every other column is a business column.
SYNC_COLUMNS: tuple[str, ...] = ("content_hash", "deleted_at", "synced_at")

#: How NULL is written in a canonical line (PostgreSQL COPY text format).
NULL_TOKEN = "\\N"

#: Hex digits of ``content_hash`` summed by the checksum (32 bits: a 1e9-row sum fits int64).
CHECKSUM_PREFIX_HEX = 8

_STRING = pa.large_string()
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
# Enough fraction digits to read any float repr or realistic string before rounding to the
# column scale. Extra digits are truncated toward zero, which never moves a value across a
# rounding midpoint, so the rounded result is still exact.
_WIDE_SCALE = 20
# CPython's built-in MD5 is ~2.5x faster per call than OpenSSL's for short inputs (no EVP
# context setup); same digest. Fall back to hashlib where the private module is absent.
try:
    from _md5 import md5 as _md5
except ImportError:  # pragma: no cover - other Python implementations
    _md5 = hashlib.md5
_HEX_VALUE = np.full(256, -1, dtype=np.int64)
_HEX_VALUE[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16)
_COPY_SPECIAL = np.zeros(256, dtype=bool)
_COPY_SPECIAL[[ord("\\"), ord("\t"), ord("\n"), ord("\r")]] = True
# A UTC offset after a time of day ("2024-01-01" alone ends in "-01" but has no offset).
_OFFSET_RE = re.compile(r"[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)$", re.I)


def require_aware(value: datetime, name: str) -> None:
    """Raise ``ValueError`` unless ``value`` is a timezone-aware datetime."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")


def business_columns(table: sa.Table) -> list[sa.Column[Any]]:
    """The columns a loader's frame must provide: all but ``SYNC_COLUMNS``, in table order."""
    return [c for c in table.columns if c.name not in SYNC_COLUMNS]


def key_columns(table: sa.Table) -> list[str]:
    """Names of the table's primary-key columns, in key order."""
    return [c.name for c in table.primary_key.columns]


def column_kind(column: sa.Column[Any]) -> str:
    """Classify a column for rendering: ``text``, ``numeric``, ``integer`` or ``datetime``.

    Raises:
        TypeError: The column's type has no canonical form defined.
    """
    col_type: Any = column.type
    if isinstance(col_type, sa.types.TypeDecorator):
        col_type = col_type.impl_instance
    if isinstance(col_type, sa.DateTime):
        return "datetime"
    if isinstance(col_type, sa.Integer):
        return "integer"
    if isinstance(col_type, sa.Numeric) and not isinstance(col_type, sa.Float):
        return "numeric"
    if isinstance(col_type, sa.String):
        return "text"
    raise TypeError(f"no canonical form for {column.table.name}.{column.name} ({col_type!r})")


@dataclass(frozen=True)
class RenderedRows:
    """A frame rendered to canonical text, ready for either backend.

    Attributes:
        columns: Business column names, in table order.
        values: Canonical text per column (``large_string`` arrays; nulls stay null).
        lines: Canonical COPY text line per row, without newline.
        hashes: ``content_hash`` per row.
        text_columns: Per column, whether it is text (escaped in COPY lines).
    """

    columns: tuple[str, ...]
    values: dict[str, pa.Array]
    lines: pa.Array
    hashes: pa.Array
    text_columns: dict[str, bool]

    def __len__(self) -> int:
        return len(self.lines)

    def filter(self, mask: np.ndarray | pa.Array) -> RenderedRows:
        """The rows where ``mask`` is true."""
        mask = pa.array(mask, type=pa.bool_())
        return RenderedRows(
            columns=self.columns,
            values={name: pc.filter(arr, mask) for name, arr in self.values.items()},
            lines=pc.filter(self.lines, mask),
            hashes=pc.filter(self.hashes, mask),
            text_columns=self.text_columns,
        )

    def key_frame(self, keys: Sequence[str]) -> pd.DataFrame:
        """The canonical key texts as a DataFrame (pandas ``str`` columns)."""
        return pd.DataFrame({k: self.values[k].to_pandas() for k in keys})

    def copy_payload(
        self, columns: Sequence[str] | None = None, *, with_hash: bool = True
    ) -> pa.Buffer:
        """COPY text data, one line per row.

        Args:
            columns: The columns to include (default: all rendered columns, in order).
            with_hash: Append ``content_hash`` as the last field.
        """
        if columns is None or list(columns) == list(self.columns):
            fields = [self.lines]
        else:
            fields = [copy_field(self.values[c], text=self.text_columns[c]) for c in columns]
        return copy_payload([*fields, self.hashes] if with_hash else fields)


def copy_field(arr: pa.Array, *, text: bool = True) -> pa.Array:
    """One COPY text-format field per value: escaped when ``text``, nulls as ``\\N``."""
    arr = _as_array(arr)
    return pc.fill_null(_escape_copy_text(arr) if text else arr, NULL_TOKEN)


def copy_payload(fields: Sequence[pa.Array], tail: str = "") -> pa.Buffer:
    """Join ready COPY fields (see ``copy_field``) into TAB-separated, LF-ended lines.

    Args:
        fields: One array per field, all of the same length.
        tail: Trailing fields that are the same on every row (COPY text, TAB-separated),
            e.g. the run's ``synced_at``: joined in the same pass instead of as arrays.

    Returns:
        The payload as one zero-copy Arrow buffer.
    """
    arrays = [_as_array(f) for f in fields]
    tab = pa.scalar("\t", _STRING)
    if tail:
        ends = pa.scalar(tail + "\n", _STRING)
        return _string_data(pc.binary_join_element_wise(*arrays, ends, tab))
    joined = pc.binary_join_element_wise(*arrays, tab) if len(arrays) > 1 else arrays[0]
    lines = pc.binary_join_element_wise(joined, pa.scalar("", _STRING), pa.scalar("\n", _STRING))
    return _string_data(lines)


def render_rows(
    table: sa.Table, frame: pd.DataFrame, *, columns: Sequence[str] | None = None
) -> RenderedRows:
    """Render ``frame`` to canonical text and compute each row's ``content_hash``.

    Args:
        table: The target table (column types decide the rendering).
        frame: Exactly the table's business columns (any order), or exactly ``columns``.
        columns: Render only these columns (e.g. the key columns) instead.

    Returns:
        The rendered rows, in the frame's row order.

    Raises:
        ValueError: Columns are missing or extra, a key is null, or a value cannot be
            represented in its column (naive timestamp, numeric overflow, ...).
    """
    wanted = list(columns) if columns is not None else [c.name for c in business_columns(table)]
    missing = [c for c in wanted if c not in frame.columns]
    extra = [c for c in frame.columns if c not in wanted]
    if missing or extra:
        raise ValueError(
            f"{table.name}: frame columns do not match; missing {missing}, unexpected {extra}"
        )
    values: dict[str, pa.Array] = {}
    for name in wanted:
        column = table.c[name]
        arr = _render_column(column, frame[name])
        if column.primary_key and arr.null_count:
            raise ValueError(f"{table.name}.{name}: primary-key column has null values")
        values[name] = arr

    text_columns = {n: column_kind(table.c[n]) == "text" for n in wanted}
    fields = [copy_field(values[n], text=text_columns[n]) for n in wanted]
    if not fields:
        raise ValueError(f"{table.name}: nothing to render")
    if len(fields) == 1:
        lines = fields[0]
    else:
        lines = pc.binary_join_element_wise(*fields, pa.scalar("\t", _STRING))
    lines = _as_array(lines)
    return RenderedRows(tuple(wanted), values, lines, _md5_hex(lines), text_columns)


def content_hashes(table: sa.Table, frame: pd.DataFrame) -> pd.Series:
    """``content_hash`` of each row of ``frame`` (business columns of ``table``).

    Args:
        table: Target table.
        frame: Exactly the table's business columns.

    Returns:
        A ``str`` Series aligned with ``frame.index``.
    """
    rendered = render_rows(table, frame)
    return pd.Series(rendered.hashes.to_pylist(), index=frame.index, dtype="str")


@dataclass(frozen=True)
class Checksum:
    """Order-independent summary of a set of rows: count and hash-prefix sum.

    Unpacks as ``(count, checksum)``; ``checksum`` is a fixed-width hex string, so it can be
    stored in ``sync_runs.source_checksum`` / ``warehouse_checksum`` and compared as text.
    Checksums of disjoint row sets add up (``a + b``).
    """

    count: int
    total: int

    @property
    def checksum(self) -> str:
        """The prefix sum as 16 hex digits."""
        return f"{self.total:016x}"

    def __iter__(self) -> Any:
        return iter((self.count, self.checksum))

    def __add__(self, other: Checksum) -> Checksum:
        return Checksum(self.count + other.count, self.total + other.total)


def checksum_of_hashes(hashes: Iterable[str] | pa.Array | pd.Series) -> Checksum:
    """Checksum of a collection of ``content_hash`` values (see module docstring).

    Nulls are skipped. Vectorised: the hex prefixes are decoded with numpy.
    """
    if isinstance(hashes, pa.Array | pa.ChunkedArray):
        arr = _as_array(hashes)
    else:
        values = hashes.dropna().tolist() if isinstance(hashes, pd.Series) else list(hashes)
        arr = pa.array(values, type=_STRING)
    arr = arr.drop_null()
    if not len(arr):
        return Checksum(0, 0)
    prefixes = _as_array(pc.utf8_slice_codeunits(pc.utf8_lower(arr), 0, CHECKSUM_PREFIX_HEX))
    width = CHECKSUM_PREFIX_HEX
    if not pc.all(pc.equal(pc.utf8_length(prefixes), width)).as_py():
        raise ValueError("content hashes must be at least 8 hex digits")
    digits = _HEX_VALUE[np.frombuffer(_string_data(prefixes), dtype=np.uint8)].reshape(-1, width)
    if (digits < 0).any():
        raise ValueError("content hashes must be hex strings")
    weights = 16 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return Checksum(len(arr), int((digits @ weights).sum()))


# --- rendering per column kind ------------------------------------------------------------


def _render_column(column: sa.Column[Any], series: pd.Series) -> pa.Array:
    kind = column_kind(column)
    label = f"{column.table.name}.{column.name}"
    if kind == "text":
        return _render_text(series, label)
    if kind == "integer":
        return _render_integer(series, label)
    if kind == "datetime":
        return _render_datetime(series, label)
    col_type: Any = column.type
    if isinstance(col_type, sa.types.TypeDecorator):
        col_type = col_type.impl_instance
    scale = col_type.scale if col_type.scale is not None else 0
    precision = col_type.precision if col_type.precision is not None else 38
    return _render_numeric(series, scale, precision, label)


def _render_text(series: pd.Series, label: str) -> pa.Array:
    try:
        arr = _as_array(pa.array(series, type=_STRING, from_pandas=True))
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        # Mixed object column (ints among strings...): fall back to str() per value.
        arr = pa.array([None if _is_null(v) else str(v) for v in series.tolist()], type=_STRING)
    if len(arr) and pc.any(pc.match_substring(arr, "\x00")).as_py():
        raise ValueError(f"{label}: text contains a NUL character, which PostgreSQL refuses")
    return arr


def _render_integer(series: pd.Series, label: str) -> pa.Array:
    if ptypes.is_bool_dtype(series.dtype):
        raise ValueError(f"{label}: boolean values in an integer column")
    if ptypes.is_integer_dtype(series.dtype):
        ints = pa.array(series, type=pa.int64(), from_pandas=True)
    elif ptypes.is_float_dtype(series.dtype):
        floats = series.astype("Float64")
        fractional = floats.notna() & (floats % 1 != 0).fillna(False)
        if fractional.any():
            raise ValueError(f"{label}: non-integral value {floats[fractional].iloc[0]!r}")
        ints = pa.array(floats.astype("Int64"), type=pa.int64(), from_pandas=True)
    else:
        ints = pa.array([_to_int(v, label) for v in series.tolist()], type=pa.int64())
    if len(ints) and ints.null_count < len(ints):
        low, high = pc.min(ints).as_py(), pc.max(ints).as_py()
        if low < _INT32_MIN or high > _INT32_MAX:
            raise ValueError(f"{label}: value outside the 32-bit integer range")
    return _as_array(pc.cast(ints, _STRING))


def _to_int(value: Any, label: str) -> int | None:
    if _is_null(value):
        return None
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"{label}: boolean value {value!r} in an integer column")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError(f"{label}: {value!r} is not an integer") from exc
    if not number.is_finite() or number != number.to_integral_value():
        raise ValueError(f"{label}: {value!r} is not an integer")
    return int(number)


def _render_numeric(series: pd.Series, scale: int, precision: int, label: str) -> pa.Array:
    limit = 10 ** (precision - scale)
    if ptypes.is_bool_dtype(series.dtype):
        raise ValueError(f"{label}: boolean values in a numeric column")
    if ptypes.is_integer_dtype(series.dtype) and limit * 10**scale < 2**63:
        ints = series.to_numpy(dtype="float64", na_value=np.nan)
        valid = ~np.isnan(ints)
        values = series.to_numpy(dtype="int64", na_value=0)
        _check_limit(np.abs(values[valid]).max(initial=0), limit, label)
        return scaled_to_text(values * 10**scale, scale, valid)
    if ptypes.is_float_dtype(series.dtype):
        return _render_float(series.to_numpy(dtype="float64", na_value=np.nan), scale, limit, label)
    if ptypes.is_string_dtype(series.dtype) and not ptypes.is_object_dtype(series.dtype):
        text = pa.array(series, type=_STRING, from_pandas=True)
        try:
            return _as_array(
                _arrow_decimal_text(text, pc.cast(text, pa.float64()), scale, limit, label)
            )
        except pa.ArrowInvalid:
            pass  # unusual spelling ("  1,5", "NaN"...): let the exact path judge it
    quantum = Decimal(1).scaleb(-scale)
    return pa.array(
        [_decimal_text(v, quantum, limit, label) for v in series.tolist()], type=_STRING
    )


def _render_float(values: np.ndarray, scale: int, limit: int, label: str) -> pa.Array:
    """Floats at ``scale``, as if their shortest repr were rounded half away from zero.

    Fast path in numpy: ``|x| * 10**scale`` rounded. It is exact unless the scaled value is
    within float error of a rounding midpoint (``...5`` beyond the scale, e.g. 1.00005) or
    too large for exact float integers; those few go through ``Decimal(repr(x))``.
    """
    valid = ~np.isnan(values)
    if np.isinf(values[valid]).any():
        raise ValueError(f"{label}: infinite value in a numeric column")
    magnitude = np.abs(np.where(valid, values, 0.0))
    _check_limit(magnitude.max(initial=0.0), limit, label)
    scaled = magnitude * 10.0**scale
    floor = np.floor(scaled)
    frac = scaled - floor
    # Float error of x * 10**scale is ~4e-16 relative; the margin below is far wider.
    near_midpoint = np.abs(frac - 0.5) < 1e-6 * np.maximum(1.0, scaled * 1e-9)
    exact_needed = valid & (near_midpoint | (scaled >= 2.0**52))
    rounded = np.where(frac >= 0.5, floor + 1.0, floor)
    ints = np.where(valid & ~exact_needed, np.copysign(rounded, values), 0.0).astype(np.int64)
    text = scaled_to_text(ints, scale, valid)
    if exact_needed.any():
        quantum = Decimal(1).scaleb(-scale)
        positions = np.flatnonzero(exact_needed)
        exact = [_decimal_text(float(values[i]), quantum, limit, label) for i in positions]
        text = pc.replace_with_mask(text, pa.array(exact_needed), pa.array(exact, type=_STRING))
    return _as_array(text)


def scaled_to_text(scaled: np.ndarray, scale: int, valid: np.ndarray | None = None) -> pa.Array:
    """Integers holding ``value * 10**scale`` -> exact decimal text (``-1.2500``).

    The int64 values become the unscaled words of an Arrow ``decimal128(38, scale)`` array
    (sign-extended to 128 bits), which Arrow formats in C++.

    Args:
        scaled: int64 array.
        scale: Digits after the point.
        valid: Optional mask; ``False`` entries become null.
    """
    scaled = np.ascontiguousarray(scaled, dtype=np.int64)
    words = np.empty((len(scaled), 2), dtype=np.int64)
    words[:, 0] = scaled
    words[:, 1] = scaled >> 63
    validity = None
    if valid is not None and not valid.all():
        validity = pa.array(valid, type=pa.bool_()).buffers()[1]
    decimals = pa.Array.from_buffers(
        pa.decimal128(38, scale), len(scaled), [validity, pa.py_buffer(words)]
    )
    return _as_array(pc.cast(decimals, _STRING))


def _check_limit(biggest: float, limit: int, label: str) -> None:
    if biggest >= limit:
        raise ValueError(f"{label}: {biggest} does not fit the column (|value| < {limit})")


def _arrow_decimal_text(
    text: pa.Array, approx: pa.Array, scale: int, limit: int, label: str
) -> pa.Array:
    """Vectorised path: float/int/str -> shortest text -> wide decimal -> rounded text."""
    if len(text) and text.null_count < len(text):
        biggest = pc.max(pc.abs(approx)).as_py()
        # Checked on the float approximation *before* the unsafe cast, which would wrap.
        if biggest is not None and biggest >= limit:
            raise ValueError(f"{label}: {biggest} does not fit the column (|value| < {limit})")
    wide = pc.cast(text, pa.decimal128(38, _WIDE_SCALE), safe=False)
    rounded = pc.round(wide, ndigits=scale, round_mode="half_towards_infinity")
    exact = pc.cast(rounded, pa.decimal128(38, scale))
    if len(exact) and exact.null_count < len(exact):
        biggest_exact = pc.max(pc.abs(exact)).as_py()
        if biggest_exact is not None and biggest_exact >= limit:
            raise ValueError(f"{label}: {biggest_exact} does not fit (|value| < {limit})")
    return pc.cast(exact, _STRING)


def _decimal_text(value: Any, quantum: Decimal, limit: int, label: str) -> str | None:
    if _is_null(value):
        return None
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"{label}: boolean value {value!r} in a numeric column")
    try:
        # str() of a float is its shortest repr, so 0.1 reads as 0.1 on every path.
        number = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError(f"{label}: {value!r} is not a number") from exc
    if not number.is_finite():
        raise ValueError(f"{label}: {value!r} is not a finite number")
    rounded = number.quantize(quantum, rounding=ROUND_HALF_UP)
    if abs(rounded) >= limit:
        raise ValueError(f"{label}: {value!r} does not fit the column (|value| < {limit})")
    if rounded.is_zero():
        rounded = abs(rounded)  # no "-0.0000"
    return format(rounded, "f")


def _render_datetime(series: pd.Series, label: str) -> pa.Array:
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        utc = series.dt.tz_convert("UTC")
    elif ptypes.is_datetime64_dtype(series.dtype):
        raise ValueError(f"{label}: naive timestamps; localise them (to UTC) before loading")
    else:
        present = series[series.notna()]
        for value in present.tolist():
            if isinstance(value, datetime):
                naive = value.tzinfo is None or value.utcoffset() is None
            elif isinstance(value, str):
                naive = not _OFFSET_RE.search(value.strip())
            else:
                raise ValueError(f"{label}: {value!r} is not a timestamp")
            if naive:
                raise ValueError(f"{label}: naive timestamp {value!r}; give it a UTC offset")
        try:
            utc = pd.to_datetime(series, utc=True, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{label}: unreadable timestamp ({exc})") from exc
    wall = utc.dt.tz_localize(None).dt.floor("us").astype("datetime64[us]")
    return _as_array(pc.cast(pa.array(wall, from_pandas=True), _STRING))


def _escape_copy_text(arr: pa.Array) -> pa.Array:
    if not _COPY_SPECIAL[np.frombuffer(_string_data(arr, allow_nulls=True), np.uint8)].any():
        return arr  # the usual case: one cheap scan instead of four replace passes
    for raw, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        arr = pc.replace_substring(arr, raw, escaped)
    return arr


def _md5_hex(lines: pa.Array) -> pa.Array:
    # Hash slices of the lines' one data buffer and hex-encode all digests at once into a
    # fixed-width string array: no Python bytes or str object per row.
    lines = _as_array(lines)
    data = memoryview(_string_data(lines, allow_nulls=True))
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset :]
    bounds = (offsets[: len(lines) + 1] - offsets[0]).tolist()
    md5 = _md5
    digests = b"".join([md5(data[a:b]).digest() for a, b in itertools.pairwise(bounds)])
    hexed = binascii.hexlify(digests)
    widths = np.arange(0, len(hexed) + 1, 32, dtype=np.int64)
    return pa.Array.from_buffers(
        _STRING, len(lines), [None, pa.py_buffer(widths), pa.py_buffer(hexed)]
    )


# --- helpers -------------------------------------------------------------------------------


def _is_null(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return bool(np.isnan(value))
    if isinstance(value, Decimal):
        return value.is_nan()
    return False


def _as_array(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if arr.type != _STRING:
        arr = arr.cast(_STRING)
    return arr


def _string_data(arr: pa.Array, *, allow_nulls: bool = False) -> pa.Buffer:
    """The concatenated UTF-8 bytes of a ``large_string`` array's values (zero copy).

    With ``allow_nulls`` the bytes of the non-null values are returned (nulls have none).
    """
    arr = _as_array(arr)
    if arr.null_count and not allow_nulls:
        raise ValueError("cannot take the data of an array with nulls")
    data = arr.buffers()[2]
    if data is None or not len(arr):
        return pa.py_buffer(b"")
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)
    start, end = int(offsets[arr.offset]), int(offsets[arr.offset + len(arr)])
    return data.slice(start, end - start)
