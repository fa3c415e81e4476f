"""Column-major tables: the sandbox's in-memory storage and its wire format.

A :class:`Table` is a set of equally long columns plus an ``alive`` mask (deleted rows stay in
place so row numbers, and therefore creation order, never move). Each column kind keeps its
values in the cheapest numpy form and turns a selection of rows into plain Python values only
when a page is rendered:

- :class:`ObjectColumn`: arbitrary Python values (ids, URLs, small lists).
- :class:`CategoricalColumn`: small integer codes into a list of distinct values.
- :class:`FloatColumn`: float64 (NaN = null) with a patch table for dirty non-numbers.
- :class:`DateColumn`: int64 seconds (see :mod:`sandbox.timefmt`).
- :class:`NestedColumn`: a list of objects per row, stored as a child table in CSR form
  (``starts``/``counts``), so millions of supplier or order lines cost a few arrays, not
  millions of dicts. Rows replaced by a write are kept as Python lists in ``overrides``.
- :class:`ComputedColumn`: derived on the fly from other columns (action URLs, references).
- :class:`NullColumn`: a field only injected records have (null everywhere else).

Every column also has a *raw overlay* (:meth:`Column.inject`): rows appended through the
control API's ``records`` operation keep any JSON value in any field, exactly as given, and
filters compare those values with Python semantics (a value of another type never matches).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from sandbox import timefmt


class FilterError(ValueError):
    """A filter that the server rejects with HTTP 400; the message goes to the client."""


def _comparable(value: Any, bound: Any) -> bool:
    # Finale compares like with like; a number is never inside a string range and vice versa.
    if isinstance(bound, str):
        return isinstance(value, str)
    if isinstance(bound, bool) or isinstance(value, bool):
        return False
    return isinstance(value, int | float) and isinstance(bound, int | float)


def in_range(value: Any, low: Any, high: Any) -> bool:
    """True when ``low <= value <= high`` (a ``None`` bound is open); null never matches."""
    if value is None:
        return False
    if low is not None and not (_comparable(value, low) and value >= low):
        return False
    return high is None or (_comparable(value, high) and value <= high)


def hashable(value: Any) -> bool:
    """Whether ``value`` can be a dict key (an injected record may hold lists or objects)."""
    try:
        hash(value)
    except TypeError:
        return False
    return True


def object_array(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """A 1-D object array of ``values``; never broadcasts (a list of equally long lists stays
    a 1-D array of lists, and a mix of strings and lists does not fail)."""
    return np.fromiter(values, dtype=object, count=len(values))


_NO_ROWS = np.zeros(0, dtype=np.int64)
_MISSING = object()


class Column:
    """One field of a table. Subclasses store values column-wise.

    Subclasses implement ``_take``/``_get``/``_set``/``_match``; the public methods add the
    *raw overlay*: rows appended by :meth:`inject` (the control API's hostile records) keep
    their values exactly as given (any JSON value, whatever the column's type) in
    ``_raw``, and the column only holds a null placeholder for them. Writing a row with
    :meth:`set` replaces its raw value with a stored one.
    """

    filterable: bool = False
    _raw: dict[int, Any] | None = None
    _raw_rows: np.ndarray = _NO_ROWS

    def __len__(self) -> int:
        raise NotImplementedError

    # -- public, overlay-aware -------------------------------------------------------------

    def take(self, idx: np.ndarray) -> list[Any]:
        """Python values of rows ``idx`` (an int array), in that order."""
        raw = self._raw
        if not raw:
            return self._take(idx)
        hit = np.isin(idx, self._raw_rows)
        if not hit.any():
            return self._take(idx)
        out: list[Any] = [None] * len(idx)
        plain = np.flatnonzero(~hit)
        if len(plain):
            # Never ask the column itself for overlay rows (a computed column cannot answer).
            for pos, value in zip(plain.tolist(), self._take(idx[plain]), strict=True):
                out[pos] = value
        for pos in np.flatnonzero(hit).tolist():
            out[pos] = raw[int(idx[pos])]
        return out

    def get(self, row: int) -> Any:
        """The Python value of one row."""
        raw = self._raw
        if raw and row in raw:
            return raw[row]
        return self._get(row)

    def set(self, row: int, value: Any) -> None:
        """Replace the value of one row."""
        self._set(row, value)
        raw = self._raw
        if raw and raw.pop(row, _MISSING) is not _MISSING:
            self._raw_rows = np.array(sorted(raw), dtype=np.int64)

    def extend(self, values: Sequence[Any]) -> None:
        """Append values for newly created rows."""
        raise TypeError(f"{type(self).__name__} cannot grow")

    def inject(self, start: int, values: Sequence[Any]) -> None:
        """Append rows ``start, start + 1, ...`` (``start`` = the table's length) served
        exactly as ``values`` (any JSON values), whatever the column's type."""
        self._extend_nulls(len(values))
        raw = self._raw if self._raw is not None else {}
        for offset, value in enumerate(values):
            raw[start + offset] = value
        self._raw = raw
        self._raw_rows = np.array(sorted(raw), dtype=np.int64)

    def match(self, low: Any, high: Any) -> np.ndarray:
        """Boolean mask of rows inside the closed range ``[low, high]``.

        Overlay rows match when their raw value compares with the bounds (see
        :func:`in_range`); a value of another type simply does not match.
        """
        mask = self._match(low, high)
        raw = self._raw
        if raw:
            mask = np.array(mask, dtype=bool)  # never write into a shared array
            rows = self._raw_rows
            mask[rows] = [self._raw_matches(raw[row], low, high) for row in rows.tolist()]
        return mask

    # -- implemented by subclasses ---------------------------------------------------------

    def _take(self, idx: np.ndarray) -> list[Any]:
        raise NotImplementedError

    def _get(self, row: int) -> Any:
        return self._take(np.array([row], dtype=np.int64))[0]

    def _set(self, row: int, value: Any) -> None:
        raise TypeError(f"{type(self).__name__} is read-only")

    def _extend_nulls(self, count: int) -> None:
        self.extend([None] * count)

    def _match(self, low: Any, high: Any) -> np.ndarray:
        raise FilterError("this field cannot be used in a filter")

    def _raw_matches(self, value: Any, low: Any, high: Any) -> bool:
        return in_range(value, low, high)


class NullColumn(Column):
    """A field that only injected records have: null for every other row (costs no memory).

    Values written with :meth:`set` live in the raw overlay.
    """

    filterable = True

    def __init__(self, length: int) -> None:
        self._length = length

    def __len__(self) -> int:
        return self._length

    def _take(self, idx: np.ndarray) -> list[Any]:
        return [None] * len(idx)

    def set(self, row: int, value: Any) -> None:
        raw = self._raw if self._raw is not None else {}
        raw[row] = value
        self._raw = raw
        self._raw_rows = np.array(sorted(raw), dtype=np.int64)

    def extend(self, values: Sequence[Any]) -> None:
        start = self._length
        self._length += len(values)
        for offset, value in enumerate(values):
            if value is not None:
                self.set(start + offset, value)

    def _extend_nulls(self, count: int) -> None:
        self._length += count

    def _match(self, low: Any, high: Any) -> np.ndarray:
        return np.zeros(self._length, dtype=bool)


class ObjectColumn(Column):
    """Arbitrary Python values in an object array."""

    def __init__(self, values: Sequence[Any] | np.ndarray, *, filterable: bool = True) -> None:
        if isinstance(values, np.ndarray) and values.dtype == object:
            self.values = values
        else:
            self.values = object_array(values)
        self.filterable = filterable

    def __len__(self) -> int:
        return len(self.values)

    def _take(self, idx: np.ndarray) -> list[Any]:
        return self.values[idx].tolist()

    def _get(self, row: int) -> Any:
        return self.values[row]

    def _set(self, row: int, value: Any) -> None:
        self.values[row] = value

    def extend(self, values: Sequence[Any]) -> None:
        self.values = np.concatenate([self.values, object_array(values)])

    def _match(self, low: Any, high: Any) -> np.ndarray:
        if not self.filterable:
            raise FilterError("this field cannot be used in a filter")
        if low is not None and low == high:
            # Elementwise == on an object array is vectorised and safe with None.
            return np.asarray(self.values == low, dtype=bool)
        return np.fromiter(
            (in_range(v, low, high) for v in self.values), dtype=bool, count=len(self.values)
        )


class CategoricalColumn(Column):
    """Integer codes into ``categories``; ideal for statuses, names built from word lists and
    references to a small set of URLs."""

    filterable = True

    def __init__(self, codes: np.ndarray, categories: Sequence[Any]) -> None:
        self.codes = np.asarray(codes, dtype=np.int32)
        self.categories: list[Any] = list(categories)
        self._lookup: np.ndarray | None = None
        self._index: dict[Any, int] | None = None

    def __len__(self) -> int:
        return len(self.codes)

    def _code(self, value: Any) -> int:
        if self._index is None:
            self._index = {}
            for code, cat in enumerate(self.categories):
                self._index.setdefault(cat, code)
        known = self._index.get(value)
        if known is not None:
            return known
        code = len(self.categories)
        self.categories.append(value)
        self._index[value] = code
        self._lookup = None  # rebuilt on the next read, not once per new value
        return code

    def _values(self) -> np.ndarray:
        if self._lookup is None or len(self._lookup) != len(self.categories):
            self._lookup = object_array(self.categories)
        return self._lookup

    def _take(self, idx: np.ndarray) -> list[Any]:
        return self._values()[self.codes[idx]].tolist()

    def _get(self, row: int) -> Any:
        return self.categories[int(self.codes[row])]

    def _set(self, row: int, value: Any) -> None:
        self.codes[row] = self._code(value)

    def extend(self, values: Sequence[Any]) -> None:
        extra = np.array([self._code(v) for v in values], dtype=np.int32)
        self.codes = np.concatenate([self.codes, extra])

    def _match(self, low: Any, high: Any) -> np.ndarray:
        ok = np.array([in_range(c, low, high) for c in self.categories], dtype=bool)
        return ok[self.codes]


class FloatColumn(Column):
    """float64 values, NaN meaning null. ``integral`` columns render as JSON integers.

    Dirty values that are not numbers (Finale's ``"--"``) live in ``patches``; they never
    match a numeric filter.
    """

    filterable = True

    def __init__(
        self,
        values: np.ndarray,
        *,
        integral: bool = False,
        patches: dict[int, Any] | None = None,
    ) -> None:
        self.values = np.asarray(values, dtype=np.float64)
        self.integral = integral
        self.patches: dict[int, Any] = dict(patches or {})
        self._patch_rows = np.array(sorted(self.patches), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.values)

    def _take(self, idx: np.ndarray) -> list[Any]:
        v = self.values[idx]
        nan = np.isnan(v)
        has_nan = bool(nan.any())
        if self.integral:
            out: list[Any] = (np.where(nan, 0, v) if has_nan else v).astype(np.int64).tolist()
        else:
            out = v.tolist()
        if has_nan:
            for pos in np.flatnonzero(nan).tolist():
                out[pos] = None
        if self.patches:
            for pos in np.flatnonzero(np.isin(idx, self._patch_rows)).tolist():
                out[pos] = self.patches[int(idx[pos])]
        return out

    def _get(self, row: int) -> Any:
        if row in self.patches:
            return self.patches[row]
        value = float(self.values[row])
        if np.isnan(value):
            return None
        return int(value) if self.integral else value

    def _set(self, row: int, value: Any) -> None:
        if self.patches.pop(row, None) is not None:
            self._patch_rows = np.array(sorted(self.patches), dtype=np.int64)
        if value is None:
            self.values[row] = np.nan
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self.values[row] = float(value)
        else:
            self.values[row] = np.nan
            self.patches[row] = value
            self._patch_rows = np.array(sorted(self.patches), dtype=np.int64)

    def extend(self, values: Sequence[Any]) -> None:
        start = len(self.values)
        self.values = np.concatenate([self.values, np.full(len(values), np.nan)])
        for offset, value in enumerate(values):
            self.set(start + offset, value)

    def _match(self, low: Any, high: Any) -> np.ndarray:
        for bound in (low, high):
            numeric = isinstance(bound, int | float) and not isinstance(bound, bool)
            if bound is not None and not numeric:
                raise FilterError(f"{bound!r} is not a number")
        mask = ~np.isnan(self.values)
        if low is not None:
            mask &= self.values >= low
        if high is not None:
            mask &= self.values <= high
        return mask


class DateColumn(Column):
    """int64 seconds since the epoch (account wall-clock time); ``NULL_DATE`` = null."""

    filterable = True

    def __init__(self, values: np.ndarray) -> None:
        self.values = np.asarray(values, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.values)

    def _take(self, idx: np.ndarray) -> list[Any]:
        return timefmt.format_column(self.values[idx])

    def _get(self, row: int) -> Any:
        return timefmt.format_seconds(int(self.values[row]))

    def seconds(self, row: int) -> int | None:
        """The raw seconds of one row, ``None`` when null."""
        value = int(self.values[row])
        return None if value == timefmt.NULL_DATE else value

    def _set(self, row: int, value: Any) -> None:
        self.values[row] = timefmt.NULL_DATE if value is None else int(value)

    def extend(self, values: Sequence[Any]) -> None:
        extra = np.array(
            [timefmt.NULL_DATE if v is None else int(v) for v in values], dtype=np.int64
        )
        self.values = np.concatenate([self.values, extra])

    def _match(self, low: Any, high: Any) -> np.ndarray:
        # The filter layer has already parsed the bounds into seconds.
        mask = self.values != timefmt.NULL_DATE
        if low is not None:
            mask &= self.values >= low
        if high is not None:
            mask &= self.values <= high
        return mask

    def _raw_matches(self, value: Any, low: Any, high: Any) -> bool:
        # An injected value matches a date range only when it is a zone-less timestamp
        # string (``2025-01-31T08:00:00`` or ``2025-01-31``); anything else never matches.
        if not isinstance(value, str):
            return False
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return False
        if parsed.tzinfo is not None:
            return False
        return in_range(timefmt.to_seconds(parsed), low, high)


class ComputedColumn(Column):
    """A read-only column computed from others when rendered."""

    def __init__(self, length: Callable[[], int], compute: Callable[[np.ndarray], list[Any]]):
        self._length = length
        self._compute = compute

    def __len__(self) -> int:
        return self._length()

    def _take(self, idx: np.ndarray) -> list[Any]:
        return self._compute(idx)

    def extend(self, values: Sequence[Any]) -> None:
        # Derived from other columns, which grow themselves.
        return None


def _row_builder(fields: Sequence[str]) -> Callable[..., dict[str, Any]]:
    # A generated ``lambda _0, _1: {"a": _0, "b": _1}`` builds a dict about 3x faster than
    # ``dict(zip(fields, values))``; this runs once per child row of every rendered page.
    # The field names are the sandbox's own constants, never client input.
    args = ", ".join(f"_{i}" for i in range(len(fields)))
    body = ", ".join(f"{name!r}: _{i}" for i, name in enumerate(fields))
    return eval(f"lambda {args}: {{{body}}}")


class ChildTable:
    """The rows of a nested list, as columns; rows of one parent are contiguous."""

    def __init__(self, columns: dict[str, Column]) -> None:
        self.columns = columns
        self.fields = list(columns)
        self._build = _row_builder(self.fields)

    def rows(self, idx: np.ndarray) -> list[dict[str, Any]]:
        """Child rows ``idx`` as dicts in wire field order."""
        if len(idx) == 0:
            return []
        return list(map(self._build, *(self.columns[f].take(idx) for f in self.fields)))


def ranges_to_index(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenate ``range(s, s + c)`` for every pair, vectorised."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    shift = np.repeat(starts.astype(np.int64) - (ends - counts), counts)
    return np.arange(total, dtype=np.int64) + shift


class NestedColumn(Column):
    """A list of objects per row, in CSR form over a :class:`ChildTable`."""

    def __init__(
        self,
        starts: np.ndarray,
        counts: np.ndarray,
        child: ChildTable,
        overrides: dict[int, list[dict[str, Any]]] | None = None,
    ) -> None:
        self.starts = np.asarray(starts, dtype=np.int64)
        self.counts = np.asarray(counts, dtype=np.int32)
        self.child = child
        self.overrides: dict[int, list[dict[str, Any]]] = dict(overrides or {})
        self._override_rows = np.array(sorted(self.overrides), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.counts)

    def _take(self, idx: np.ndarray) -> list[Any]:
        counts = self.counts[idx].astype(np.int64)
        overridden = np.zeros(0, dtype=np.int64)
        if self.overrides:
            overridden = np.flatnonzero(np.isin(idx, self._override_rows))
            counts[overridden] = 0
        rows = self.child.rows(ranges_to_index(self.starts[idx], counts))
        bounds = np.concatenate([[0], np.cumsum(counts)]).tolist()
        out: list[Any] = [rows[a:b] for a, b in itertools.pairwise(bounds)]
        for pos in overridden.tolist():
            out[pos] = [dict(item) for item in self.overrides[int(idx[pos])]]
        return out

    def _set(self, row: int, value: Any) -> None:
        self.overrides[row] = [dict(item) for item in (value or [])]
        self._override_rows = np.array(sorted(self.overrides), dtype=np.int64)

    def _extend_nulls(self, count: int) -> None:
        # Placeholder rows with no children (overlay rows never reach the child table).
        self.starts = np.concatenate([self.starts, np.zeros(count, dtype=np.int64)])
        self.counts = np.concatenate([self.counts, np.zeros(count, dtype=np.int32)])

    def extend(self, values: Sequence[Any]) -> None:
        start = len(self.counts)
        self.starts = np.concatenate([self.starts, np.zeros(len(values), dtype=np.int64)])
        self.counts = np.concatenate([self.counts, np.zeros(len(values), dtype=np.int32)])
        for offset, value in enumerate(values):
            self.set(start + offset, value)


class Table:
    """A collection: named columns of equal length, an alive mask, and lookups by id/URL."""

    def __init__(
        self,
        name: str,
        columns: dict[str, Column],
        *,
        key_field: str | None,
        url_field: str | None,
    ) -> None:
        self.name = name
        self.columns = columns
        self.fields = list(columns)
        self.key_field = key_field
        self.url_field = url_field
        lengths = {f: len(c) for f, c in columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"{name}: columns differ in length: {lengths}")
        self.alive = np.ones(next(iter(lengths.values())), dtype=bool)
        self._url_index: dict[str, int] | None = None
        self._key_index: dict[Any, int] | None = None

    def __len__(self) -> int:
        return len(self.alive)

    def alive_count(self) -> int:
        """Rows not deleted."""
        return int(self.alive.sum())

    def take(self, idx: np.ndarray, fields: Sequence[str] | None = None) -> dict[str, list[Any]]:
        """The column-major body for rows ``idx``."""
        return {f: self.columns[f].take(idx) for f in (fields or self.fields)}

    def numbers(self, field: str) -> np.ndarray:
        """The float64 array behind a :class:`FloatColumn` (NaN = null or dirty)."""
        column = self.columns[field]
        if not isinstance(column, FloatColumn):
            raise TypeError(f"{self.name}.{field} is not a numeric column")
        return column.values

    def row(self, row: int) -> dict[str, Any]:
        """One row as an ordinary object (the single-entity wire form)."""
        idx = np.array([row], dtype=np.int64)
        return {f: c.take(idx)[0] for f, c in self.columns.items()}

    def url_index(self) -> dict[str, int]:
        """URL -> row of alive rows, built on first use (it costs a dict entry per row)."""
        if self._url_index is None:
            assert self.url_field is not None
            self._url_index = self._index(self.url_field)
        return self._url_index

    def key_index(self) -> dict[Any, int]:
        """Key (e.g. ``orderId``) -> row of alive rows, built on first use."""
        if self._key_index is None:
            assert self.key_field is not None
            self._key_index = self._index(self.key_field)
        return self._key_index

    def _index(self, field: str) -> dict[Any, int]:
        rows = np.flatnonzero(self.alive)
        keys = self.columns[field].take(rows)
        try:
            return dict(zip(keys, rows.tolist(), strict=True))
        except TypeError:
            # An injected record holds an unhashable key (a list, an object): it cannot be
            # looked up by key, but every other record still can.
            return {key: row for key, row in zip(keys, rows.tolist(), strict=True) if hashable(key)}

    def append(self, values: dict[str, Any]) -> int:
        """Add a row (missing fields are null) and return its row number."""
        row = len(self.alive)
        for name, column in self.columns.items():
            column.extend([values.get(name)])
        self.alive = np.append(self.alive, True)
        if self._url_index is not None and self.url_field:
            self._url_index[self.columns[self.url_field].get(row)] = row
        if self._key_index is not None and self.key_field:
            self._key_index[self.columns[self.key_field].get(row)] = row
        return row

    def inject(self, records: Sequence[dict[str, Any]]) -> range:
        """Append ``records`` exactly as given and return their row numbers.

        Any JSON value may sit in any field: each column keeps it in its raw overlay (see
        :class:`Column`). A missing key is null; a key the collection does not have becomes
        a new field (a :class:`NullColumn`), null for every other row.
        """
        start = len(self.alive)
        for record in records:
            for field in record:
                if field not in self.columns:
                    self.columns[field] = NullColumn(start)
                    self.fields.append(field)
        for field, column in self.columns.items():
            column.inject(start, [record.get(field) for record in records])
        self.alive = np.concatenate([self.alive, np.ones(len(records), dtype=bool)])
        self._url_index = None
        self._key_index = None
        return range(start, start + len(records))

    def delete(self, row: int) -> None:
        """Mark a row deleted; it disappears from every read."""
        self.alive[row] = False
        self._url_index = None
        self._key_index = None
