"""Deletions after a full read: ``mark_missing``, staged seen keys, surplus order lines."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from schemas.tables import products, purchase_order_lines
from warehouse.load import (
    add_seen_keys,
    begin_seen_keys,
    delete_surplus_lines,
    load_chunk,
    mark_missing,
)

T1 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
T2 = datetime(2025, 1, 2, 12, 0, tzinfo=UTC)
T3 = datetime(2025, 1, 3, 12, 0, tzinfo=UTC)


def _state(engine: sa.Engine, table: sa.Table) -> dict[tuple[object, ...], tuple[object, object]]:
    keys = [c.name for c in table.primary_key.columns]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table)).mappings().all()
    return {tuple(r[k] for k in keys): (r["deleted_at"], r["synced_at"]) for r in rows}


def test_rows_not_seen_in_a_full_read_are_marked_deleted(
    engine: sa.Engine, make_products: Callable[..., pd.DataFrame]
) -> None:
    frame = make_products(10)
    with engine.begin() as conn:
        load_chunk(conn, products, frame, synced_at=T1)
    seen = frame.drop(index=[2, 5])
    with engine.begin() as conn:
        deleted = mark_missing(conn, products, seen, synced_at=T2)

    assert deleted == 2
    state = _state(engine, products)
    gone = {frame.loc[i, "sku"] for i in (2, 5)}
    assert {k[0] for k, (d, _) in state.items() if d is not None} == gone
    assert {state[(sku,)] for sku in gone} == {(T2, T2)}
    # Seen rows are not touched at all.
    assert {v for k, v in state.items() if k[0] not in gone} == {(None, T1)}

    # A second full read missing the same rows does not re-stamp them.
    with engine.begin() as conn:
        assert mark_missing(conn, products, seen["sku"], synced_at=T3) == 0
    assert _state(engine, products)[(frame.loc[2, "sku"],)] == (T2, T2)


def test_keys_staged_chunk_by_chunk_survive_commits_on_the_same_connection(
    engine: sa.Engine, make_products: Callable[..., pd.DataFrame]
) -> None:
    frame = make_products(12)
    with engine.begin() as conn:
        load_chunk(conn, products, frame, synced_at=T1)

    with engine.connect() as conn:
        with conn.begin():
            begin_seen_keys(conn, products)
        for chunk in (frame.iloc[0:4], frame.iloc[4:8]):  # rows 8..11 vanish
            with conn.begin():
                add_seen_keys(conn, products, chunk)
        with conn.begin():
            # Null keys (e.g. a quarantined record without an id) are skipped.
            add_seen_keys(conn, products, pd.DataFrame({"sku": [None]}))
            deleted = mark_missing(conn, products, synced_at=T2)

    assert deleted == 4
    state = _state(engine, products)
    assert {k[0] for k, (d, _) in state.items() if d is not None} == set(frame["sku"][8:])


def test_an_empty_full_read_is_refused_unless_allowed(
    engine: sa.Engine, make_products: Callable[..., pd.DataFrame]
) -> None:
    with engine.begin() as conn:
        load_chunk(conn, products, make_products(3), synced_at=T1)
    nothing = pd.DataFrame({"sku": pd.Series([], dtype="str")})

    with pytest.raises(ValueError, match="saw no keys"), engine.begin() as conn:
        mark_missing(conn, products, nothing, synced_at=T2)
    assert {d for d, _ in _state(engine, products).values()} == {None}

    with engine.begin() as conn:
        assert mark_missing(conn, products, nothing, synced_at=T2, allow_empty=True) == 3
    assert {d for d, _ in _state(engine, products).values()} == {T2}


def test_mark_missing_on_a_composite_key(
    engine: sa.Engine, make_po_lines: Callable[[int, int], pd.DataFrame]
) -> None:
    lines = make_po_lines(3, 2)
    with engine.begin() as conn:
        load_chunk(conn, purchase_order_lines, lines, synced_at=T1)
        deleted = mark_missing(
            conn, purchase_order_lines, lines[["order_id", "line_no"]].iloc[1:], synced_at=T2
        )

    assert deleted == 1
    state = _state(engine, purchase_order_lines)
    assert [k for k, (d, _) in state.items() if d is not None] == [("PO-0", 1)]


def test_surplus_lines_of_a_shrunken_order_are_marked_deleted(
    engine: sa.Engine, make_po_lines: Callable[[int, int], pd.DataFrame]
) -> None:
    with engine.begin() as conn:
        load_chunk(conn, purchase_order_lines, make_po_lines(3, 4), synced_at=T1)
    # PO-0 now has 2 lines, PO-1 none; PO-2 is not in this chunk and keeps its lines.
    orders = pd.DataFrame({"order_id": ["PO-0", "PO-1"], "line_count": [2, None]})
    with engine.begin() as conn:
        deleted = delete_surplus_lines(conn, orders, synced_at=T2, lines_table=purchase_order_lines)

    assert deleted == 6
    state = _state(engine, purchase_order_lines)
    gone = sorted(k for k, (d, _) in state.items() if d == T2)
    assert gone == [("PO-0", 3), ("PO-0", 4)] + [("PO-1", n) for n in range(1, 5)]
    assert all(d is None for k, (d, _) in state.items() if k[0] == "PO-2")
