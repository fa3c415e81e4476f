"""Read an entity's records from a file, chunk by chunk, as the sync engine's raw frames.

``FileSource`` is a ``pipeline.source.RecordSource``: the engine reads a file as it reads
Finale. Every record of the file becomes one row of a chunk: a record that cannot be taken
as it stands (a CSV row with too few fields, a JSON Lines line that is not JSON, an unknown
field) still becomes a row, whose ``PROBLEM`` field says why, so the engine quarantines it.
A file that cannot be read at all (no header, unknown columns, a truncated JSON array,
forbidden XML) raises ``FileFormatError`` naming the file, the place and what to do.

Formats:
- CSV: UTF-8 with or without a BOM; the delimiter (``,``, ``;``, tab or ``|``) is the one
  the header line uses (or an Excel ``sep=;`` first line names it); double-quote quoting,
  with delimiters, quotes ("") and newlines inside quoted cells; an empty cell is null.
- JSON: one array of objects; JSON Lines: one object a line (blank lines skipped).
- XML: ``<entity><element><column>text</column>...</element></entity>``; an absent element
  or ``xsi:nil="true"`` is null. Parsed by defusedxml with DTDs forbidden, so neither an
  external entity nor an entity-expansion bomb is ever resolved.
- Parquet: the columns of the contract, read a row group at a time.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Collection, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from formats.entities import PROBLEM, WHERE, FileEntity
from formats.export import FORMATS, XSI

#: Records per chunk handed to the engine.
CHUNK = 5_000


class FileFormatError(Exception):
    """The file cannot be read as the entity's records; the message says where and why."""


def format_of(path: str | Path, given: str | None) -> str:
    """The format asked for, else the one the file's extension names.

    Raises:
        FileFormatError: neither names a known format.
    """
    fmt = (given or Path(path).suffix.lstrip(".")).lower()
    if fmt == "ndjson":
        fmt = "jsonl"
    if fmt not in FORMATS:
        raise FileFormatError(
            f"{path}: cannot tell the format from the extension {Path(path).suffix!r}; "
            f"pass --format ({', '.join(FORMATS)})"
        )
    return fmt


def _record(entity: FileEntity, fields: dict[str, Any], where: str) -> dict[str, Any]:
    """A raw row: the contract's columns (absent: null), where it was, and any problem."""
    unknown = [k for k in fields if k not in entity.columns]
    row: dict[str, Any] = {c: fields.get(c) for c in entity.columns}
    row[WHERE] = where
    row[PROBLEM] = (
        f"{where}: has fields the {entity.name} contract does not know: {', '.join(unknown)}"
        if unknown
        else None
    )
    return row


