"""Watermarks, the run log and quarantine, as stored in the database."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from schemas.tables import quarantine, sync_runs, sync_state
from warehouse import runs, state

T0 = datetime(2025, 1, 1, 0, 0, tzinfo=UTC)


def _state_row(engine: sa.Engine, entity: str) -> dict[str, object]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(sync_state).where(sync_state.c.entity == entity)).mappings()
        return dict(row.one())


def _run_row(engine: sa.Engine, run_id: str, entity: str) -> runs.RunRecord:
    with engine.connect() as conn:
        run = runs.get_run(conn, run_id, entity)
    assert run is not None
    return run


def test_the_watermark_never_moves_backwards_unless_forced(engine: sa.Engine) -> None:
    later, earlier = T0 + timedelta(days=2), T0 + timedelta(days=1)
    with engine.begin() as conn:
        assert state.get_watermark(conn, "products") is None
        assert state.set_watermark(conn, "products", later, now=T0) == later
    with engine.begin() as conn:
        assert state.set_watermark(conn, "products", earlier, now=T0 + timedelta(hours=1)) == later
    assert _state_row(engine, "products") == {
        "entity": "products",
        "watermark": later,
        "updated_at": T0,  # the refused move left the row alone
        "synced_at": T0,
    }

    forced_at = T0 + timedelta(hours=2)
    with engine.begin() as conn:
        state.set_watermark(conn, "products", earlier, now=forced_at, force=True)
    assert _state_row(engine, "products")["watermark"] == earlier
    assert _state_row(engine, "products")["updated_at"] == forced_at


def test_a_watermark_in_another_zone_compares_as_an_instant(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        state.set_watermark(conn, "vendors", datetime(2025, 1, 1, 12, tzinfo=UTC), now=T0)
        # 13:00+02:00 is 11:00 UTC: earlier, although its wall clock reads later.
        state.set_watermark(
            conn, "vendors", datetime(2025, 1, 1, 13, tzinfo=timezone(timedelta(hours=2))), now=T0
        )
    assert _state_row(engine, "vendors")["watermark"] == datetime(2025, 1, 1, 12, tzinfo=UTC)


def test_a_run_is_started_counted_and_finished(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        state.set_watermark(conn, "products", T0, now=T0)
        run_pk = runs.start_run(conn, "run-1", "flow-1", "products", "incremental", T0)
    with engine.begin() as conn:
        runs.add_run_counts(conn, "run-1", "products", extracted=10, inserted=7, unchanged=3)
    with engine.begin() as conn:
        runs.add_run_counts(conn, "run-1", "products", extracted=5, updated=5, quarantined=0)
    finished = T0 + timedelta(minutes=3)
    with engine.begin() as conn:
        runs.finish_run(
            conn,
            "run-1",
            "products",
            runs.SUCCEEDED,
            finished_at=finished,
            watermark_after=finished,
            source_count=15,
            warehouse_count=15,
            source_checksum="00000000000000ff",
            warehouse_checksum="00000000000000ff",
        )

    run = _run_row(engine, "run-1", "products")
    with engine.connect() as conn:
        pk = sa.select(sync_runs.c.id).where(sync_runs.c.run_id == "run-1")
        assert conn.execute(pk).scalar_one() == run_pk
    assert {
        k: getattr(run, k) for k in ("extracted", "inserted", "updated", "unchanged", "deleted")
    } == {
        "extracted": 15,
        "inserted": 7,
        "updated": 5,
        "unchanged": 3,
        "deleted": 0,
    }
    assert (run.status, run.started_at, run.finished_at) == ("succeeded", T0, finished)
    assert (run.watermark_before, run.watermark_after) == (T0, finished)
    assert (run.flow_run_id, run.mode, run.error) == ("flow-1", "incremental", None)
    assert run.source_checksum == run.warehouse_checksum == "00000000000000ff"


def test_finish_run_takes_final_totals_and_errors(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        runs.start_run(conn, "run-2", None, "stock", "full", T0)
        runs.add_run_counts(conn, "run-2", "stock", inserted=1)
        runs.finish_run(
            conn,
            "run-2",
            "stock",
            runs.FAILED,
            error="x" * (runs.MAX_ERROR_CHARS + 500),
            finished_at=T0,
            inserted=np.int64(40),
            deleted=None,
        )
    run = _run_row(engine, "run-2", "stock")
    assert (run.status, run.inserted, run.deleted) == ("failed", 40, 0)
    error = run.error
    assert isinstance(error, str)
    assert len(error) <= runs.MAX_ERROR_CHARS
    kept, _, marker = error.partition("... [")
    assert len(kept) + int(marker.split()[0]) == runs.MAX_ERROR_CHARS + 500


def test_restarting_a_run_reuses_its_row(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        first = runs.start_run(conn, "run-3", "flow-a", "vendors", "full", T0)
        runs.add_run_counts(conn, "run-3", "vendors", inserted=2)
        runs.finish_run(conn, "run-3", "vendors", runs.FAILED, "boom", finished_at=T0)
    retry_at = T0 + timedelta(minutes=10)
    with engine.begin() as conn:
        again = runs.start_run(conn, "run-3", "flow-b", "vendors", "full", retry_at)

    run = _run_row(engine, "run-3", "vendors")
    assert again == first
    assert (run.status, run.error, run.finished_at) == ("running", None, None)
    assert (run.started_at, run.flow_run_id, run.inserted) == (retry_at, "flow-b", 2)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sync_runs)).scalar() == 1


@pytest.mark.parametrize(
    ("call", "error"),
    [
        pytest.param(lambda c: runs.add_run_counts(c, "r", "e", bogus=1), ValueError, id="bogus"),
        pytest.param(
            lambda c: runs.add_run_counts(c, "r", "e", inserted=-1), ValueError, id="negative"
        ),
        pytest.param(
            lambda c: runs.add_run_counts(c, "nope", "e", inserted=1),
            LookupError,
            id="unknown-run",
        ),
        pytest.param(
            lambda c: runs.finish_run(c, "r", "e", "done", finished_at=T0),
            ValueError,
            id="bad-status",
        ),
        pytest.param(
            lambda c: runs.finish_run(c, "nope", "e", "failed", finished_at=T0),
            LookupError,
            id="finish-unknown-run",
        ),
    ],
)
def test_bad_run_updates_are_refused(engine: sa.Engine, call, error: type[Exception]) -> None:
    with engine.begin() as conn:
        runs.start_run(conn, "r", None, "e", "full", T0)
    with pytest.raises(error), engine.begin() as conn:
        call(conn)
    run = _run_row(engine, "r", "e")
    assert (run.status, run.inserted) == ("running", 0)


def test_runs_left_running_too_long_are_marked_stale(engine: sa.Engine) -> None:
    now = T0 + timedelta(hours=10)
    with engine.begin() as conn:
        runs.start_run(conn, "old", None, "products", "full", T0)
        runs.start_run(conn, "recent", None, "vendors", "full", now - timedelta(minutes=30))
        runs.start_run(conn, "done", None, "stock", "full", T0)
        runs.finish_run(conn, "done", "stock", runs.SUCCEEDED, finished_at=T0)
    with engine.begin() as conn:
        marked = runs.mark_stale_runs(conn, timedelta(hours=2), now)

    assert marked == 1
    old = _run_row(engine, "old", "products")
    assert (old.status, old.finished_at) == ("stale", now)
    assert "still running" in str(old.error)
    assert _run_row(engine, "recent", "vendors").status == "running"
    assert _run_row(engine, "done", "stock").status == "succeeded"


def test_latest_runs_has_the_newest_run_per_entity(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        runs.start_run(conn, "a1", None, "products", "full", T0)
        runs.start_run(conn, "a2", None, "products", "incremental", T0 + timedelta(hours=1))
        runs.start_run(conn, "b1", None, "vendors", "full", T0)
        runs.start_run(conn, "b2", None, "vendors", "full", T0)  # same start: higher id wins
    with engine.connect() as conn:
        latest = runs.latest_runs(conn)
    assert [(r.entity, r.run_id) for r in latest] == [("products", "a2"), ("vendors", "b2")]


def test_running_rows_of_a_dead_flow_run_are_marked_crashed(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        runs.start_run(conn, "dead", "flow-dead", "products", "full", T0)
        runs.start_run(conn, "dead", "flow-dead", "vendors", "full", T0)
        runs.start_run(conn, "other", "flow-other", "stock", "full", T0)
        runs.start_run(conn, "done", "flow-done", "facilities", "full", T0)
        runs.finish_run(conn, "done", "facilities", runs.SUCCEEDED, finished_at=T0)
        running = runs.running_runs(conn)
    assert sorted((entity, flow) for _, entity, flow in running) == [
        ("products", "flow-dead"),
        ("stock", "flow-other"),
        ("vendors", "flow-dead"),
    ]
    stock_row = next(row_id for row_id, entity, _ in running if entity == "stock")
    later = T0 + timedelta(hours=1)

    with engine.begin() as conn:
        by_run = runs.mark_crashed(conn, "flow run crashed: oom", now=later, run_id="dead")
        by_row = runs.mark_crashed(conn, "crashed: gone", now=later, row_id=stock_row)
        again = runs.mark_crashed(conn, "crashed: twice", now=later, row_id=stock_row)

    assert (by_run, by_row, again) == (2, 1, 0)
    for run_id, entity, error in [
        ("dead", "products", "flow run crashed: oom"),
        ("dead", "vendors", "flow run crashed: oom"),
        ("other", "stock", "crashed: gone"),
    ]:
        row = _run_row(engine, run_id, entity)
        assert (row.status, row.finished_at, row.error) == ("crashed", later, error)
    assert _run_row(engine, "done", "facilities").status == "succeeded"


def test_finished_runs_are_read_newest_first_and_by_status(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        assert runs.count_finished_runs(conn, "products") == 0
        assert runs.last_finished_run(conn, "products") is None
        for i, status in enumerate([runs.SUCCEEDED, runs.DEGRADED, runs.FAILED]):
            at = T0 + timedelta(hours=i)
            runs.start_run(conn, f"r{i}", None, "products", "incremental", at)
            runs.finish_run(conn, f"r{i}", "products", status, finished_at=at)
        runs.start_run(conn, "r3", None, "products", "incremental", T0 + timedelta(hours=3))

        assert runs.count_finished_runs(conn, "products") == 3
        latest = runs.last_finished_run(conn, "products")
        loaded = runs.last_finished_run(conn, "products", runs.LOADED_STATUSES)
        since = runs.runs_started_since(conn, "products", T0 + timedelta(hours=1))

    assert latest is not None and (latest.run_id, latest.status) == ("r2", "failed")
    assert loaded is not None and (loaded.run_id, loaded.status) == ("r1", "degraded")
    assert [r.run_id for r in since] == ["r1", "r2", "r3"]
    # StrEnum: the stored text and the enum compare equal both ways.
    assert latest.status == runs.RunStatus.FAILED and isinstance(latest.status, str)


def test_quarantine_payloads_are_stored_as_plain_json(engine: sa.Engine) -> None:
    payload = {
        "productId": "SKU-9",
        "cost": float("nan"),
        "price": Decimal("12.3400"),
        "count": np.int64(3),
        "ratio": np.float32(0.5),
        "missing": pd.NA,
        "when": pd.Timestamp("2025-01-02T03:04:05", tz="UTC"),
        "never": pd.NaT,
        "day": date(2025, 1, 2),
        "inf": float("inf"),
        "tags": ("a", "b"),
        "nested": {1: [np.nan, {"x": Decimal("-0.5")}]},
    }
    with engine.begin() as conn:
        stored = state.record_quarantine(
            conn,
            "run-q",
            "products",
            [
                {"source_key": "SKU-9", "reasons": ["cost: not a number", "x"], "payload": payload},
                {"source_key": float("nan"), "reasons": "no id", "payload": {"raw": None}},
            ],
            created_at=T0,
        )

    assert stored == 2
    payload_text = sa.cast(quarantine.c.payload, sa.Text)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(quarantine.c.source_key, quarantine.c.reasons, payload_text).order_by(
                quarantine.c.id
            )
        ).all()
    assert [(r[0], r[1]) for r in rows] == [("SKU-9", "cost: not a number; x"), (None, "no id")]
    assert json.loads(rows[0][2]) == {
        "productId": "SKU-9",
        "cost": None,
        "price": "12.3400",
        "count": 3,
        "ratio": 0.5,
        "missing": None,
        "when": "2025-01-02T03:04:05+00:00",
        "never": None,
        "day": "2025-01-02",
        "inf": None,
        "tags": ["a", "b"],
        "nested": {"1": [None, {"x": "-0.5"}]},
    }
    assert json.loads(rows[1][2]) == {"raw": None}


def test_a_run_is_read_back_as_a_typed_record_that_renders_to_json(engine: sa.Engine) -> None:
    finished = T0 + timedelta(seconds=90)
    with engine.begin() as conn:
        runs.start_run(conn, "run-json", "flow-1", "vendors", "full", T0)
        runs.finish_run(conn, "run-json", "vendors", "degraded", finished_at=finished, deleted=2)
        record = runs.get_run(conn, "run-json", "vendors")
    assert isinstance(record, runs.RunRecord)
    assert record.status is runs.RunStatus.DEGRADED
    assert (record.duration_ms, record.deleted, record.reconciled) == (90_000, 2, None)
    data = record.as_dict()
    assert (data["status"], data["started_at"]) == ("degraded", T0.isoformat())
    assert json.loads(json.dumps(data)) == data
