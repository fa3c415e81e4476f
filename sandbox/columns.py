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
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
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


def _object_array(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    # fromiter never broadcasts: a list of equally long lists stays a 1-D array of lists.
    return np.fromiter(values, dtype=object, count=len(values))


class Column:
    """One field of a table. Subclasses store values column-wise."""

    filterable: bool = False

    def __len__(self) -> int:
        raise NotImplementedError

    def take(self, idx: np.ndarray) -> list[Any]:
        """Python values of rows ``idx`` (an int array), in that order."""
        raise NotImplementedError

    def get(self, row: int) -> Any:
        """The Python value of one row."""
        return self.take(np.array([row], dtype=np.int64))[0]

    def set(self, row: int, value: Any) -> None:
        """Replace the value of one row."""
        raise TypeError(f"{type(self).__name__} is read-only")

    def extend(self, values: Sequence[Any]) -> None:
        """Append values for newly created rows."""
        raise TypeError(f"{type(self).__name__} cannot grow")

    def match(self, low: Any, high: Any) -> np.ndarray:
        """Boolean mask of rows inside the closed range ``[low, high]``."""
        raise FilterError("this field cannot be used in a filter")


class ObjectColumn(Column):
    """Arbitrary Python values in an object array."""

    def __init__(self, values: Sequence[Any] | np.ndarray, *, filterable: bool = True) -> None:
        if isinstance(values, np.ndarray) and values.dtype == object:
            self.values = values
        else:
            self.values = _object_array(values)
        self.filterable = filterable

    def __len__(self) -> int:
        return len(self.values)

    def take(self, idx: np.ndarray) -> list[Any]:
        return self.values[idx].tolist()

    def get(self, row: int) -> Any:
        return self.values[row]

    def set(self, row: int, value: Any) -> None:
        self.values[row] = value

    def extend(self, values: Sequence[Any]) -> None:
        self.values = np.concatenate([self.values, _object_array(values)])

    def match(self, low: Any, high: Any) -> np.ndarray:
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
            self._lookup = _object_array(self.categories)
        return self._lookup

    def take(self, idx: np.ndarray) -> list[Any]:
        return self._values()[self.codes[idx]].tolist()

    def get(self, row: int) -> Any:
        return self.categories[int(self.codes[row])]

    def set(self, row: int, value: Any) -> None:
        self.codes[row] = self._code(value)

    def extend(self, values: Sequence[Any]) -> None:
        extra = np.array([self._code(v) for v in values], dtype=np.int32)
        self.codes = np.concatenate([self.codes, extra])

    def match(self, low: Any, high: Any) -> np.ndarray:
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

    def take(self, idx: np.ndarray) -> list[Any]:
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

    def get(self, row: int) -> Any:
        if row in self.patches:
            return self.patches[row]
        value = float(self.values[row])
        if np.isnan(value):
            return None
        return int(value) if self.integral else value

    def set(self, row: int, value: Any) -> None:
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

    def match(self, low: Any, high: Any) -> np.ndarray:
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

    def take(self, idx: np.ndarray) -> list[Any]:
        return timefmt.format_column(self.values[idx])

    def get(self, row: int) -> Any:
        return timefmt.format_seconds(int(self.values[row]))

    def seconds(self, row: int) -> int | None:
        """The raw seconds of one row, ``None`` when null."""
        value = int(self.values[row])
        return None if value == timefmt.NULL_DATE else value

    def set(self, row: int, value: Any) -> None:
        self.values[row] = timefmt.NULL_DATE if value is None else int(value)

    def extend(self, values: Sequence[Any]) -> None:
        extra = np.array(
            [timefmt.NULL_DATE if v is None else int(v) for v in values], dtype=np.int64
        )
        self.values = np.concatenate([self.values, extra])

    def match(self, low: Any, high: Any) -> np.ndarray:
        # The filter layer has already parsed the bounds into seconds.
        mask = self.values != timefmt.NULL_DATE
        if low is not None:
            mask &= self.values >= low
        if high is not None:
            mask &= self.values <= high
        return mask


class ComputedColumn(Column):
    """A read-only column computed from others when rendered."""

    def __init__(self, length: Callable[[], int], compute: Callable[[np.ndarray], list[Any]]):
        self._length = length
        self._compute = compute

    def __len__(self) -> int:
        return self._length()

    def take(self, idx: np.ndarray) -> list[Any]:
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

    def take(self, idx: np.ndarray) -> list[Any]:
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

    def set(self, row: int, value: Any) -> None:
        self.overrides[row] = [dict(item) for item in (value or [])]
        self._override_rows = np.array(sorted(self.overrides), dtype=np.int64)

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
            urls = self.columns[self.url_field].take(np.flatnonzero(self.alive))
            self._url_index = dict(zip(urls, np.flatnonzero(self.alive).tolist(), strict=True))
        return self._url_index

    def key_index(self) -> dict[Any, int]:
        """Key (e.g. ``orderId``) -> row of alive rows, built on first use."""
        if self._key_index is None:
            assert self.key_field is not None
            rows = np.flatnonzero(self.alive)
            keys = self.columns[self.key_field].take(rows)
            self._key_index = dict(zip(keys, rows.tolist(), strict=True))
        return self._key_index

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

    def delete(self, row: int) -> None:
        """Mark a row deleted; it disappears from every read."""
        self.alive[row] = False
        self._url_index = None
        self._key_index = None
