"""Declarative column mappings from Finale's raw frames to warehouse frames.

A mapping is a dict ``{target_column: rule}``. A rule names the raw field and how to parse
it (``Text``, ``Number``, ``Timestamp``) or derives a column from the whole raw frame
(``Derived``, for nested lists such as ``supplierList``). ``apply_mapping`` runs the rules
column by column (vectorised) and reports, per raw row, the values it could not parse.

A ``Derived`` rule is defined by its per-value function; it may also carry a ``columnar``
version of it, which computes the same values for a whole chunk at once (from a
``ListColumn``: the raw lists, flattened on demand) and leaves the rows it does not handle
to the per-value function. Rules over the same field share one ``ListColumn`` within an
``apply_mapping`` call, so work they have in common is done once (``reorder_point`` and
``reorder_quantity`` both read ``reorderGuidelineList``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from itertools import chain, compress, repeat
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline import coerce


@dataclass(frozen=True)
class TransformContext:
    """What a transform needs besides the raw rows.

    Attributes:
        tz: the Finale account time zone (FINALE_TIMEZONE) for zone-less timestamps.
        facility_ids: facility URL -> facilityId, from the warehouse.
        party_ids: party URL -> partyId, from the warehouse.
        product_skus: product URL -> SKU (productId), from the warehouse's product
            catalogue; loaded only for entities that resolve products by URL.
    """

    tz: str = "UTC"
    facility_ids: Mapping[str, str] = field(default_factory=dict)
    party_ids: Mapping[str, str] = field(default_factory=dict)
    product_skus: Mapping[str, str] = field(default_factory=dict)

    def facility_id(self, url: object) -> str | None:
        """Resolve a facility URL taken from the data to its facilityId."""
        return _resolve(url, self.facility_ids)

    def party_id(self, url: object) -> str | None:
        """Resolve a party URL taken from the data to its partyId."""
        return _resolve(url, self.party_ids)

    def product_sku(self, url: object) -> str:
        """The SKU of the product at ``url``, from the catalogue; never built from the URL.

        Raises:
            BadValue: the URL is missing, not a string, or not in the catalogue.
        """
        if url is None or url == "":
            raise BadValue("is missing: the entry names no product")
        if not isinstance(url, str):
            raise BadValue(f"is not a URL (a {coerce.json_type(url)})")
        sku = self.product_skus.get(url)
        if sku is None:
            raise BadValue(
                "is not in the product catalogue (sync products first; a SKU is never "
                "guessed from a URL)"
            )
        return sku


class BadValue(ValueError):
    """A raw value a rule cannot take; the message says why ("is not a URL (a list)").

    Raised by ``Derived`` functions; ``apply_mapping`` turns it into a quarantine reason
    for that row, so one odd value never fails the chunk.
    """


def _resolve(url: object, known: Mapping[str, str]) -> str | None:
    if url is None or url == "":
        return None
    if not isinstance(url, str):
        raise BadValue(f"is not a URL (a {coerce.json_type(url)})")
    if url in known:
        return known[url]
    # Not synced yet (e.g. created since the last facilities run): Finale's facility and
    # party URLs end in their id, unlike product URLs, which are never parsed.
    return url.rstrip("/").rsplit("/", 1)[-1]


class _Flat(NamedTuple):
    items: list[dict[str, Any]]
    rows: np.ndarray
    plain: bool  # every item is a plain dict (not a subclass)


class ListColumn:
    """A raw column of nested lists (``supplierList``), for columnar rules to share.

    ``values`` are the raw values, one per row. ``items`` (flattened on first use) holds
    the dicts of every row's list, row after row and in list order, and ``rows`` the row
    position each came from; values that are not lists and list entries that are not dicts
    are left out, as the per-value helpers skip them. Field values and other per-item
    arrays are computed once (``field``, ``memo``) and shared by the rules that need them.
    """

    def __init__(self, column: pd.Series) -> None:
        """Hold ``column`` (any values; lists of dicts are the ones that count)."""
        self.values: list[Any] = column.tolist()
        self.n_rows = len(self.values)
        self._memo: dict[Hashable, Any] = {}

    @property
    def items(self) -> list[dict[str, Any]]:
        """The dicts of all rows' lists, in order."""
        return self._flat.items

    @property
    def rows(self) -> np.ndarray:
        """The row position of each of ``items``."""
        return self._flat.rows

    @cached_property
    def _flat(self) -> _Flat:
        # C-level passes (map, chain) rather than a Python loop over the rows: ~5x faster.
        values = self.values
        if not all(map(isinstance, values, repeat(list))):
            values = [v if isinstance(v, list) else () for v in values]
        lengths = np.fromiter(map(len, values), np.intp, self.n_rows)
        items = list(chain.from_iterable(values))
        rows = np.repeat(np.arange(self.n_rows), lengths)
        types = set(map(type, items))
        if types - {dict}:
            keep = [isinstance(v, dict) for v in items]
            items = list(compress(items, keep))
            rows = rows[np.array(keep, dtype=bool)]
        return _Flat(items, rows, all(t is dict for t in types if issubclass(t, dict)))

    def field(self, name: str) -> list[Any]:
        """``item.get(name)`` for every item."""

        def get() -> list[Any]:
            if self._flat.plain:  # the C-level dict.get; all dicts from JSON are plain
                return list(map(dict.get, self.items, repeat(name)))
            return [item.get(name) for item in self.items]  # a subclass's own get()

        return self.memo(("field", name), get)

    def memo(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()``, once per key for this column (for values several rules share)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def mask(self, flags: Iterable[Any]) -> np.ndarray:
        """A boolean array over the items from one flag per item."""
        return np.fromiter(flags, bool, len(self.items))

    def any(self, mask: np.ndarray) -> np.ndarray:
        """Per row: whether any of its items is in ``mask``."""
        out = np.zeros(self.n_rows, dtype=bool)
        out[self.rows[mask]] = True
        return out


#: ``problems`` of a rule: row label -> what is wrong with its value ("is not a number").
Problems = dict[Any, str]


def _problems(bad: pd.Series, text: str | Callable[[Any], str], values: pd.Series) -> Problems:
    """The rows flagged in ``bad``, each with its problem text (fixed, or from the value)."""
    if not bad.any():
        return {}
    labels = bad.index[bad.to_numpy(dtype=bool)]
    if isinstance(text, str):
        return dict.fromkeys(labels, text)
    return {label: text(values.at[label]) for label in labels}


def _text_reason(value: Any) -> str:
    return coerce.text_problem(value) or "is not text"


@dataclass(frozen=True)
class Text:
    """A text column copied from raw field ``source`` (stripped; integers as their digits)."""

    source: str

    def apply(self, raw: pd.DataFrame, ctx: TransformContext) -> tuple[pd.Series, Problems]:
        """Return the column and the rows whose value is not storable text."""
        column = _field(raw, self.source)
        values, bad = coerce.to_text(column)
        return values, _problems(bad, _text_reason, column)


@dataclass(frozen=True)
class Number:
    """A numeric column from raw field ``source``; display strings are accepted.

    ``integer=True`` makes it a nullable integer column (line numbers, counts).
    """

    source: str
    integer: bool = False

    def apply(self, raw: pd.DataFrame, ctx: TransformContext) -> tuple[pd.Series, Problems]:
        """Return the numeric column and the rows whose value is not a finite number."""
        numbers, bad = coerce.to_number(_field(raw, self.source))
        if self.integer:
            numbers = numbers.where(~bad).round().astype("Int64")
        return numbers, _problems(bad, "is not a finite number", numbers)


@dataclass(frozen=True)
class Timestamp:
    """A UTC timestamp column; zone-less values are in the account zone (``ctx.tz``)."""

    source: str

    def apply(self, raw: pd.DataFrame, ctx: TransformContext) -> tuple[pd.Series, Problems]:
        """Return the UTC column and the rows whose value is not a timestamp."""
        values, bad = coerce.to_timestamp(_field(raw, self.source), ctx.tz)
        low, high = coerce.TIMESTAMP_YEARS
        return values, _problems(
            bad, f"is not an ISO 8601 timestamp between the years {low} and {high}", values
        )


#: ``columnar(list_column, ctx) -> (values, todo)``: see ``Derived``.
Columnar = Callable[[ListColumn, TransformContext], tuple[Any, "np.ndarray | None"]]


@dataclass(frozen=True)
class Derived:
    """A column computed per raw row by ``func(row_value, ctx)`` from raw field ``source``.

    Used for nested lists (``supplierList``, ``contactMechList``) and URL lookups, where a
    per-value Python function is the clear way to say it. ``kind`` is "text" or "number".
    ``func`` raises ``BadValue`` for a value it cannot take; that row is then reported.

    ``columnar``, optional, computes the same column for a whole chunk (from the field's
    ``ListColumn``; see ``pipeline.entities``), 2-3x faster than calling ``func`` per row.
    It returns ``(values, todo)``: ``values`` holds ``func``'s result for each row, as a
    list or as an array the parsers read the same way (a float64 array for numbers, NaN
    for None, ints as floats; a string array from ``text_each_once``), and ``todo`` a mask
    of the rows it leaves to ``func`` (unusual values, and every value ``func`` would
    refuse), or None. ``func`` stays the definition: ``columnar`` must agree with it on
    every other row.
    """

    source: str
    func: Callable[[Any, TransformContext], Any]
    kind: str = "text"
    columnar: Columnar | None = None

    def apply(
        self,
        raw: pd.DataFrame,
        ctx: TransformContext,
        lists: dict[str, ListColumn] | None = None,
    ) -> tuple[pd.Series, Problems]:
        """Return the derived column, parsed as ``kind``, and the rows it could not derive.

        ``lists`` (source field -> ``ListColumn``) shares work between the rules of one
        mapping; ``apply_mapping`` passes one per call.
        """
        column = _field(raw, self.source)
        refused: Problems = {}
        if self.columnar is None:
            # A plain loop over the values: Series.map adds ~1 us per value on top of the
            # function.
            values: Any = [self._call(v, ctx, label, refused) for label, v in column.items()]
        else:
            if lists is None:
                lists = {}
            if self.source not in lists:
                lists[self.source] = ListColumn(column)
            values, todo = self.columnar(lists[self.source], ctx)
            if todo is not None and todo.any():
                if not isinstance(values, list):
                    values = [None if v != v else v for v in values.tolist()]  # NaN is None
                raw_values = column.to_numpy()
                labels = column.index
                for row in np.flatnonzero(todo).tolist():
                    values[row] = self._call(raw_values[row], ctx, labels[row], refused)
        parsed, problems = self._parse(values, raw.index)
        return parsed, {**problems, **refused}

    def _call(self, value: Any, ctx: TransformContext, label: Any, refused: Problems) -> Any:
        try:
            return self.func(value, ctx)
        except BadValue as exc:
            refused[label] = str(exc)
            return None

    def _parse(self, derived: Any, index: pd.Index) -> tuple[pd.Series, Problems]:
        # A list is inferred like Series.map's result would be (numbers -> float64,
        # strings -> str), so the parsers see the same values; numbers and strings go to
        # them typed (their fast paths), anything else as objects, as map's would. A
        # columnar rule's arrays are typed already.
        try:
            values = pd.Series(derived, index=index)
        except UnicodeEncodeError:  # a lone surrogate: to_text reports it
            values = pd.Series(derived, index=index, dtype=object)
        if self.kind == "number":
            kind = values.dtype
            numeric = pd.api.types.is_numeric_dtype(kind) and not pd.api.types.is_bool_dtype(kind)
            numbers, bad = coerce.to_number(values if numeric else values.astype(object))
            return numbers, _problems(bad, "is not a finite number", numbers)
        if not isinstance(values.dtype, pd.StringDtype):
            values = values.astype(object)
        texts, bad = coerce.to_text(values)
        return texts, _problems(bad, _text_reason, values)


#: What pandas makes of a list of strings and None: "str", held by pyarrow (pandas >= 3).
_TEXT_DTYPE = pd.Series(["", None]).dtype
_ARROW_TEXT = isinstance(_TEXT_DTYPE, pd.StringDtype) and _TEXT_DTYPE.storage == "pyarrow"


def text_each_once(func: Callable[[Any], str | None], values: list[Any]) -> Any:
    """``[func(v) for v in values]``, calling ``func`` once per distinct value.

    Returns a string array like pd.Series would build from that list, without converting
    each row's string again: each distinct result is converted once and repeated by
    position. A plain list when ``func`` returns anything but strings and None (or the
    values are unhashable). ``func`` must give equal results for equal values of the JSON
    types (1 == 1.0 == True share one call), as URL lookups do.
    """
    try:
        distinct = list(set(values))
    except TypeError:  # an unhashable value (a list or dict where a string belongs)
        return [func(v) for v in values]
    results = [func(v) for v in distinct]
    where = {v: i for i, v in enumerate(distinct)}
    positions = np.fromiter(map(where.__getitem__, values), np.intp, len(values))
    if not _ARROW_TEXT or not all(r is None or type(r) is str for r in results):
        return [results[i] for i in positions.tolist()]
    texts = pa.array(results, type=pa.large_string()).take(positions)
    return pd.array(texts, dtype=_TEXT_DTYPE)


Rule = Text | Number | Timestamp | Derived


def _field(raw: pd.DataFrame, name: str) -> pd.Series:
    if name in raw.columns:
        return raw[name]
    # A field that is absent from every record of a page is absent from the column-major
    # body too; that is "all missing", not a contract break (required fields are checked
    # by the entity's validation).
    return pd.Series(None, index=raw.index, dtype=object)


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for reasons an operator reads."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def apply_mapping(
    raw: pd.DataFrame, mapping: Mapping[str, Rule], ctx: TransformContext
) -> tuple[pd.DataFrame, dict[Any, list[str]]]:
    """Build the warehouse frame for ``raw`` and list the values that could not be taken.

    Args:
        raw: the raw Finale rows (one column per field).
        mapping: target column -> rule.
        ctx: time zone and URL lookups.

    Returns:
        (frame with exactly the mapping's columns and ``raw``'s index,
        {raw index -> ["cost (field cost) is not a finite number (got '12x')", ...]}).
        Each reason is "<rule> (got <value>)", so reports can group reasons by rule.
    """
    columns: dict[str, pd.Series] = {}
    problems: dict[Any, list[str]] = {}
    lists: dict[str, ListColumn] = {}  # flattened once per list field, for Derived rules
    for target, rule in mapping.items():
        if isinstance(rule, Derived):
            values, bad = rule.apply(raw, ctx, lists)
        else:
            values, bad = rule.apply(raw, ctx)
        columns[target] = values
        if bad:
            source = _field(raw, rule.source)
            for idx, what in bad.items():
                problems.setdefault(idx, []).append(
                    f"{target} (field {rule.source}) {what} (got {shown(source.at[idx])})"
                )
    return pd.DataFrame(columns, index=raw.index), problems


