"""Stock: per-item records summed across chunks in SQL, merged changed-only."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa

from schemas.tables import stock_levels
from warehouse.stock import StockStager

T1 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
T2 = datetime(2025, 1, 2, 12, 0, tzinfo=UTC)

# Item records: (sku, facility, on_hand, on_order, reserved); pairs repeat across chunks.
CHUNKS = [
    [("A", "F1", 1.5, 0, 0.5), ("A", "F1", 2, 1, 0), ("B", "F1", 10, None, 3)],
    [("A", "F1", Decimal("0.25"), 0, 0), ("A", "F2", 4, 4, 4), ("C", "F2", -2, 0, 0)],
    [("B", "F1", 0.1, 0, 0.2), ("C", "F2", 1, 2, 0)],
]


def _frame(records: list[tuple[object, ...]]) -> pd.DataFrame:
    return pd.DataFrame(
        records,
        columns=[
            "sku",
            "facility_id",
            "quantity_on_hand",
            "quantity_on_order",
            "quantity_reserved",
        ],
    )


def _stock(engine: sa.Engine) -> dict[tuple[str, str], dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(stock_levels)).mappings().all()
    return {(r["sku"], r["facility_id"]): dict(r) for r in rows}


def _merge(
    engine: sa.Engine, chunks: list[list[tuple[object, ...]]], when: datetime, **options: object
):
    """Stage each chunk in its own committed transaction, then merge (like the pipeline)."""
    with engine.connect() as conn, StockStager(conn) as stager:
        with conn.begin():
            stager.open()
        for records in chunks:
            with conn.begin():
                stager.add(_frame(records))
        with conn.begin():
            return stager.merge(synced_at=when, **options)


def test_records_across_chunks_are_summed_per_pair(engine: sa.Engine) -> None:
    counts = _merge(engine, CHUNKS, T1)

    assert (counts.inserted, counts.updated, counts.unchanged, counts.deleted) == (4, 0, 0, 0)
    stock = _stock(engine)
    quantities = {
        pair: (
            row["quantity_on_hand"],
            row["quantity_on_order"],
            row["quantity_reserved"],
            row["quantity_available"],
        )
        for pair, row in stock.items()
    }
    assert quantities == {
        ("A", "F1"): (Decimal("3.7500"), Decimal("1.0000"), Decimal("0.5000"), Decimal("3.2500")),
        ("A", "F2"): (Decimal("4.0000"), Decimal("4.0000"), Decimal("4.0000"), Decimal("0.0000")),
        ("B", "F1"): (Decimal("10.1000"), Decimal("0.0000"), Decimal("3.2000"), Decimal("6.9000")),
        ("C", "F2"): (Decimal("-1.0000"), Decimal("2.0000"), Decimal("0.0000"), Decimal("-1.0000")),
    }
    assert {row["synced_at"] for row in stock.values()} == {T1}


def test_a_second_snapshot_writes_only_changed_pairs_and_zeroes_vanished_ones(
    engine: sa.Engine,
) -> None:
    _merge(engine, CHUNKS, T1)
    # Same snapshot except: B@F1 changed, C@F2 vanished (records in other chunk order).
    second = [
        [("C", "X", 0, 0, 0)],  # a new pair
        [("A", "F1", 2, 1, 0), ("A", "F2", 4, 4, 4), ("B", "F1", 11, 0, 3)],
        [("A", "F1", 1.75, 0, 0.5)],
    ]
    counts = _merge(engine, second, T2)

    assert (counts.inserted, counts.updated, counts.unchanged, counts.deleted) == (1, 1, 2, 1)
    stock = _stock(engine)
    assert stock[("A", "F1")]["synced_at"] == T1  # same sum, other records: untouched
    assert stock[("A", "F2")]["synced_at"] == T1
    assert stock[("B", "F1")]["quantity_on_hand"] == Decimal("11.0000")
    assert stock[("B", "F1")]["synced_at"] == T2
    vanished = stock[("C", "F2")]
    assert (vanished["quantity_on_hand"], vanished["quantity_available"]) == (0, 0)
    assert (vanished["deleted_at"], vanished["synced_at"]) == (T2, T2)
    assert stock[("C", "X")]["deleted_at"] is None


def test_excluded_pairs_are_left_exactly_as_stored(engine: sa.Engine) -> None:
    _merge(engine, CHUNKS, T1)
    before = _stock(engine)
    # B@F1 had a quarantined record: its partial sum must not be written, nor zeroed;
    # C@F2 is excluded and absent: it must not be marked deleted either.
    counts = _merge(
        engine,
        [[("A", "F1", 3.75, 1, 0.5), ("A", "F2", 4, 4, 4), ("B", "F1", 1, 0, 0)]],
        T2,
        exclude_pairs={"B@F1", ("C", "F2")},
    )

    assert (counts.inserted, counts.updated, counts.unchanged, counts.deleted) == (0, 0, 2, 0)
    assert _stock(engine) == before


def test_a_rolled_back_chunk_makes_the_merge_fail_instead_of_zeroing_stock(
    engine: sa.Engine,
) -> None:
    _merge(engine, CHUNKS, T1)
    before = _stock(engine)
    with engine.connect() as conn:
        stager = StockStager(conn)
        with conn.begin():
            stager.open()
            stager.add(_frame(CHUNKS[0]))
        transaction = conn.begin()
        stager.add(_frame(CHUNKS[1]))
        transaction.rollback()
        with pytest.raises(RuntimeError, match="lost rows"), conn.begin():
            stager.merge(synced_at=T2)

    assert _stock(engine) == before


def test_an_empty_stock_read_is_refused_unless_allowed(engine: sa.Engine) -> None:
    _merge(engine, CHUNKS, T1)
    with pytest.raises(ValueError, match="no stock staged"):
        _merge(engine, [], T2)
    assert {row["deleted_at"] for row in _stock(engine).values()} == {None}

    counts = _merge(engine, [], T2, allow_empty=True)
    assert counts.deleted == 4
    assert {row["quantity_on_hand"] for row in _stock(engine).values()} == {0}
