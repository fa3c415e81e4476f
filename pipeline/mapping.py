"""Declarative column mappings from Finale's raw frames to warehouse frames.

A mapping is a dict ``{target_column: rule}``. A rule names the raw field and how to parse
it (``Text``, ``Number``, ``Timestamp``), derives it value by value (``Derived``, for URL
lookups and small lists) or computes it from a nested list field for the whole chunk at once
(``Nested``, for the products' ``supplierList`` and ``reorderGuidelineList``, the hot path).
``apply_mapping`` runs the rules column by column and reports, per raw row, the values it
could not take. ``Nested`` rules over the same field share one ``ListColumn`` (the lists,
flattened once) within an ``apply_mapping`` call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from itertools import chain, compress, repeat
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

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
    value_types: set[type]  # of the column's values
    item_types: set[type]  # of the lists' entries, dicts or not


class ListColumn:
    """A raw column of nested lists (``supplierList``), flattened for ``Nested`` rules.

    ``items`` holds the dicts of every row's list, row after row and in list order, and
    ``rows`` the row position each came from (ascending). Values that are not lists and
    list entries that are not dicts are left out: ``list_problems`` reports those.
    """

    def __init__(self, column: pd.Series) -> None:
        """Hold ``column`` (any values; lists of dicts are the ones that count)."""
        self.values: list[Any] = column.tolist()
        self.n_rows = len(self.values)
        self._fields: dict[str, np.ndarray] = {}

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
        value_types = set(map(type, values))
        if value_types - {list}:
            values = [v if isinstance(v, list) else () for v in values]
        lengths = np.fromiter(map(len, values), np.intp, self.n_rows)
        items = list(chain.from_iterable(values))
        rows = np.repeat(np.arange(self.n_rows), lengths)
        types = set(map(type, items))
        if types - {dict}:
            keep = [isinstance(v, dict) for v in items]
            items = list(compress(items, keep))
            rows = rows[np.array(keep, dtype=bool)]
        plain = all(t is dict for t in types if issubclass(t, dict))
        return _Flat(items, rows, plain, value_types, types)

    def well_formed(self, item_type: type) -> bool:
        """Whether every value is a list of ``item_type`` entries, or null."""
        flat = self._flat
        return flat.value_types <= {list, type(None)} and flat.item_types <= {item_type}

    def field(self, name: str) -> np.ndarray:
        """``item.get(name)`` for every item, as an object array (computed once per name)."""
        if name not in self._fields:
            items = self.items
            got: Iterable[Any]
            if self._flat.plain:  # the C-level dict.get; all dicts from JSON are plain
                got = map(dict.get, items, repeat(name))
            else:
                got = (item.get(name) for item in items)  # a subclass's own get()
            self._fields[name] = np.fromiter(got, object, len(items))
        return self._fields[name]

    def per_row(self, mask: np.ndarray) -> np.ndarray:
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


#: The problem of a value that the number parser cannot take.
NOT_A_NUMBER = "is not a finite number"


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
        return numbers, _problems(bad, NOT_A_NUMBER, numbers)


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


@dataclass(frozen=True)
class Derived:
    """A column computed per raw row by ``func(row_value, ctx)`` from raw field ``source``.

    For URL lookups and short nested lists (``contactMechList``), where a per-value Python
    function is the clear way to say it. ``kind`` is "text" or "number". ``func`` raises
    ``BadValue`` for a value it cannot take; that row is then reported.
    """

    source: str
    func: Callable[[Any, TransformContext], Any]
    kind: str = "text"

    def apply(self, raw: pd.DataFrame, ctx: TransformContext) -> tuple[pd.Series, Problems]:
        """Return the derived column, parsed as ``kind``, and the rows it could not derive."""
        refused: Problems = {}
        values = []
        # A plain loop: Series.map adds ~1 us per value on top of the function.
        for label, value in _field(raw, self.source).items():
            try:
                values.append(self.func(value, ctx))
            except BadValue as exc:
                refused[label] = str(exc)
                values.append(None)
        parsed, problems = _parse(values, raw.index, self.kind)
        return parsed, {**problems, **refused}


#: What a ``Nested`` function returns: one value per row (a list, or an array such as a
#: float64 one with NaN for no value) and {row position -> why} for the rows it refuses.
NestedResult = tuple[Any, dict[int, str]]


@dataclass(frozen=True)
class Nested:
    """A column computed from the nested list field ``source`` for a whole chunk at once.

    ``func(lists, ctx)`` receives the field as a ``ListColumn`` and returns a
    ``NestedResult``; the values are then parsed as ``kind`` ("text" or "number"), so a
    value that is not one (junk in a display string) is reported by the parser.
    """

    source: str
    func: Callable[[ListColumn, TransformContext], NestedResult]
    kind: str = "text"

    def apply(
        self,
        raw: pd.DataFrame,
        ctx: TransformContext,
        lists: dict[str, ListColumn] | None = None,
    ) -> tuple[pd.Series, Problems]:
        """Return the column, parsed as ``kind``, and the rows it could not take.

        ``lists`` (source field -> ``ListColumn``) shares the flattened lists between the
        rules of one mapping; ``apply_mapping`` passes one per call.
        """
        if lists is None:
            lists = {}
        if self.source not in lists:
            lists[self.source] = ListColumn(_field(raw, self.source))
        values, refused = self.func(lists[self.source], ctx)
        parsed, problems = _parse(values, raw.index, self.kind)
        labels = raw.index
        return parsed, {**problems, **{labels[row]: why for row, why in refused.items()}}


def _parse(derived: Any, index: pd.Index, kind: str) -> tuple[pd.Series, Problems]:
    """A derived column's values, parsed as ``kind`` ("text" or "number")."""
    # A list as objects (each value as the function gave it); an array keeps its dtype.
    values = pd.Series(derived, index=index, dtype=getattr(derived, "dtype", object))
    if kind == "number":
        numbers, bad = coerce.to_number(values)
        return numbers, _problems(bad, NOT_A_NUMBER, numbers)
    texts, bad = coerce.to_text(values)
    return texts, _problems(bad, _text_reason, values)


