"""The entities a file may hold, and how the sync engine reads one back.

A file carries an entity's business columns (the README's data contract, in table order):
``synced_at``, ``content_hash`` and ``deleted_at`` are the warehouse's own bookkeeping and
are neither exported nor imported. An import is read by an ``EntitySpec`` whose mapping is
the identity (each column read from the field of the same name, parsed by its kind) and
whose schema is the entity's own pandera schema, loaded by ``UpsertRows``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pandas as pd
import pandera.pandas as pa
import sqlalchemy as sa

from pipeline.entities import APP_ENTITIES, ENTITIES, EntitySpec
from pipeline.loading import UpsertRows
from pipeline.mapping import Number, Rule, Text, Timestamp
from schemas import clean, tables
from warehouse.canonical import business_columns, column_kind, key_columns

#: The raw field a reader fills when a record cannot be taken as it stands (a CSV row with
#: the wrong number of fields, a JSON item that is not an object, an unknown field): the
#: record is quarantined with it as the reason.
PROBLEM = "_problem"
#: The raw field holding where the record is in its file ("line 4", "item 3").
WHERE = "_where"


@dataclass(frozen=True)
class FileEntity:
    """One entity as files carry it.

    Attributes:
        name: the name ``invsync export`` and ``invsync import`` take.
        table: its warehouse table.
        schema: the pandera schema its rows must pass (the sync's, limited to the table).
        element: the XML element of one record (the root element is ``name``).
        row_checks: further rules over a row's columns (stock's quantity_available).
    """

    name: str
    table: sa.Table
    schema: pa.DataFrameSchema
    element: str
    row_checks: tuple[Callable[[pd.DataFrame], pd.Series], ...] = ()

    @cached_property
    def columns(self) -> tuple[str, ...]:
        """The file's columns, in table order (cached: a reader asks once per field)."""
        return tuple(c.name for c in business_columns(self.table))

    @property
    def kinds(self) -> dict[str, str]:
        """Column -> ``text``, ``numeric``, ``integer`` or ``datetime``."""
        return {c.name: column_kind(c) for c in business_columns(self.table)}

    @property
    def keys(self) -> list[str]:
        """The primary-key columns."""
        return key_columns(self.table)

    @property
    def cursor(self) -> str | None:
        """The column ``--since`` filters on, when the table has one."""
        return "last_updated_at" if "last_updated_at" in self.columns else None

    def spec(self) -> EntitySpec:
        """The ``EntitySpec`` an import of this entity runs (``pipeline.sync``)."""
        mapping: dict[str, Rule] = {name: _rule(name, kind) for name, kind in self.kinds.items()}
        mapping[PROBLEM] = Text(PROBLEM)
        keys = self.keys
        return EntitySpec(
            name=self.name,
            collection=f"file:{self.table.name}",
            key_field=keys[0],
            table=self.table,
            mapping=mapping,
            schema=self.schema,
            cursor_field=None,
            lookups=frozenset(),
            loading=UpsertRows(),
            row_checks=(_file_problem, *self.row_checks),
            quarantine_key=_joined(keys) if len(keys) > 1 else None,
        )


def _rule(name: str, kind: str) -> Rule:
    if kind == "datetime":
        return Timestamp(name)
    if kind in ("numeric", "integer"):
        return Number(name, integer=kind == "integer")
    return Text(name)


def _file_problem(frame: pd.DataFrame) -> pd.Series:
    """A reader's reason a record cannot be taken as it stands (``PROBLEM``)."""
    return frame[PROBLEM].astype(object).where(frame[PROBLEM].notna(), None)


def _joined(keys: list[str]) -> Callable[[pd.DataFrame], pd.Series]:
    """``a/b``: a composite key as one ``quarantine.source_key``."""

    def key(raw: pd.DataFrame) -> pd.Series:
        parts = [raw.get(k, pd.Series(None, index=raw.index, dtype=object)) for k in keys]
        return pd.Series(
            [
                "/".join("?" if v is None or v != v else str(v) for v in row)
                for row in zip(*parts, strict=True)
            ],
            index=raw.index,
            dtype=object,
        )

    return key


def _available_agrees(frame: pd.DataFrame) -> pd.Series:
    """quantity_available must be quantity_on_hand - quantity_reserved, as a sync makes it."""
    expected = frame["quantity_on_hand"] - frame["quantity_reserved"]
    off = (frame["quantity_available"] - expected).abs() > 1e-6
    return pd.Series(
        [
            f"quantity_available must be quantity_on_hand - quantity_reserved (got {a:g}, "
            f"expected {e:g})"
            if bad
            else None
            for a, e, bad in zip(
                frame["quantity_available"].tolist(), expected.tolist(), off.tolist(), strict=True
            )
        ],
        index=frame.index,
        dtype=object,
    )


def _schema(schema: pa.DataFrameSchema, table: sa.Table) -> pa.DataFrameSchema:
    """``schema`` without the columns a sync maps but the table does not store."""
    stored = {c.name for c in table.columns}
    return schema.remove_columns([c for c in schema.columns if c not in stored])


def _entity(spec: EntitySpec, element: str, **more: Any) -> FileEntity:
    return FileEntity(spec.name, spec.table, _schema(spec.schema, spec.table), element, **more)


_PO = ENTITIES["purchase_orders"]
assert _PO.child is not None
#: Every entity a file may hold, by the name the commands take.
FILE_ENTITIES: dict[str, FileEntity] = {
    e.name: e
    for e in (
        _entity(ENTITIES["facilities"], "facility"),
        _entity(ENTITIES["vendors"], "vendor"),
        _entity(ENTITIES["products"], "product"),
        _entity(ENTITIES["stock"], "stock_level", row_checks=(_available_agrees,)),
        _entity(_PO, "purchase_order"),
        FileEntity(
            "purchase_order_lines",
            tables.purchase_order_lines,
            _schema(clean.purchase_order_lines, tables.purchase_order_lines),
            "purchase_order_line",
        ),
        _entity(APP_ENTITIES["purchase_order_requests"], "purchase_order_request"),
    )
}


def file_entity(name: str) -> FileEntity:
    """The entity ``name``.

    Raises:
        ValueError: naming the unknown entity and listing the valid ones.
    """
    if name not in FILE_ENTITIES:
        raise ValueError(f"unknown entity {name!r}; choose from {', '.join(FILE_ENTITIES)}")
    return FILE_ENTITIES[name]
