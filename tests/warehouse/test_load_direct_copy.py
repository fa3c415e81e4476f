"""PostgreSQL's direct-COPY path of ``load_chunk``: same rows and counts as the upsert."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from schemas.tables import products, purchase_order_lines
from warehouse.backends.postgres import KEY_SAMPLE
from warehouse.canonical import content_hashes
from warehouse.db import create_warehouse_engine
from warehouse.load import load_chunk

T1 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
T2 = datetime(2025, 1, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def pg_engine(pg_url: str, migrated: Callable[[str], sa.Engine]) -> sa.Engine:
    return migrated(pg_url)


def _stored(engine: sa.Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(products).order_by(products.c.sku)).mappings().all()
    return pd.DataFrame([dict(r) for r in rows])


def test_sessions_run_in_utc_whatever_zone_the_server_defaults_to(pg_url: str) -> None:
    # A server (or role) configured for another zone hands it to every new session.
    engine = create_warehouse_engine(
        pg_url, connect_args={"options": "-c TimeZone=America/Chicago"}
    )
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW TimeZone").scalar_one() == "UTC"
            conn.rollback()  # the zone was set for the session, not one transaction
            assert conn.exec_driver_sql("SHOW TimeZone").scalar_one() == "UTC"
    finally:
        engine.dispose()


def test_new_rows_copied_directly_read_back_in_utc_whatever_the_server_zone(
    pg_url: str,
    migrated: Callable[[str], sa.Engine],
    make_products: Callable[..., pd.DataFrame],
) -> None:
    migrated(pg_url)
    frame = make_products(30)
    engine = create_warehouse_engine(
        pg_url, connect_args={"options": "-c TimeZone=America/Chicago"}
    )
    try:
        with engine.begin() as conn:
            counts = load_chunk(conn, products, frame, synced_at=T1)
    finally:
        engine.dispose()
    pg_engine = migrated(pg_url)

    assert (counts.inserted, counts.updated, counts.unchanged) == (30, 0, 0)
    stored = _stored(pg_engine)
    expected = frame.sort_values("sku").reset_index(drop=True)
    assert list(stored["created_at"]) == list(expected["created_at"])
    assert list(stored["last_updated_at"]) == list(expected["last_updated_at"])
    assert set(stored["synced_at"]) == {T1}
    assert stored["deleted_at"].isna().all()
    assert list(stored["content_hash"]) == list(content_hashes(products, expected))


def test_a_stored_key_the_sample_misses_falls_back_to_the_upsert(
    pg_engine: sa.Engine, make_products: Callable[..., pd.DataFrame]
) -> None:
    frame = make_products(10 * KEY_SAMPLE)
    # Row 1 is never among the sampled keys (they are spread from the first to the last).
    with pg_engine.begin() as conn:
        load_chunk(conn, products, frame.iloc[[1]], synced_at=T1)
    changed = frame.copy()
    changed.loc[1, "name"] = "renamed"

    with pg_engine.begin() as conn:
        counts = load_chunk(conn, products, changed, synced_at=T2)

    assert (counts.inserted, counts.updated, counts.unchanged) == (len(frame) - 1, 1, 0)
    stored = _stored(pg_engine).set_index("sku")
    assert len(stored) == len(frame)
    assert stored.at[frame.at[1, "sku"], "name"] == "renamed"
    assert set(stored["synced_at"]) == {T2}


def test_a_failed_direct_copy_leaves_the_callers_earlier_writes_in_place(
    pg_engine: sa.Engine, make_products: Callable[..., pd.DataFrame]
) -> None:
    frame = make_products(10 * KEY_SAMPLE)
    with pg_engine.begin() as conn:
        load_chunk(conn, products, frame.iloc[[1]], synced_at=T1)
    with pg_engine.begin() as conn:
        # Written in the same transaction before the chunk whose direct COPY conflicts.
        first = load_chunk(conn, products, make_products(3, start=5000), synced_at=T2)
        second = load_chunk(conn, products, frame, synced_at=T2)

    assert first.inserted == 3
    assert (second.inserted, second.updated, second.unchanged) == (len(frame) - 1, 0, 1)
    assert len(_stored(pg_engine)) == len(frame) + 3


def test_composite_integer_keys_take_the_direct_path_and_then_the_upsert(
    pg_engine: sa.Engine, make_po_lines: Callable[[int, int], pd.DataFrame]
) -> None:
    lines = make_po_lines(20, 3)
    with pg_engine.begin() as conn:
        first = load_chunk(conn, purchase_order_lines, lines, synced_at=T1)
    with pg_engine.begin() as conn:
        again = load_chunk(conn, purchase_order_lines, lines, synced_at=T2)

    assert (first.inserted, first.updated) == (len(lines), 0)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, len(lines))