def each_distinct(
    func: Callable[[Any], Any], values: np.ndarray
) -> tuple[np.ndarray, dict[int, str]]:
    """``func(v)`` for every value (an object array), called once per distinct string.

    For lookups such as ``ctx.party_id`` over a chunk, where a few distinct URLs repeat.
    Returns the results (an object array) and {position -> message} for the values
    ``func`` refuses with ``BadValue``. Values that are not strings (None, junk) are
    rare and passed to ``func`` one by one.
    """
    codes, distinct, _ = coerce.distinct_strings(values)
    # One result per distinct string, then spread by code; the last slot (code -1) is for
    # the values that are not strings. No tuple per value: thousands of live tuples would
    # wake the garbage collector's full passes over the whole process.
    taken = np.full(len(distinct) + 1, None, dtype=object)
    reasons: dict[int, str] = {}
    for code, value in enumerate(distinct):
        try:
            taken[code] = func(value)
        except BadValue as exc:
            reasons[code] = str(exc)
    out = taken[codes]
    refused: dict[int, str] = {}
    if reasons:
        refusing = np.flatnonzero(np.isin(codes, list(reasons)))
        refused.update(
            zip(refusing.tolist(), map(reasons.__getitem__, codes[refusing]), strict=True)
        )
    for position in np.flatnonzero(codes < 0).tolist():
        try:
            out[position] = func(values[position])
        except BadValue as exc:
            refused[position] = str(exc)
    return out, refused


Rule = Text | Number | Timestamp | Derived | Nested


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
    raw: pd.DataFrame,
    mapping: Mapping[str, Rule],
    ctx: TransformContext,
    lists: dict[str, ListColumn] | None = None,
) -> tuple[pd.DataFrame, dict[Any, list[str]]]:
    """Build the warehouse frame for ``raw`` and list the values that could not be taken.

    Args:
        raw: the raw Finale rows (one column per field).
        mapping: target column -> rule.
        ctx: time zone and URL lookups.
        lists: the list fields flattened so far (field -> ``ListColumn``); the ``Nested``
            rules add theirs, so a caller that passes it can check them without
            flattening them again (``list_problems``).

    Returns:
        (frame with exactly the mapping's columns and ``raw``'s index,
        {raw index -> ["cost (field cost) is not a finite number (got '12x')", ...]}).
        Each reason is "<rule> (got <value>)", so reports can group reasons by rule.
    """
    columns: dict[str, pd.Series] = {}
    problems: dict[Any, list[str]] = {}
    if lists is None:
        lists = {}  # flattened once per list field, for Nested rules
    for target, rule in mapping.items():
        if isinstance(rule, Nested):
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


def list_problems(
    raw: pd.DataFrame,
    lists: Mapping[str, type],
    flattened: Mapping[str, ListColumn] | None = None,
) -> dict[Any, list[str]]:
    """Rows whose nested list fields are not lists of the expected item type.

    ``lists`` maps a raw field to its item type (``dict`` for lists of objects, ``str`` for
    lists of ids). A null field is fine (no items). Rules that read these fields skip
    what they cannot use; this says so, so such a record is quarantined, never loaded with
    the odd part silently ignored. ``flattened`` holds the fields ``apply_mapping`` has
    flattened already (its ``lists``).
    """
    problems: dict[Any, list[str]] = {}
    for name, item_type in lists.items():
        if name not in raw.columns:
            continue
        column = (flattened or {}).get(name) or ListColumn(raw[name])
        if column.well_formed(item_type):  # the usual case, in C-level passes
            continue
        values = column.values
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
