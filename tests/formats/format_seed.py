"""The file format tests' small dataset, and how to read a warehouse table back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from schemas import tables
from warehouse import load

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def _ts(day: int, micro: int = 0) -> pd.Timestamp:
    return pd.Timestamp(datetime(2025, 3, day, 8, 15, 30, micro, tzinfo=UTC))


#: Small but awkward: delimiters, quotes, newlines, non-ASCII text, nulls, 4-decimal
#: amounts, negative stock, microsecond timestamps.
SEED: dict[str, pd.DataFrame] = {
    "facilities": pd.DataFrame(
        {
            "facility_id": ["100", "101"],
            "facility_url": ["/acct/api/facility/100", "/acct/api/facility/101"],
            "name": ['Main; "North" warehouse', "Shelf A,\nrow 2"],
            "parent_facility_id": [None, "100"],
            "status": ["FACILITY_ACTIVE", None],
            "last_updated_at": [_ts(1), _ts(2, 123456)],
        }
    ),
    "vendors": pd.DataFrame(
        {
            "party_id": ["V1", "V2"],
            "name": ["Ächt & Söhne <GmbH>", "Plain supplier"],
            "status": ["PARTY_ENABLED", "PARTY_DISABLED"],
            "email": ["orders@example.test", None],
            "phone": [None, "+49 30 1234"],
            "finale_url": ["/acct/api/partygroup/V1", "/acct/api/partygroup/V2"],
            "last_updated_at": [_ts(3), _ts(4)],
        }
    ),
    "products": pd.DataFrame(
        {
            "sku": ["SKU-1", "SKU-2", "sku 3"],
            "finale_url": [f"/acct/api/product/{i}" for i in (1, 2, 3)],
            "name": ["Widget, large", 'Gadget "pro"\r\nv2', "日本語の商品"],
            "status": ["PRODUCT_ACTIVE", "PRODUCT_INACTIVE", None],
            "category": ["Tools", None, "a;b"],
            "cost": [12.3456, 0.0, None],
            "primary_vendor_party_id": ["V1", None, "V2"],
            "reorder_point": [10.0, None, 2.5],
            "reorder_quantity": [1200.0, None, 0.0001],
            "created_at": [_ts(1), None, _ts(2)],
            "last_updated_at": [_ts(5), _ts(6), _ts(7)],
        }
    ),
    "stock_levels": pd.DataFrame(
        {
            "sku": ["SKU-1", "SKU-1", "SKU-2"],
            "facility_id": ["100", "101", "100"],
            "quantity_on_hand": [5.0, -2.0, 0.25],
            "quantity_on_order": [0.0, 10.0, 0.0],
            "quantity_reserved": [1.0, 0.0, 0.25],
            "quantity_available": [4.0, -2.0, 0.0],
        }
    ),
    "purchase_orders": pd.DataFrame(
        {
            "order_id": ["PO-1", "PO-2"],
            "finale_url": ["/acct/api/order/PO-1", "/acct/api/order/PO-2"],
            "status": ["ORDER_CREATED", "ORDER_COMPLETED"],
            "vendor_party_id": ["V1", None],
            "order_date": [_ts(8), _ts(9)],
            "due_date": [None, _ts(10)],
            "receive_date": [None, None],
            "destination_facility_id": ["100", None],
            "total_amount": [61.728, 0.0],
            "line_count": [2, 0],
            "lines_checksum": ["0123456789abcdef0123456789abcdef", None],
            "last_updated_at": [_ts(8), _ts(11)],
        }
    ),
    "purchase_order_lines": pd.DataFrame(
        {
            "order_id": ["PO-1", "PO-1"],
            "line_no": [1, 2],
            "sku": ["SKU-1", "SKU-2"],
            "product_url": ["/acct/api/product/1", "/acct/api/product/2"],
            "quantity": [5.0, 0.0],
            "unit_price": [12.3456, 3.5],
        }
    ),
    "app_purchase_order_requests": pd.DataFrame(
        {
            "request_id": ["7", "8"],
            "vendor_party_id": ["V1", "V2"],
            "destination_facility_id": ["100", None],
            "status": ["draft", "ready_to_commit"],
            "created_at": [_ts(12), _ts(13)],
            "last_updated_at": [_ts(12), _ts(14)],
        }
    ),
}


def seed(engine: sa.Engine) -> None:
    """Load ``SEED`` with the warehouse's own loader."""
    with engine.begin() as conn:
        for name, frame in SEED.items():
            load.load_chunk(conn, tables.metadata.tables[name], frame, synced_at=T0)


def table_rows(engine: sa.Engine, table: sa.Table) -> list[tuple[object, ...]]:
    """The table's business columns and content hash, live rows only, in key order."""
    columns = [c for c in table.columns if c.name not in ("synced_at", "deleted_at")]
    with engine.connect() as conn:
        query = sa.select(*columns).where(table.c.deleted_at.is_(None))
        return [tuple(r) for r in conn.execute(query.order_by(*table.primary_key.columns))]


def write_file(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path
