"""One open quarantine entry per bad record: upserted on every failure, resolved on a clean
load, reopened as a new entry when it fails again. Asserted on the stored rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from schemas.tables import quarantine
from warehouse import state

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
T1, T2, T3 = (T0 + timedelta(hours=h) for h in (1, 2, 3))


def _entries(engine: sa.Engine, entity: str = "products") -> list[dict[str, Any]]:
    with engine.connect() as conn:
        query = sa.select(quarantine).where(quarantine.c.entity == entity)
        return [dict(r) for r in conn.execute(query.order_by(quarantine.c.id)).mappings()]


def _record(key: str | None, reasons: Any, payload: Any) -> dict[str, Any]:
    return {"source_key": key, "reasons": reasons, "payload": payload}


def test_the_same_key_from_three_runs_is_one_open_entry(engine: sa.Engine) -> None:
    runs = [
        ("run-1", T0, "cost must be between 0 and 1e+09 (got -5.0)", {"cost": -5.0}),
        ("run-2", T1, "cost must be between 0 and 1e+09 (got -5.0)", {"cost": -5.0}),
        ("run-3", T2, ["cost must be between 0 and 1e+09 (got 7e12)", "name is missing"],
         {"cost": 7e12}),
    ]  # fmt: skip
    for run_id, at, reasons, payload in runs:
        with engine.begin() as conn:
            given = [_record("SKU-1", reasons, payload)]
            assert state.record_quarantine(conn, run_id, "products", given, at) == 1

    [entry] = _entries(engine)
    assert entry | {"id": None} == {
        "id": None,
        "run_id": "run-3",
        "entity": "products",
        "source_key": "SKU-1",
        "record_key": "SKU-1",
        "reasons": "cost must be between 0 and 1e+09 (got 7e12); name is missing",
        "payload": {"cost": 7e12},
        "first_seen_at": T0,
        "last_seen_at": T2,
        "times_seen": 3,
        "resolved_at": None,
        "synced_at": T2,
    }


def test_a_key_twice_in_one_call_counts_twice_and_the_last_wins(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        state.record_quarantine(conn, "run-1", "products", [_record("A", "r0", 0)], T0)
    batch = [_record("A", "r1", 1), _record("B", "r1", 1), _record("A", "r2", 2)]
    with engine.begin() as conn:
        # It returns what it was given: the run's counter counts reads, not entries.
        assert state.record_quarantine(conn, "run-2", "products", batch, T1) == 3

    by_key = {e["record_key"]: e for e in _entries(engine)}
    assert {k: (e["times_seen"], e["reasons"], e["payload"]) for k, e in by_key.items()} == {
        "A": (3, "r2", 2),
        "B": (1, "r1", 1),
    }
    assert (by_key["A"]["first_seen_at"], by_key["A"]["last_seen_at"]) == (T0, T1)
    assert (by_key["B"]["first_seen_at"], by_key["B"]["last_seen_at"]) == (T1, T1)


def test_resolved_entry_is_kept_and_a_new_failure_opens_a_new_one(engine: sa.Engine) -> None:
    bad = [_record("SKU-1", "name is missing", {"v": 1})]
    with engine.begin() as conn:
        state.record_quarantine(conn, "run-1", "products", bad, T0)
        state.record_quarantine(conn, "run-2", "products", bad, T1)
        state.record_quarantine(conn, "run-2", "products", [_record("SKU-2", "x", 2)], T1)
    with engine.begin() as conn:
        assert state.open_quarantine_keys(conn, "products") == {"SKU-1", "SKU-2"}
        # Unknown keys and keys of other entities are ignored.
        assert state.resolve_quarantine(conn, "products", ["SKU-1", "SKU-9"], T2) == 1
        assert state.resolve_quarantine(conn, "vendors", ["SKU-2"], T2) == 0
    with engine.begin() as conn:
        assert state.open_quarantine_keys(conn, "products") == {"SKU-2"}
        assert state.resolve_quarantine(conn, "products", ["SKU-1"], T3) == 0, "already"
        assert state.count_open_quarantine(conn, "products") == 1

    with engine.begin() as conn:
        later = [_record("SKU-1", "cost is not a number (got '12x')", {"v": 3})]
        state.record_quarantine(conn, "run-4", "products", later, T3)

    history = [e for e in _entries(engine) if e["record_key"] == "SKU-1"]
    assert [
        (e["run_id"], e["times_seen"], e["first_seen_at"], e["last_seen_at"], e["resolved_at"])
        for e in history
    ] == [("run-2", 2, T0, T1, T2), ("run-4", 1, T3, T3, None)]
    assert history[0]["synced_at"] == T2, "resolving writes the entry"
    assert history[0]["reasons"] == "name is missing"
    with engine.connect() as conn:
        assert state.open_quarantine_keys(conn, "products") == {"SKU-1", "SKU-2"}
        assert state.count_open_quarantine(conn, "products") == 2


def test_records_without_a_key_are_kept_once_per_payload(engine: sa.Engine) -> None:
    same = {"productUrl": "/p/1", "cost": float("nan")}
    other = {"productUrl": "/p/2"}
    with engine.begin() as conn:
        first = [_record(None, "id is missing", same), _record(None, "id is missing", other)]
        state.record_quarantine(conn, "run-1", "products", first, T0)
        # NaN key = no key; the same payload (NaN stored as null) is the same record.
        again = [{"source_key": float("nan"), "reasons": "id is missing", "payload": same}]
        state.record_quarantine(conn, "run-2", "products", again, T1)

    entries = _entries(engine)
    assert [(e["source_key"], e["times_seen"], e["payload"]) for e in entries] == [
        (None, 2, {"productUrl": "/p/1", "cost": None}),
        (None, 1, {"productUrl": "/p/2"}),
    ]
    assert [e["record_key"] for e in entries] == [
        state.payload_key(state.payload_json(same)),
        state.payload_key(state.payload_json(other)),
    ]
    assert entries[0]["record_key"].startswith("payload:")


def test_open_entries_are_per_entity(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for entity in ("products", "vendors", "products"):
            state.record_quarantine(conn, "run-1", entity, [_record("42", "x", {})], T0)
        assert state.count_open_quarantine(conn) == 2
        assert state.count_open_quarantine(conn, "products") == 1
        assert state.count_open_quarantine(conn, "stock") == 0
    assert [e["times_seen"] for e in _entries(engine, "products")] == [2]
    assert [e["times_seen"] for e in _entries(engine, "vendors")] == [1]


def test_the_database_refuses_a_second_open_entry_of_a_record(engine: sa.Engine) -> None:
    row = {
        "run_id": "r", "entity": "products", "source_key": "A", "record_key": "A",
        "reasons": "x", "payload": {}, "first_seen_at": T0, "last_seen_at": T0,
        "times_seen": 1, "synced_at": T0,
    }  # fmt: skip
    with engine.begin() as conn:
        conn.execute(sa.insert(quarantine).values(row | {"resolved_at": T1}))
        conn.execute(sa.insert(quarantine).values(row | {"resolved_at": T2}))
        conn.execute(sa.insert(quarantine).values(row))  # one open entry besides resolved ones
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.insert(quarantine).values(row))


def test_resolving_many_keys_at_once(engine: sa.Engine) -> None:
    keys = [f"SKU-{i:05d}" for i in range(1_200)]
    with engine.begin() as conn:
        records = [_record(k, "name is missing", {"i": i}) for i, k in enumerate(keys)]
        assert state.record_quarantine(conn, "run-1", "products", records, T0) == 1_200
    with engine.begin() as conn:
        clean = [*keys[100:], "NOT-QUARANTINED"]
        assert state.resolve_quarantine(conn, "products", iter(clean), T1) == 1_100
    with engine.connect() as conn:
        assert state.open_quarantine_keys(conn, "products") == set(keys[:100])


def test_a_chunk_of_known_records_updates_every_entry(engine: sa.Engine) -> None:
    records = [_record(f"K{i}", f"rule {i % 3} (got {i})", {"i": i}) for i in range(1_000)]
    for run_id, at in (("run-1", T0), ("run-2", T1)):
        with engine.begin() as conn:
            state.record_quarantine(conn, run_id, "products", records, at)
    entries = _entries(engine)
    assert len(entries) == 1_000
    assert {(e["run_id"], e["times_seen"], e["first_seen_at"], e["last_seen_at"])
            for e in entries} == {("run-2", 2, T0, T1)}  # fmt: skip
