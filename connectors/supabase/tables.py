"""App tables described as data, and the one conversion of their rows into pandas frames.

Both reading paths deliver a page as one list of values per selected column and hand it to
``AppTable.frame``, so the direct PostgreSQL path and the REST path produce identical frames
(same columns, dtypes, values and order) for the same table and ``since``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import pandas as pd

from connectors.supabase.errors import FatalError, InvalidRequestError

# Plain identifiers only: PostgREST takes column names unquoted in ``select``, ``order`` and
# filters, where ``,``, ``.``, ``(`` or ``"`` would change the request's meaning.
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class Kind(StrEnum):
    """How a column's values are typed in the frames (the same on both paths).

    ``text`` (text, varchar, uuid, enums) -> ``string``; ``integer`` -> ``Int64``;
    ``float`` -> ``Float64``; ``decimal`` (numeric) -> object of ``Decimal``;
    ``boolean`` -> ``boolean``; ``timestamp`` -> ``datetime64[us, UTC]`` (a value without a
    zone is read as UTC); ``date`` -> object of ``datetime.date``; ``json`` (json, jsonb,
    arrays) -> object of parsed JSON. Missing values are ``pd.NA``/``NaT``/None.
    """

    TEXT = "text"
    INTEGER = "integer"
    FLOAT = "float"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"
    DATE = "date"
    JSON = "json"


@dataclass(frozen=True)
class AppTable:
    """One app table read incrementally by its cursor column, in ``(cursor, key)`` order.

    Attributes:
        name: the table (or view) name.
        key: a unique, non-null column; the tie-breaker of the keyset paging.
        columns: the columns to select, each with its ``Kind``. The frame's columns are the
            key, the cursor, then the others in this order; the key is ``Kind.TEXT`` and the
            cursor ``Kind.TIMESTAMP`` unless given.
        cursor: the change-tracking column, a ``timestamptz`` (``updated_at``) that must
            not be NULL: rows with a NULL cursor are never read, by either path.
        schema: the schema the table lives in; the REST path needs it exposed by the API.

    Raises:
        InvalidRequestError: a name that is not a plain identifier, or a kind that
            contradicts the cursor's.

    Example:
        >>> AppTable(
        ...     "purchase_order_requests",
        ...     key="id",
        ...     columns={"id": Kind.INTEGER, "status": Kind.TEXT, "updated_at": Kind.TIMESTAMP},
        ... ).column_names
        ('id', 'updated_at', 'status')
    """

    name: str
    key: str
    columns: Mapping[str, Kind] = field(default_factory=dict)
    cursor: str = "updated_at"
    schema: str = "public"

    def __post_init__(self) -> None:
        for what, value in (("table", self.name), ("schema", self.schema)):
            _check_identifier(what, value)
        _check_identifier("key column", self.key)
        _check_identifier("cursor column", self.cursor)
        if self.key == self.cursor:
            raise InvalidRequestError(
                f"{self.name}: the key and the cursor must be two columns, got {self.key!r} twice"
            )
        kinds = {name: Kind(kind) for name, kind in self.columns.items()}
        for name in kinds:
            _check_identifier("column", name)
        if kinds.get(self.cursor, Kind.TIMESTAMP) is not Kind.TIMESTAMP:
            raise InvalidRequestError(
                f"{self.name}: the cursor column {self.cursor!r} must be of Kind.TIMESTAMP"
            )
        ordered = {self.key: kinds.get(self.key, Kind.TEXT), self.cursor: Kind.TIMESTAMP}
        ordered.update((k, v) for k, v in kinds.items() if k not in ordered)
        object.__setattr__(self, "columns", MappingProxyType(ordered))

    def __hash__(self) -> int:
        return hash((self.schema, self.name, self.key, self.cursor, tuple(self.columns.items())))

    @property
    def qualified_name(self) -> str:
        """``schema.name``, for messages."""
        return f"{self.schema}.{self.name}"

    @property
    def column_names(self) -> tuple[str, ...]:
        """The selected columns, in frame order (key, cursor, then the rest)."""
        return tuple(self.columns)

    @property
    def key_position(self) -> int:
        """Index of the key column in ``column_names``."""
        return 0

    @property
    def cursor_position(self) -> int:
        """Index of the cursor column in ``column_names``."""
        return 1

    def empty_frame(self) -> pd.DataFrame:
        """A frame with this table's columns and dtypes and no rows."""
        return self.frame({name: [] for name in self.columns}, source="spec")

    def frame(self, values: Mapping[str, Sequence[Any]], *, source: str) -> pd.DataFrame:
        """Build a page's frame from one list of values per column.

        Args:
            values: per selected column, the page's values as the source delivered them
                (psycopg's Python values, or parsed JSON from the REST API).
            source: "postgres" or "rest", for messages.

        Raises:
            FatalError: a value that cannot be read as its column's kind.
        """
        data = {}
        for name, kind in self.columns.items():
            try:
                data[name] = _column(values[name], kind)
            except (TypeError, ValueError, ArithmeticError) as exc:
                raise FatalError(
                    f"{self.qualified_name}.{name} (Kind.{kind.name}) has a value the "
                    f"{source} reader cannot convert ({exc}); fix the column's kind in the "
                    "table spec or the value in the database"
                ) from exc
        return pd.DataFrame(data)


def _check_identifier(what: str, value: str) -> None:
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise InvalidRequestError(
            f"the {what} name {value!r} is not a plain identifier (letters, digits, '_', "
            "not starting with a digit, at most 63 characters); rename it or read it "
            "through a view"
        )


def _column(values: Sequence[Any], kind: Kind) -> pd.Series | pd.api.extensions.ExtensionArray:
    if kind is Kind.TEXT:
        return pd.array([None if v is None else str(v) for v in values], dtype="string")
    if kind is Kind.INTEGER:
        return pd.array([None if v is None else _integer(v) for v in values], dtype="Int64")
    if kind is Kind.FLOAT:
        return pd.array([None if v is None else float(v) for v in values], dtype="Float64")
    if kind is Kind.BOOLEAN:
        return pd.array([None if v is None else _boolean(v) for v in values], dtype="boolean")
    if kind is Kind.TIMESTAMP:
        stamps = [None if v is None else _timestamp(v) for v in values]
        return pd.Series(pd.DatetimeIndex(stamps, dtype="datetime64[us, UTC]"))
    if kind is Kind.DECIMAL:
        return pd.Series([None if v is None else _decimal(v) for v in values], dtype=object)
    if kind is Kind.DATE:
        return pd.Series([None if v is None else _date(v) for v in values], dtype=object)
    return pd.Series([_plain_json(v) for v in values], dtype=object)


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{value!r} is a boolean, not an integer")
    if isinstance(value, float | Decimal) and value != int(value):
        raise ValueError(f"{value!r} is not a whole number")
    return int(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{value!r} is not a boolean")
    return value


def _decimal(value: Any) -> Decimal:
    if isinstance(value, float):
        # Only a REST body parsed without exact decimals gets here; repr keeps what was sent.
        return Decimal(repr(value))
    return Decimal(value)


def _timestamp(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an ISO 8601 timestamp (infinite timestamps are not supported)"
            ) from None
    if not isinstance(value, datetime):
        raise TypeError(f"{value!r} is not a timestamp")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _date(value: Any) -> date:
    if isinstance(value, str):
        return date.fromisoformat(value)
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(f"{value!r} is not a date")
    return value


def _plain_json(value: Any) -> Any:
    """JSON as psycopg parses it: floats, not the ``Decimal`` of an exact REST parse."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [_plain_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain_json(v) for k, v in value.items()}
    return value
