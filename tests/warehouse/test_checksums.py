"""Reconciliation: equal content gives equal checksums, in Python and in either database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd
import sqlalchemy as sa

from schemas.tables import products
from warehouse.load import ChecksumAccumulator, frame_checksum, load_chunk, table_checksum

T1 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def test_equal_content_gives_equal_checksums_on_both_backends(
    pg_url: str,
    sqlite_url: str,
    migrated: Callable[[str], sa.Engine],
    make_products: Callable[..., pd.DataFrame],
) -> None:
    frame = make_products(300)
    source = ChecksumAccumulator()
    sums = []
    for url in (pg_url, sqlite_url):
        engine = migrated(url)
        with engine.begin() as conn:
            for start in range(0, 300, 100):
                counts = load_chunk(conn, products, frame.iloc[start : start + 100], synced_at=T1)
                if url == pg_url:
                    source.add(counts.hashes)
            sums.append(table_checksum(conn, products))

    in_postgres, in_sqlite = sums
    assert in_postgres == in_sqlite
    assert in_postgres == frame_checksum(frame, products)
    assert source.result() == tuple(in_postgres)
    assert in_postgres.count == 300


def test_one_differing_row_changes_the_checksum(
    pg_url: str,
    sqlite_url: str,
    migrated: Callable[[str], sa.Engine],
    make_products: Callable[..., pd.DataFrame],
) -> None:
    frame = make_products(50)
    other = frame.copy()
    other.loc[10, "reorder_point"] = Decimal("12.0001")
    sums = []
    for url, content in ((pg_url, frame), (sqlite_url, other)):
        engine = migrated(url)
        with engine.begin() as conn:
            load_chunk(conn, products, content, synced_at=T1)
            sums.append(table_checksum(conn, products))

    assert sums[0].count == sums[1].count == 50
    assert sums[0].checksum != sums[1].checksum
    assert sums[1] == frame_checksum(other, products)


def test_deleted_rows_are_left_out_of_the_table_checksum(
    engine: sa.Engine, make_products: Callable[..., pd.DataFrame]
) -> None:
    frame = make_products(20)
    with engine.begin() as conn:
        load_chunk(conn, products, frame, synced_at=T1)
        conn.execute(
            sa.update(products).where(products.c.sku == frame.loc[0, "sku"]).values(deleted_at=T1)
        )
        stored = table_checksum(conn, products)

    assert stored == frame_checksum(frame.iloc[1:], products)
    assert frame_checksum(pd.concat([frame, frame.iloc[[3]]]), products) == frame_checksum(
        frame, products
    )
