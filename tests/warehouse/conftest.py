"""Fixtures for the warehouse tests: migrated databases and frames shaped like the tables."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa

from warehouse.db import create_warehouse_engine
from warehouse.migrate import upgrade


@pytest.fixture
def migrated() -> Iterator[Callable[[str], sa.Engine]]:
    """Factory: migrate the database at a URL to head and return an engine on it."""
    engines: list[sa.Engine] = []

    def make(url: str) -> sa.Engine:
        upgrade(url)
        engines.append(create_warehouse_engine(url))
        return engines[-1]

    yield make
    for eng in engines:
        eng.dispose()


@pytest.fixture
def engine(warehouse_url: str, migrated: Callable[[str], sa.Engine]) -> sa.Engine:
    """A migrated warehouse, once on SQLite and once on PostgreSQL."""
    return migrated(warehouse_url)


@pytest.fixture
def make_products() -> Callable[..., pd.DataFrame]:
    """Factory for product frames (see ``product_frame``)."""
    return product_frame


@pytest.fixture
def make_po_lines() -> Callable[[int, int], pd.DataFrame]:
    """Factory for purchase-order line frames (see ``po_line_frame``)."""
    return po_line_frame


def product_frame(n: int, *, start: int = 0) -> pd.DataFrame:
    """``n`` products with every business column filled in varied dtypes."""
    ids = range(start, start + n)
    return pd.DataFrame(
        {
            "sku": [f"SKU-{i:05d}" for i in ids],
            "finale_url": [f"/acme/api/product/SKU-{i:05d}" for i in ids],
            "name": [f"Product {i}" for i in ids],
            "status": ["PRODUCT_ACTIVE"] * n,
            "category": [None if i % 3 == 0 else f"cat-{i % 5}" for i in ids],
            "cost": [round(1.25 * i + 0.5, 2) for i in ids],
            "primary_vendor_party_id": [f"V{i % 7}" for i in ids],
            "reorder_point": [Decimal(i % 11) for i in ids],
            "reorder_quantity": [float(i % 13) if i % 4 else None for i in ids],
            "created_at": pd.to_datetime([datetime(2024, 1, 1, tzinfo=UTC)] * n, utc=True)
            + pd.to_timedelta(list(ids), unit="min"),
            "last_updated_at": pd.to_datetime([datetime(2024, 6, 1, tzinfo=UTC)] * n, utc=True)
            + pd.to_timedelta(list(ids), unit="s"),
        }
    )


def po_line_frame(orders: int, lines: int) -> pd.DataFrame:
    """Purchase-order lines: a composite key (text, integer)."""
    rows = [
        {
            "order_id": f"PO-{o}",
            "line_no": n,
            "sku": f"SKU-{o * lines + n:05d}",
            "product_url": f"/acme/api/product/SKU-{o * lines + n:05d}",
            "quantity": Decimal(n) * Decimal("1.5"),
            "unit_price": 9.99,
        }
        for o in range(orders)
        for n in range(1, lines + 1)
    ]
    return pd.DataFrame(rows)
