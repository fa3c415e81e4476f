"""``load_chunk``: inserts, changed-only updates, duplicates, exact values, atomicity."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa

from schemas.tables import products, purchase_order_lines, purchase_orders
from warehouse.canonical import content_hashes
from warehouse.load import LoadCounts, load_chunk
from warehouse.state import get_watermark, set_watermark

T1 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
T2 = datetime(2025, 1, 2, 12, 0, tzinfo=UTC)
T3 = datetime(2025, 1, 3, 12, 0, tzinfo=UTC)


def _rows(engine: sa.Engine, table: sa.Table) -> dict[tuple[object, ...], dict[str, object]]:
    keys = [c.name for c in table.primary_key.columns]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table)).mappings().all()
    return {tuple(r[k] for k in keys): dict(r) for r in rows}


def test_first_load_inserts_every_row_with_its_hash(
    engine: sa.Engine, make_products: Callable[..., pd.DataFrame]
) -> None:
    frame = make_products(50)
    with engine.begin() as conn:
        counts = load_chunk(conn, products, frame, synced_at=T1)

    assert (counts.inserted, counts.updated, counts.unchanged) == (50, 0, 0)
    stored = _rows(engine, products)
    assert len(stored) == 50
    expected_hashes = dict(zip(frame["sku"], content_hashes(products, frame), strict=True))
    assert {k[0]: r["content_hash"] for k, r in stored.items()} == expected_hashes
    assert {r["synced_at"] for r in stored.values()} == {T1}
    assert {r["deleted_at"] for r in stored.values()} == {None}


def test_reloading_the_same_rows_writes_nothing(
    engine: sa.Engine, make_products: Callable[..., pd.DataFrame]
) -> None:
    frame = make_products(40)
    with engine.begin() as conn:
        load_chunk(conn, products, frame, synced_at=T1)
    versions_before = _row_versions(engine)
    # The same content in other dtypes: floats as Decimals, timestamps in another zone.
    again = frame.assign(
        cost=[Decimal(str(v)) for v in frame["cost"]],
        created_at=frame["created_at"].dt.tz_convert("America/Chicago"),
    )
    with engine.begin() as conn:
        counts = load_chunk(conn, products, again, synced_at=T2)

    assert (counts.inserted, counts.updated, counts.unchanged) == (0, 0, 40)
    assert {r["synced_at"] for r in _rows(engine, products).values()} == {T1}
    # On PostgreSQL even a same-value UPDATE would leave a new row version (xmin): none did.
    assert _row_versions(engine) == versions_before


def _row_versions(engine: sa.Engine) -> dict[str, str] | None:
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT sku, xmin::text FROM products")).tuples().all())


def test_only_the_changed_row_is_updated(
    engine: sa.Engine, make_products: Callable[..., pd.DataFrame]
) -> None:
    frame = make_products(30)
    with engine.begin() as conn:
        load_chunk(conn, products, frame, synced_at=T1)
    changed = frame.copy()
    changed.loc[7, "cost"] = 999.99
    with engine.begin() as conn:
        counts = load_chunk(conn, products, changed, synced_at=T2)

    assert (counts.inserted, counts.updated, counts.unchanged) == (0, 1, 29)
    stored = _rows(engine, products)
    touched = {k[0] for k, r in stored.items() if r["synced_at"] == T2}
    assert touched == {frame.loc[7, "sku"]}
    assert stored[(frame.loc[7, "sku"],)]["cost"] == Decimal("999.9900")


def test_duplicate_keys_in_a_chunk_last_one_wins(
    engine: sa.Engine, make_products: Callable[..., pd.DataFrame]
) -> None:
    frame = make_products(5)
    later = frame.iloc[[1, 3]].assign(name=["second B", "second D"])
    chunk = pd.concat([frame, later], ignore_index=True)
    with engine.begin() as conn:
        counts = load_chunk(conn, products, chunk, synced_at=T1)

    assert counts == LoadCounts(inserted=5, unchanged=2, duplicates=2, checksum=counts.checksum)
    assert counts.rows == 7
    names = {k[0]: r["name"] for k, r in _rows(engine, products).items()}
    assert names[frame.loc[1, "sku"]] == "second B"
    assert names[frame.loc[3, "sku"]] == "second D"
    assert names[frame.loc[0, "sku"]] == frame.loc[0, "name"]


def test_values_round_trip_exactly(engine: sa.Engine) -> None:
    plus_five = timezone(timedelta(hours=5, minutes=30))
    frame = pd.DataFrame(
        {
            "sku": ["ÜNÎ-1", "tab\there", "back\\slash\nnewline"],
            "finale_url": ["/acme/api/product/1", "/u/2", "/u/3"],
            "name": ["Crème brûlée 🍮", "", None],
            "status": ["PRODUCT_ACTIVE", None, "PRODUCT_INACTIVE"],
            "category": [None, "\\N", "日本語"],
            "cost": [Decimal("12345678901.2345"), Decimal("-0.0001"), None],
            "primary_vendor_party_id": [None, None, "V1"],
            "reorder_point": [0.1, 1.5, 1e-5],
            "reorder_quantity": ["7", None, "-3.25"],
            "created_at": [
                datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=plus_five),
                None,
                pd.Timestamp("1999-12-31T23:00:00-01:00"),
            ],
            "last_updated_at": pd.to_datetime(
                ["2025-01-01T00:00:00.000001Z", None, "2030-06-30T12:00:00Z"],
                utc=True,
                format="ISO8601",
            ),
        }
    )
    with engine.begin() as conn:
        load_chunk(conn, products, frame, synced_at=T1)

    stored = _rows(engine, products)
    first, second, third = (stored[(k,)] for k in frame["sku"])
    assert first["name"] == "Crème brûlée 🍮"
    assert first["category"] is None
    assert first["cost"] == Decimal("12345678901.2345")
    assert first["reorder_point"] == Decimal("0.1000")
    assert first["reorder_quantity"] == Decimal("7.0000")
    assert first["created_at"] == datetime(2024, 2, 29, 18, 29, 59, 999999, tzinfo=UTC)
    assert first["created_at"].tzinfo == UTC
    assert first["last_updated_at"] == datetime(2025, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    assert second["name"] == ""  # empty string is not NULL
    assert second["status"] is None
    assert second["category"] == "\\N"  # the NULL token as text stays text
    assert second["cost"] == Decimal("-0.0001")
    assert second["created_at"] is None
    assert third["name"] is None
    assert third["category"] == "日本語"
    assert third["reorder_point"] == Decimal("0.0000")  # 1e-5 rounds to the column's scale
    assert third["reorder_quantity"] == Decimal("-3.2500")
    assert third["created_at"] == datetime(2000, 1, 1, 0, 0, tzinfo=UTC)
    # What was stored hashes like what was loaded: a reload changes nothing.
    with engine.begin() as conn:
        counts = load_chunk(conn, products, frame, synced_at=T2)
    assert counts.unchanged == 3


def test_a_rolled_back_transaction_leaves_neither_rows_nor_watermark(
    engine: sa.Engine, make_products: Callable[..., pd.DataFrame]
) -> None:
    with pytest.raises(RuntimeError, match="crash after load"), engine.begin() as conn:
        set_watermark(conn, "products", T2, now=T2)
        load_chunk(conn, products, make_products(20), synced_at=T2)
        raise RuntimeError("crash after load")

    assert _rows(engine, products) == {}
    with engine.connect() as conn:
        assert get_watermark(conn, "products") is None


def test_a_committed_load_and_its_watermark_land_together(
    engine: sa.Engine, make_products: Callable[..., pd.DataFrame]
) -> None:
    with engine.begin() as conn:
        load_chunk(conn, products, make_products(20), synced_at=T2)
        set_watermark(conn, "products", T2, now=T2)

    assert len(_rows(engine, products)) == 20
    with engine.connect() as conn:
        assert get_watermark(conn, "products") == T2


def test_a_deleted_row_that_comes_back_is_revived(
    engine: sa.Engine, make_products: Callable[..., pd.DataFrame]
) -> None:
    frame = make_products(3)
    with engine.begin() as conn:
        load_chunk(conn, products, frame, synced_at=T1)
        conn.execute(
            sa.update(products).where(products.c.sku == frame.loc[0, "sku"]).values(deleted_at=T1)
        )
    with engine.begin() as conn:
        counts = load_chunk(conn, products, frame, synced_at=T2)

    assert (counts.inserted, counts.updated, counts.unchanged) == (0, 1, 2)
    revived = _rows(engine, products)[(frame.loc[0, "sku"],)]
    assert revived["deleted_at"] is None
    assert revived["synced_at"] == T2


def test_composite_integer_keys_load_and_reload(
    engine: sa.Engine, make_po_lines: Callable[[int, int], pd.DataFrame]
) -> None:
    lines = make_po_lines(4, 3)
    with engine.begin() as conn:
        first = load_chunk(conn, purchase_order_lines, lines, synced_at=T1)
        # line_no as float and as text: the same integer key, so nothing changes.
        second = load_chunk(
            conn, purchase_order_lines, lines.assign(line_no=lines["line_no"] * 1.0), synced_at=T2
        )
        third = load_chunk(
            conn,
            purchase_order_lines,
            lines.assign(line_no=lines["line_no"].astype(str)),
            synced_at=T2,
        )

    assert (first.inserted, second.unchanged, third.unchanged) == (12, 12, 12)
    stored = _rows(engine, purchase_order_lines)
    assert ("PO-2", 3) in stored
    assert stored[("PO-2", 3)]["quantity"] == Decimal("4.5000")
    assert stored[("PO-2", 3)]["unit_price"] == Decimal("9.9900")


def test_an_empty_chunk_does_nothing(engine: sa.Engine) -> None:
    empty = pd.DataFrame(
        {
            c.name: []
            for c in purchase_orders.columns
            if c.name not in ("content_hash", "deleted_at", "synced_at")
        }
    )
    with engine.begin() as conn:
        counts = load_chunk(conn, purchase_orders, empty, synced_at=T1)
    assert counts.rows == 0
    assert _rows(engine, purchase_orders) == {}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"extra": 1}, "unexpected", id="extra-column"),
        pytest.param({"sku": None}, "primary-key column has null", id="null-key"),
        pytest.param({"created_at": datetime(2024, 1, 1)}, "naive timestamp", id="naive-timestamp"),
        pytest.param({"created_at": "2024-01-01"}, "naive timestamp", id="date-only-text"),
        pytest.param({"created_at": "2024-01-01 10:00"}, "naive timestamp", id="naive-text"),
        pytest.param({"cost": 1e15}, "does not fit", id="numeric-overflow"),
        pytest.param({"cost": "abc"}, "not a number", id="not-a-number"),
        pytest.param({"name": "nul\x00byte"}, "NUL", id="nul-in-text"),
    ],
)
def test_bad_frames_are_refused_before_anything_is_written(
    engine: sa.Engine,
    make_products: Callable[..., pd.DataFrame],
    change: dict[str, object],
    message: str,
) -> None:
    frame = make_products(3)
    for column, value in change.items():
        frame[column] = [value] * len(frame) if column != "sku" else [None, "A", "B"]
    with pytest.raises(ValueError, match=message), engine.begin() as conn:
        load_chunk(conn, products, frame, synced_at=T1)
    assert _rows(engine, products) == {}


def test_naive_synced_at_is_refused(
    engine: sa.Engine, make_products: Callable[..., pd.DataFrame]
) -> None:
    with pytest.raises(ValueError, match="timezone-aware"), engine.begin() as conn:
        load_chunk(conn, products, make_products(1), synced_at=datetime(2025, 1, 1))


def test_staging_never_touches_a_real_table_with_a_staging_name(
    engine: sa.Engine, make_products: Callable[..., pd.DataFrame]
) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE _stage_products (x INTEGER)")
        conn.exec_driver_sql("CREATE TABLE _keys_products (x INTEGER)")
        conn.exec_driver_sql("INSERT INTO _stage_products VALUES (1)")
    with engine.begin() as conn:
        load_chunk(conn, products, make_products(5), synced_at=T1)
        load_chunk(conn, products, make_products(5), synced_at=T2)

    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT x FROM _stage_products").all() == [(1,)]
        assert conn.exec_driver_sql("SELECT count(*) FROM _keys_products").scalar() == 0
    assert len(_rows(engine, products)) == 5
