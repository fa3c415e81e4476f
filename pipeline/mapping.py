"""Declarative column mappings from Finale's raw frames to warehouse frames.

A mapping is a dict ``{target_column: rule}``. A rule names the raw field and how to parse
it (``Text``, ``Number``, ``Timestamp``) or derives a column from the whole raw frame
(``Derived``, for nested lists such as ``supplierList``). ``apply_mapping`` runs the rules
column by column (vectorised) and reports, per raw row, the values it could not parse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipeline import coerce


@dataclass(frozen=True)
class TransformContext:
    """What a transform needs besides the raw rows.

    Attributes:
        tz: the Finale account time zone (FINALE_TIMEZONE) for zone-less timestamps.
        facility_ids: facility URL -> facilityId, from the warehouse.
        party_ids: party URL -> partyId, from the warehouse.
    """

    tz: str = "UTC"
    facility_ids: Mapping[str, str] = field(default_factory=dict)
    party_ids: Mapping[str, str] = field(default_factory=dict)

    def facility_id(self, url: object) -> str | None:
        """Resolve a facility URL taken from the data to its facilityId."""
        return _resolve(url, self.facility_ids)

    def party_id(self, url: object) -> str | None:
        """Resolve a party URL taken from the data to its partyId."""
        return _resolve(url, self.party_ids)


def _resolve(url: object, known: Mapping[str, str]) -> str | None:
    if not isinstance(url, str) or not url:
        return None
    if url in known:
        return known[url]
    # Not synced yet (e.g. created since the last facilities run): Finale's facility and
    # party URLs end in their id, unlike product URLs, which are never parsed.
    return url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Text:
    """A text column copied from raw field ``source`` (stripped)."""

    source: str

    def apply(self, raw: pd.DataFrame, ctx: TransformContext) -> tuple[pd.Series, pd.Series]:
        """Return the column and an all-False "unparseable" mask."""
        values = coerce.to_text(_field(raw, self.source))
        return values, pd.Series(False, index=raw.index)


@dataclass(frozen=True)
class Number:
    """A numeric column from raw field ``source``; display strings are accepted.

    ``integer=True`` makes it a nullable integer column (line numbers, counts).
    """

    source: str
    integer: bool = False

    def apply(self, raw: pd.DataFrame, ctx: TransformContext) -> tuple[pd.Series, pd.Series]:
        """Return the numeric column and the mask of values that were not numbers."""
        numbers, bad = coerce.to_number(_field(raw, self.source))
        return (numbers.round().astype("Int64") if self.integer else numbers), bad


@dataclass(frozen=True)
class Timestamp:
    """A UTC timestamp column from a zone-less raw field in the account zone."""

    source: str

    def apply(self, raw: pd.DataFrame, ctx: TransformContext) -> tuple[pd.Series, pd.Series]:
        """Return the UTC column and the mask of values that did not parse."""
        return coerce.to_timestamp(_field(raw, self.source), ctx.tz)


@dataclass(frozen=True)
class Derived:
    """A column computed per raw row by ``func(row_value, ctx)`` from raw field ``source``.

    Used for nested lists (``supplierList``, ``contactMechList``) and URL lookups, where a
    per-value Python function is the clear way to say it. ``kind`` is "text" or "number".
    """

    source: str
    func: Callable[[Any, TransformContext], Any]
    kind: str = "text"

    def apply(self, raw: pd.DataFrame, ctx: TransformContext) -> tuple[pd.Series, pd.Series]:
        """Return the derived column, parsed as ``kind``, and its unparseable mask."""
        # A plain loop over the values: Series.map adds ~1 us per value on top of the
        # function. The list is inferred like map's result (numbers -> float64, strings
        # -> str), so the parsers below see the same values; numbers and strings go to
        # them typed (their fast paths), anything else as objects, as map's would.
        func = self.func
        derived = [func(v, ctx) for v in _field(raw, self.source).tolist()]
        values = pd.Series(derived, index=raw.index)
        if self.kind == "number":
            kind = values.dtype
            numeric = pd.api.types.is_numeric_dtype(kind) and not pd.api.types.is_bool_dtype(kind)
            return coerce.to_number(values if numeric else values.astype(object))
        if not isinstance(values.dtype, pd.StringDtype):
            values = values.astype(object)
        return coerce.to_text(values), pd.Series(False, index=raw.index)


Rule = Text | Number | Timestamp | Derived


def _field(raw: pd.DataFrame, name: str) -> pd.Series:
    if name in raw.columns:
        return raw[name]
    # A field that is absent from every record of a page is absent from the column-major
    # body too; that is "all missing", not a contract break (required fields are checked
    # by the entity's validation).
    return pd.Series(None, index=raw.index, dtype=object)


def apply_mapping(
    raw: pd.DataFrame, mapping: Mapping[str, Rule], ctx: TransformContext
) -> tuple[pd.DataFrame, dict[Any, list[str]]]:
    """Build the warehouse frame for ``raw`` and list the values that could not be parsed.

    Args:
        raw: the raw Finale rows (one column per field).
        mapping: target column -> rule.
        ctx: time zone and URL lookups.

    Returns:
        (frame with exactly the mapping's columns and ``raw``'s index,
        {raw index -> ["cost: '12x' is not a number", ...]}).
    """
    columns: dict[str, pd.Series] = {}
    problems: dict[Any, list[str]] = {}
    for target, rule in mapping.items():
        values, bad = rule.apply(raw, ctx)
        columns[target] = values
        if bad.any():
            source = _field(raw, rule.source)
            what = "a timestamp" if isinstance(rule, Timestamp) else "a number"
            for idx in bad[bad].index:
                problems.setdefault(idx, []).append(
                    f"{target}: {source.at[idx]!r} (field {rule.source}) is not {what}"
                )
    return pd.DataFrame(columns, index=raw.index), problems
