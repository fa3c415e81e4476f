"""The app-like tables the Supabase tests read, their specs, and rows to fill them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import psycopg
from psycopg.types.json import Jsonb

from connectors.supabase import AppTable, Kind, PostgresReader, RestReader

DDL = """
CREATE TABLE public.purchase_order_requests (
    id bigint PRIMARY KEY,
    updated_at timestamptz NOT NULL,
    vendor text,
    note text,
    quantity integer,
    unit_price numeric(14, 4),
    weight double precision,
    urgent boolean,
    needed_by date,
    request_uuid uuid,
    lines jsonb,
    created_at timestamp
);
CREATE INDEX purchase_order_requests_cursor ON public.purchase_order_requests (updated_at, id);
CREATE SCHEMA app;
CREATE TABLE app.vendor_notes (
    code text PRIMARY KEY,
    updated_at timestamptz NOT NULL,
    body text
);
"""

REQUESTS = AppTable(
    "purchase_order_requests",
    key="id",
    columns={
        "id": Kind.INTEGER,
        "updated_at": Kind.TIMESTAMP,
        "vendor": Kind.TEXT,
        "note": Kind.TEXT,
        "quantity": Kind.INTEGER,
        "unit_price": Kind.DECIMAL,
        "weight": Kind.FLOAT,
        "urgent": Kind.BOOLEAN,
        "needed_by": Kind.DATE,
        "request_uuid": Kind.TEXT,
        "lines": Kind.JSON,
        "created_at": Kind.TIMESTAMP,
    },
)

NOTES = AppTable("vendor_notes", key="code", columns={"body": Kind.TEXT}, schema="app")

BASE = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)

#: Texts that break naive quoting: PostgREST's reserved characters, quotes, backslashes,
#: unicode (emoji, right-to-left, combining marks), a NUL-free control character.
HOSTILE_TEXTS = [
    "a,b",
    "(paren)",
    'say "hi"',
    "back\\slash",
    "dot.and:colon",
    "naïve café ☕",
    "שלום",
    "e\u0301",
    "tab\there",
    "Robert'); DROP TABLE purchase_order_requests;--",
    "",
    "  padded  ",
]

INSERT_REQUEST = """
INSERT INTO public.purchase_order_requests (id, updated_at, vendor, note, quantity, unit_price,
    weight, urgent, needed_by, request_uuid, lines, created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


def create_app_tables(conn: psycopg.Connection[Any]) -> None:
    """Create the app tables (empty)."""
    conn.execute(DDL)


def request_rows(count: int) -> Iterator[tuple[Any, ...]]:
    """``count`` varied rows: NULLs, hostile text, exact decimals, shared ``updated_at``s.

    Every third row shares its ``updated_at`` with the next two, so page boundaries fall
    inside runs of equal cursors; ids are not in cursor order.
    """
    for i in range(count):
        stamp = BASE + timedelta(seconds=i // 3, microseconds=(i // 3) * 7)
        ident = (i * 7919) % 100_003 + 1
        yield (
            ident,
            stamp,
            None if i % 5 == 0 else f"vendor-{i % 4}",
            HOSTILE_TEXTS[i % len(HOSTILE_TEXTS)] if i % 4 else None,
            None if i % 6 == 0 else i * 3 - 40,
            None if i % 7 == 0 else Decimal(f"{i}.{i % 10}0{i % 3}") * (-1 if i % 2 else 1),
            None if i % 8 == 0 else [0.1, 1e-300, float("inf"), 12345.678, -0.0][i % 5],
            None if i % 3 == 0 else i % 2 == 0,
            None if i % 4 == 0 else date(2026, 1 + i % 12, 1 + i % 28),
            None if i % 9 == 0 else f"00000000-0000-4000-8000-{i:012d}",
            None if i % 5 == 1 else Jsonb({"sku": f"SKU-{i}", "qty": i, "price": 1.25 * i}),
            None if i % 10 == 0 else datetime(2025, 12, 31, 23, 59, 59, i),
        )


def insert_requests(conn: psycopg.Connection[Any], rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert rows made by ``request_rows``."""
    with conn.cursor() as cur:
        cur.executemany(INSERT_REQUEST, rows)


def read_all(
    reader: PostgresReader | RestReader, table: AppTable, since: Any = None, *, until: Any = None
) -> pd.DataFrame:
    """Every page of one read, concatenated (the table's empty frame when none came)."""
    pages = list(reader.read_changed(table, since, until=until))
    if not pages:
        return table.empty_frame()
    return pd.concat(pages, ignore_index=True)
