"""Migration 0003 on a warehouse that holds the 0002 quarantine: one row per read.

Duplicates collapse into one open entry per (entity, record key) (the older rows are
deleted), records without a key get the fingerprint ``record_quarantine`` gives them now,
records that loaded cleanly since are resolved, and the sync carries on from there.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import command

from schemas.tables import UTCDateTime, products, quarantine
from warehouse import state
from warehouse.db import create_warehouse_engine
from warehouse.migrate import alembic_config, upgrade

T0 = datetime(2026, 2, 1, tzinfo=UTC)
T1, T2, T3, T4 = (T0 + timedelta(days=d) for d in (1, 2, 3, 4))

#: The quarantine table as 0001/0002 left it.
OLD_QUARANTINE = sa.table(
    "quarantine",
    sa.column("run_id", sa.Text),
    sa.column("entity", sa.Text),
    sa.column("source_key", sa.Text),
    sa.column("reasons", sa.Text),
    sa.column("payload", sa.JSON),  # json.dumps text, as the first loader wrote it
    sa.column("created_at", UTCDateTime()),
    sa.column("synced_at", UTCDateTime()),
)

# (run, entity, source_key, reasons, payload, created_at), in insertion (id) order.
OLD_ROWS: list[tuple[str, str, str | None, str, Any, datetime]] = [
    ("run-1", "products", "SKU-1", "cost must be between 0 and 1e+09 (got -5.0)", {"c": -5}, T0),
    ("run-1", "products", None, "sku is missing", {"x": 1, "y": [1, 2]}, T0),
    ("run-1", "vendors", "SKU-1", "name is missing", {"partyId": "SKU-1"}, T0),
    ("run-2", "products", "SKU-1", "cost must be between 0 and 1e+09 (got -5.0)", {"c": -5}, T1),
    ("run-2", "products", None, "sku is missing", {"x": 1, "y": [1, 2]}, T1),
    ("run-2", "products", None, "sku is missing", {"x": 2}, T1),
    ("run-2", "products", "SKU-3", "name is missing", {"s": 3}, T1),
    ("run-3", "products", "SKU-1", "cost must be between 0 and 1e+09 (got 7e12)", {"c": 7e12}, T2),
    ("run-3", "products", "SKU-4", "name is missing", {"s": 4}, T2),
    ("run-3", "vendors", "SKU-1", "name is missing", {"partyId": "SKU-1"}, T2),
]


def _seed_0002(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.insert(OLD_QUARANTINE),
            [
                dict(
                    zip(
                        ("run_id", "entity", "source_key", "reasons", "payload"),
                        row[:5],
                        strict=True,
                    )
                )
                | {"created_at": row[5], "synced_at": row[5]}
                for row in OLD_ROWS
            ],
        )
        # SKU-3 loaded cleanly after it was quarantined; SKU-4's row is older than its
        # quarantine (the bad version never loaded), so it stays open.
        for sku, synced in (("SKU-3", T3), ("SKU-4", T1)):
            conn.execute(
                sa.insert(products).values(
                    sku=sku, finale_url=f"/p/{sku}", content_hash="0" * 32, synced_at=synced
                )
            )


def _entries(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        query = sa.select(quarantine).order_by(quarantine.c.entity, quarantine.c.record_key)
        return [dict(r) for r in conn.execute(query).mappings()]


def test_upgrade_collapses_duplicates_into_open_entries(warehouse_url: str) -> None:
    upgrade(warehouse_url, "0002_backfill_windows")
    engine = create_warehouse_engine(warehouse_url)
    try:
        _seed_0002(engine)
        upgrade(warehouse_url)

        both = state.payload_key(state.payload_json({"x": 1, "y": [1, 2]}))
        two = state.payload_key(state.payload_json({"x": 2}))
        got = {
            (e["entity"], e["record_key"]): (
                e["source_key"], e["run_id"], e["times_seen"], e["first_seen_at"],
                e["last_seen_at"], e["resolved_at"], e["reasons"], e["payload"],
            )
            for e in _entries(engine)
        }  # fmt: skip
        assert got == {
            ("products", "SKU-1"): ("SKU-1", "run-3", 3, T0, T2, None,
                                    "cost must be between 0 and 1e+09 (got 7e12)", {"c": 7e12}),
            ("products", "SKU-3"): ("SKU-3", "run-2", 1, T1, T1, T3, "name is missing", {"s": 3}),
            ("products", "SKU-4"): ("SKU-4", "run-3", 1, T2, T2, None, "name is missing", {"s": 4}),
            ("products", both): (None, "run-2", 2, T0, T1, None, "sku is missing",
                                 {"x": 1, "y": [1, 2]}),
            ("products", two): (None, "run-2", 1, T1, T1, None, "sku is missing", {"x": 2}),
            ("vendors", "SKU-1"): ("SKU-1", "run-3", 2, T0, T2, None, "name is missing",
                                   {"partyId": "SKU-1"}),
        }  # fmt: skip

        # The sync carries on from the migrated entries (same keys, same fingerprints).
        with engine.begin() as conn:
            again = [
                {"source_key": "SKU-1", "reasons": "name is missing", "payload": {"c": 1}},
                {"source_key": None, "reasons": "sku is missing", "payload": {"x": 1, "y": [1, 2]}},
                {"source_key": "SKU-3", "reasons": "name is missing", "payload": {"s": 3}},
            ]
            state.record_quarantine(conn, "run-4", "products", again, T4)
        after = {
            (e["record_key"], e["resolved_at"]): e
            for e in _entries(engine)
            if e["entity"] == "products"
        }
        assert after[("SKU-1", None)]["times_seen"] == 4
        assert after[("SKU-1", None)]["first_seen_at"] == T0
        assert after[(both, None)]["times_seen"] == 3
        assert after[("SKU-3", T3)]["times_seen"] == 1, "resolved history left alone"
        assert after[("SKU-3", None)]["first_seen_at"] == T4, "failed again: a new entry"
        with engine.connect() as conn:
            assert state.count_open_quarantine(conn, "products") == 5
    finally:
        engine.dispose()


def test_downgrade_restores_the_0002_table_with_the_collapsed_rows(warehouse_url: str) -> None:
    upgrade(warehouse_url, "0002_backfill_windows")
    engine = create_warehouse_engine(warehouse_url)
    try:
        _seed_0002(engine)
        upgrade(warehouse_url)
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0002_backfill_windows")
        columns = {c["name"] for c in sa.inspect(engine).get_columns("quarantine")}
        assert columns == {
            "id", "run_id", "entity", "source_key", "reasons", "payload", "created_at",
            "synced_at",
        }  # fmt: skip
        with engine.connect() as conn:
            rows = conn.execute(sa.select(OLD_QUARANTINE.c.source_key, OLD_QUARANTINE.c.payload))
            assert len(rows.all()) == 6
        # And up again: the collapsed rows are already one per record.
        upgrade(warehouse_url)
        assert len(_entries(engine)) == 6
    finally:
        engine.dispose()


def test_stored_text_of_old_keyless_rows_differs_but_the_fingerprint_matches(
    warehouse_url: str,
) -> None:
    # The old loader wrote json.dumps text (with spaces); the fingerprint is taken over
    # the compact form record_quarantine writes, so both name the same record.
    upgrade(warehouse_url, "0002_backfill_windows")
    engine = create_warehouse_engine(warehouse_url)
    try:
        payload = {"name": "é", "n": 1.5, "list": [None, True]}
        with engine.begin() as conn:
            conn.execute(
                sa.insert(OLD_QUARANTINE).values(
                    run_id="r", entity="products", source_key=None, reasons="x",
                    payload=payload, created_at=T0, synced_at=T0,
                )
            )  # fmt: skip
            stored = conn.execute(sa.select(sa.cast(OLD_QUARANTINE.c.payload, sa.Text))).scalar()
        assert stored == json.dumps(payload)
        upgrade(warehouse_url)
        [entry] = _entries(engine)
        assert entry["record_key"] == state.payload_key(state.payload_json(payload))
    finally:
        engine.dispose()