def list_problems(raw: pd.DataFrame, lists: Mapping[str, type]) -> dict[Any, list[str]]:
    """Rows whose nested list fields are not lists of the expected item type.

    ``lists`` maps a raw field to its item type (``dict`` for lists of objects, ``str`` for
    lists of ids). A null field is fine (no items). Rules that read these fields skip
    what they cannot use; this says so, so such a record is quarantined, never loaded with
    the odd part silently ignored.
    """
    problems: dict[Any, list[str]] = {}
    for name, item_type in lists.items():
        if name not in raw.columns:
            continue
        values = raw[name].tolist()
        # The usual case in C-level passes: only lists (or nulls) of the right items.
        if set(map(type, values)) <= {list, type(None)} and set(
            map(type, chain.from_iterable(filter(None, values)))
        ) <= {item_type}:
            continue
        expected = "an object" if item_type is dict else "text"
        for label, value in zip(raw.index, values, strict=True):
            if value is None:
                continue
            if not isinstance(value, list):
                what = f"is not a list (a {coerce.json_type(value)})"
            else:
                odd = [i for i, item in enumerate(value, 1) if not isinstance(item, item_type)]
                if not odd:
                    continue
                what = f"has an entry that is not {expected} (entry {odd[0]})"
            problems.setdefault(label, []).append(f"{name} {what} (got {shown(value)})")
    return problems
