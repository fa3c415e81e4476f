"""Stream an entity's warehouse rows to a file, in constant memory.

Rows are read with a server-side cursor (``stream_results``, ``yield_per``) and written as
they arrive: the csv module's writer, a JSON array written item by item, one JSON object a
line, XML written element by element, Parquet one row group per batch (``ParquetWriter``).
Only live rows are exported (``deleted_at`` is null), ordered by the primary key.

Values: timestamps are ISO 8601 in UTC (``2025-01-31T12:00:00+00:00``), numbers as decimals
(``12.5``), null is an empty CSV cell, JSON ``null``, an absent XML element, a Parquet null.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from formats.entities import FileEntity

#: The formats ``invsync export`` writes and ``invsync import`` reads.
FORMATS = ("csv", "json", "jsonl", "xml", "parquet")
#: Formats written as text (to stdout when no path is given).
TEXT_FORMATS = ("csv", "json", "jsonl", "xml")
#: Rows fetched from the database at a time.
BATCH = 5_000

#: The XML Schema instance namespace, whose ``xsi:nil="true"`` an import also reads as null.
XSI = "http://www.w3.org/2001/XMLSchema-instance"


class ExportError(Exception):
    """A row cannot be written in the chosen format (the message says which and why)."""


def rows(
    conn: sa.Connection, entity: FileEntity, since: datetime | None = None
) -> Iterator[Sequence[Sequence[Any]]]:
    """The entity's live rows in batches of ``BATCH``, read by a server-side cursor.

    Raises:
        ValueError: ``since`` was given for an entity without ``last_updated_at``.
    """
    table = entity.table
    query = sa.select(*(table.c[c] for c in entity.columns)).where(table.c.deleted_at.is_(None))
    if since is not None:
        if entity.cursor is None:
            raise ValueError(
                f"--since cannot filter {entity.name}: its table ({table.name}) has no "
                "last_updated_at; export it whole (leave out --since)"
            )
        query = query.where(table.c[entity.cursor] >= since)
    return _stream(conn, query.order_by(*(table.c[k] for k in entity.keys)))


def _stream(conn: sa.Connection, query: sa.Select[Any]) -> Iterator[Sequence[Sequence[Any]]]:
    result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(query)
    yield from result.partitions()


def text_value(value: Any) -> str | None:
    """A value as text: ISO timestamps, plain decimals (no exponent, no trailing zeros)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return text
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def write_csv(out: IO[str], entity: FileEntity, batches: Iterator[Sequence[Sequence[Any]]]) -> int:
    """Comma-separated, a header line, RFC 4180 quoting (newlines kept inside quotes)."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(entity.columns)
    count = 0
    for batch in batches:
        writer.writerows([["" if v is None else text_value(v) for v in row] for row in batch])
        count += len(batch)
    return count


def _dumps(entity: FileEntity, row: Sequence[Any]) -> str:
    record = {c: _json_value(v) for c, v in zip(entity.columns, row, strict=True)}
    return json.dumps(record, ensure_ascii=False, allow_nan=False)


def write_json(out: IO[str], entity: FileEntity, batches: Iterator[Sequence[Sequence[Any]]]) -> int:
    """One JSON array of objects, written item by item."""
    out.write("[")
    count = 0
    for batch in batches:
        for row in batch:
            out.write(("," if count else "") + "\n" + _dumps(entity, row))
            count += 1
    out.write("\n]\n")
    return count


def write_jsonl(
    out: IO[str], entity: FileEntity, batches: Iterator[Sequence[Sequence[Any]]]
) -> int:
    """One JSON object per line."""
    count = 0
    for batch in batches:
        out.writelines(_dumps(entity, row) + "\n" for row in batch)
        count += len(batch)
    return count


def _xml_text(text: str, entity: FileEntity, column: str) -> str:
    bad = next((ch for ch in text if ord(ch) < 32 and ch not in "\t\n\r"), None)
    if bad is not None or any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise ExportError(
            f"{entity.name}.{column} holds a character XML 1.0 cannot carry "
            f"({text[:40]!r}); export this entity as json, jsonl, csv or parquet instead"
        )
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    )


def write_xml(out: IO[str], entity: FileEntity, batches: Iterator[Sequence[Sequence[Any]]]) -> int:
    """``<entity><element><column>value</column>...</element>...</entity>``; null: absent."""
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(f"<{entity.name}>\n")
    count = 0
    for batch in batches:
        for row in batch:
            parts = [f"  <{entity.element}>"]
            for column, value in zip(entity.columns, row, strict=True):
                text = text_value(value)
                if text is not None:
                    parts.append(f"<{column}>{_xml_text(text, entity, column)}</{column}>")
            parts.append(f"</{entity.element}>\n")
            out.write("".join(parts))
            count += 1
    out.write(f"</{entity.name}>\n")
    return count


_ARROW = {
    "text": pa.string(),
    "numeric": pa.decimal128(18, 4),
    "integer": pa.int64(),
    "datetime": pa.timestamp("us", tz="UTC"),
}
_FOUR = Decimal("0.0001")


def arrow_schema(entity: FileEntity) -> pa.Schema:
    """The Parquet schema of an entity: string, decimal(18, 4), int64, timestamp[us, UTC]."""
    return pa.schema([pa.field(c, _ARROW[k]) for c, k in entity.kinds.items()])


def write_parquet(path: str, entity: FileEntity, batches: Iterator[Sequence[Sequence[Any]]]) -> int:
    """One row group per batch of rows."""
    schema = arrow_schema(entity)
    kinds = list(entity.kinds.values())
    count = 0
    with pq.ParquetWriter(path, schema) as writer:
        for batch in batches:
            columns = [list(col) for col in zip(*batch, strict=True)] or [[] for _ in kinds]
            for i, kind in enumerate(kinds):
                if kind == "numeric":
                    columns[i] = [
                        None if v is None else Decimal(v).quantize(_FOUR) for v in columns[i]
                    ]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
            count += len(batch)
        if count == 0:
            writer.write_table(schema.empty_table())
    return count


def export(
    conn: sa.Connection,
    entity: FileEntity,
    fmt: str,
    out: IO[str] | str,
    since: datetime | None = None,
) -> int:
    """Write the entity's live rows to ``out`` (a text stream, or a path for parquet).

    Returns:
        the number of rows written.

    Raises:
        ValueError: an unknown format, or ``since`` for an entity without last_updated_at.
        ExportError: a value the format cannot carry.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    batches = rows(conn, entity, since)
    if fmt == "parquet":
        if not isinstance(out, str):
            raise ValueError("parquet is binary: give --output PATH")
        return write_parquet(out, entity, batches)
    if isinstance(out, str):
        raise ValueError("text formats are written to a text stream")
    writer = {"csv": write_csv, "json": write_json, "jsonl": write_jsonl, "xml": write_xml}[fmt]
    return writer(out, entity, batches)