def _refused(
    entity: FileEntity, where: str, why: str, content: Any, fields: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A record refused as a whole; ``fields``: what of it could be read (its key, for the
    quarantine entry)."""
    row: dict[str, Any] = {c: (fields or {}).get(c) for c in entity.columns}
    row.update({WHERE: where, PROBLEM: f"{where}: {why}", "content": content})
    return row


def _csv_records(path: Path, entity: FileEntity) -> Iterator[dict[str, Any]]:
    with path.open("r", encoding="utf-8-sig", newline="") as f:
        first = f.readline()
        hint = None
        if first.startswith("sep=") and len(first.rstrip("\r\n")) == 5:
            # Excel's "sep=;" line: the delimiter, then the header on the next line.
            hint, first = first[4], f.readline()
        if not first.strip():
            raise FileFormatError(f"{path}: no header line; the first line must name the columns")
        delimiter = hint or max(",;\t|", key=first.count)
        reader = csv.reader(io.StringIO(first), delimiter=delimiter)
        header = [h.strip() for h in next(reader)]
        _check_header(path, entity, header)
        reader = csv.reader(f, delimiter=delimiter, strict=True)
        lines_before = 2 if hint else 1  # the sep= line and the header
        line = lines_before + 1
        try:
            for cells in reader:
                where = f"line {line}"
                line = reader.line_num + lines_before + 1
                if not cells or cells == [""]:
                    continue
                if len(cells) != len(header):
                    yield _refused(
                        entity,
                        where,
                        f"has {len(cells)} fields, the header has {len(header)} (a truncated "
                        "or misquoted row)",
                        delimiter.join(cells),
                        dict(zip(header, cells, strict=False)),
                    )
                    continue
                yield _record(
                    entity,
                    {h: (c if c != "" else None) for h, c in zip(header, cells, strict=True)},
                    where,
                )
        except csv.Error as exc:
            raise FileFormatError(
                f"{path}: line {reader.line_num + lines_before}: {exc} (a quote out of place, "
                "or a quoted cell never closed: the file looks damaged or truncated)"
            ) from exc


def _check_header(path: Path, entity: FileEntity, header: list[str]) -> None:
    missing = [c for c in entity.columns if c not in header]
    unknown = [c for c in header if c not in entity.columns]
    twice = sorted({c for c in header if header.count(c) > 1})
    if missing or unknown or twice:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown {', '.join(unknown)}")
        if twice:
            parts.append(f"repeated {', '.join(twice)}")
        raise FileFormatError(
            f"{path}: the columns do not match the {entity.name} contract ({'; '.join(parts)}); "
            f"expected {', '.join(entity.columns)}"
        )


def _object(entity: FileEntity, item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        return _refused(entity, where, f"is not a JSON object (a {type(item).__name__})", item)
    return _record(entity, item, where)


def _jsonl_records(path: Path, entity: FileEntity) -> Iterator[dict[str, Any]]:
    with path.open("r", encoding="utf-8-sig") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"line {number}"
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                yield _refused(entity, where, f"is not valid JSON ({exc.msg})", line.rstrip("\n"))
                continue
            yield _object(entity, item, where)


def _json_records(path: Path, entity: FileEntity) -> Iterator[dict[str, Any]]:
    """Items of a top-level JSON array, decoded one at a time from a sliding buffer."""
    decoder = json.JSONDecoder()
    with path.open("r", encoding="utf-8-sig") as f:
        buffer, pos, eof, item_no = "", 0, False, 0

        def more() -> bool:
            nonlocal buffer, pos, eof
            text = f.read(1 << 16)
            buffer, pos = buffer[pos:] + text, 0
            eof = not text
            return bool(text)

        def skip() -> str | None:
            nonlocal pos
            while True:
                while pos < len(buffer) and buffer[pos] in " \t\r\n":
                    pos += 1
                if pos < len(buffer):
                    return buffer[pos]
                if not more():
                    return None

        def truncated(what: str) -> FileFormatError:
            return FileFormatError(
                f"{path}: {what} after item {item_no} (the file looks truncated or is not a "
                "JSON array of objects)"
            )

        if skip() != "[":
            raise FileFormatError(
                f"{path}: a JSON file must hold one array of objects: [{{...}}, ...]"
            )
        pos += 1
        if skip() == "]":
            return
        while True:
            if skip() is None:
                raise truncated("the array ends early")
            while True:
                try:
                    item, end = decoder.raw_decode(buffer, pos)
                    break
                except json.JSONDecodeError as exc:
                    if eof or not more():
                        raise truncated(f"invalid JSON ({exc.msg})") from exc
            pos = end
            item_no += 1
            yield _object(entity, item, f"item {item_no}")
            after = skip()
            if after == ",":
                pos += 1
            elif after == "]":
                return
            else:
                raise truncated("expected ',' or ']'" if after else "the array ends early")


def _xml_records(path: Path, entity: FileEntity) -> Iterator[dict[str, Any]]:
    nil = f"{{{XSI}}}nil"
    depth, item_no, root = 0, 0, None
    try:
        events = iterparse(str(path), events=("start", "end"), forbid_dtd=True)
        for event, elem in events:
            if event == "start":
                depth += 1
                if depth == 1:
                    if elem.tag != entity.name:
                        raise FileFormatError(
                            f"{path}: the root element is <{elem.tag}>, expected <{entity.name}>"
                        )
                    root = elem
                continue
            depth -= 1
            if depth != 1:
                continue
            item_no += 1
            where = f"element {item_no}"
            if elem.tag != entity.element:
                yield _refused(
                    entity, where, f"is <{elem.tag}>, expected <{entity.element}>", elem.tag
                )
            else:
                fields: dict[str, Any] = {}
                nested = []
                for child in elem:
                    if len(child):
                        nested.append(child.tag)
                    fields[child.tag] = (
                        None if child.get(nil) in ("true", "1") else (child.text or "")
                    )
                row = _record(entity, fields, where)
                if nested and row[PROBLEM] is None:
                    row[PROBLEM] = f"{where}: <{'>, <'.join(nested)}> hold elements, not text"
                yield row
            # Let go of the record: memory stays flat however many the file holds.
            elem.clear()
            if root is not None:
                root.remove(elem)
    except DefusedXmlException as exc:
        raise FileFormatError(
            f"{path}: refused: the XML declares a DTD or entities ({type(exc).__name__}); "
            "entities are never expanded (external entities, entity bombs); remove the "
            "<!DOCTYPE> and write plain elements"
        ) from exc
    except SyntaxError as exc:  # ElementTree.ParseError
        raise FileFormatError(
            f"{path}: not well-formed XML ({exc}); the file looks truncated or damaged"
        ) from exc


def _parquet_records(path: Path, entity: FileEntity) -> Iterator[dict[str, Any]]:
    try:
        # No pre-buffering: with it (pyarrow's default) a reader over every row group reads
        # the column chunks of the whole file ahead and holds them to the end, so memory
        # grows with the file (benchmarks/RESULTS.md, issue 13).
        file = pq.ParquetFile(path, pre_buffer=False)
    except (pa.ArrowInvalid, OSError) as exc:
        raise FileFormatError(f"{path}: not a readable Parquet file ({exc})") from exc
    _check_header(path, entity, file.schema_arrow.names)
    number = 0
    for batch in file.iter_batches(batch_size=CHUNK):
        for item in batch.to_pylist():
            number += 1
            yield _record(
                entity,
                {k: v.isoformat() if isinstance(v, datetime) else v for k, v in item.items()},
                f"row {number}",
            )


_READERS = {
    "csv": _csv_records,
    "json": _json_records,
    "jsonl": _jsonl_records,
    "xml": _xml_records,
    "parquet": _parquet_records,
}


def records(path: str | Path, entity: FileEntity, fmt: str) -> Iterator[dict[str, Any]]:
    """Every record of the file, as raw rows (see the module docstring).

    Raises:
        FileFormatError: the file cannot be read as the entity's records.
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    try:
        yield from _READERS[fmt](path, entity)
    except UnicodeDecodeError as exc:
        raise FileFormatError(
            f"{path}: not UTF-8 at byte {exc.start}; save the file as UTF-8 (CSV UTF-8 in a "
            "spreadsheet) and import it again"
        ) from exc


def chunks(
    path: str | Path, entity: FileEntity, fmt: str, size: int = CHUNK
) -> Iterator[pd.DataFrame]:
    """The file's records as object-typed frames of at most ``size`` rows."""
    columns = [*entity.columns, WHERE, PROBLEM]
    batch: list[dict[str, Any]] = []
    for record in records(path, entity, fmt):
        batch.append(record)
        if len(batch) >= size:
            yield _frame(batch, columns)
            batch = []
    if batch:
        yield _frame(batch, columns)


def _frame(batch: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    # Object columns: values stay as the file has them until the mapping parses them.
    names = columns + (["content"] if any("content" in r for r in batch) else [])
    return pd.DataFrame({c: pd.Series([r.get(c) for r in batch], dtype=object) for c in names})


class FileSource:
    """A ``RecordSource`` over one file: every read yields the whole file, in chunks."""

    def __init__(self, path: str | Path, entity: FileEntity, fmt: str) -> None:
        self.path, self.entity, self.fmt = Path(path), entity, fmt

    def iter_collection(
        self,
        collection: str,
        *,
        page_size: int = CHUNK,
        filter: dict[str, Any] | None = None,
        defer: Collection[str] = (),
    ) -> Iterator[pd.DataFrame]:
        """Every record of the file, ``page_size`` at a time."""
        return chunks(self.path, self.entity, self.fmt, page_size)

    def iter_updated(self, collection: str, *, since: datetime, **_: Any) -> Iterator[Any]:
        """A file has no notion of change: an import reads it whole (``iter_collection``)."""
        raise NotImplementedError(f"{self.path}: a file is read whole, never by what changed")
