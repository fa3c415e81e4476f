"""Exactly once across a SIGKILL, on PostgreSQL and SQLite.

A full sync runs in a real child process against a slowed-down sandbox and is killed with
SIGKILL once some chunks have committed. What it committed must be whole (rows, quarantine
records and the run's counters agree), the next run must finish the job without
re-inserting anything, and the warehouse must then equal the source: no duplicates, no
gaps, sane watermarks. A further incremental run over an unchanged source writes nothing.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from pipeline_e2e_support import (
    assert_quarantine_matches,
    assert_warehouse_matches,
    child_env,
    expected_warehouse,
    live_count,
    quarantine_rows,
    read_source,
    run_rows,
    run_sync,
    synced_at,
    warehouse_rows,
    watermarks,
)

from pipeline.entities import ENTITIES
from sandbox.control import SandboxControl
from sandbox.server import SandboxHandle
from schemas import tables
from warehouse import state

pytestmark = pytest.mark.slow

#: The child: the sync engine driven the way the flow's tasks drive it, settings from the
#: environment, every entity in dependency order.
CHILD = """
import sys
from connectors.finale import FinaleClient
from invsync.settings import load_settings
from pipeline.entities import ENTITIES
from pipeline.sync import EntitySync, SyncOptions
from warehouse.db import create_warehouse_engine

settings = load_settings()
engine = create_warehouse_engine(settings.warehouse_url)
options = SyncOptions(
    mode="full",
    chunk_size=settings.sync_chunk_size,
    quarantine_fail_ratio=settings.quarantine_fail_ratio,
)
for spec in ENTITIES.values():
    with (
        FinaleClient(settings.finale()) as client,
        EntitySync(spec, client, engine, run_id=sys.argv[1], options=options) as sync,
    ):
        for chunk in sync.chunks():
            sync.process(chunk)
        sync.finish()
"""

CHUNK = 50
#: Kill once this many products have committed (3 of 20 chunks).
KILL_AFTER = 150


def wait_for_products(
    engine: sa.Engine, run_id: str, child: subprocess.Popen[bytes], timeout: float = 90.0
) -> None:
    """Block until the child's products run has committed ``KILL_AFTER`` records."""
    deadline = time.monotonic() + timeout
    runs = tables.sync_runs
    query = sa.select(runs.c.extracted).where(runs.c.run_id == run_id, runs.c.entity == "products")
    while time.monotonic() < deadline:
        if child.poll() is not None:
            _, err = child.communicate()
            raise AssertionError(f"the child ended early ({child.returncode}): {err[-2000:]!r}")
        with engine.connect() as conn:
            extracted = conn.execute(query).scalar_one_or_none()
        if extracted is not None and extracted >= KILL_AFTER:
            return
        time.sleep(0.05)
    raise AssertionError("the child committed no products in time")


def test_sync_killed_mid_run_resumes_exactly_once(
    engine: sa.Engine,
    warehouse_url: str,
    make_sandbox: Callable[..., SandboxHandle],
    tmp_path: Path,
) -> None:
    sandbox: SandboxHandle = make_sandbox(faults="slow:1.0")
    killed_run = "killed-run"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, killed_run],
        env=child_env(
            sandbox, warehouse_url, SYNC_CHUNK_SIZE=str(CHUNK), QUARANTINE_FAIL_RATIO="0.5"
        ),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_products(engine, killed_run, child)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    with SandboxControl(sandbox.base_url) as control:
        control.set_faults("")
    source = read_source(sandbox)
    expected = expected_warehouse(source)

    # What the killed run committed is whole: its rows, its quarantine records and its
    # counters moved together, and the watermark did not move past unread records.
    with engine.connect() as conn:
        killed = run_rows(conn, killed_run)
        committed = warehouse_rows(conn, "products")
        quarantined = [q for q in quarantine_rows(conn, killed_run) if q["entity"] == "products"]
        marks = watermarks(conn)
    products = killed["products"]
    assert products["status"] == "running", "nobody could record the end of a killed run"
    assert len(committed) == products["inserted"] >= KILL_AFTER - len(quarantined)
    assert len(quarantined) == products["quarantined"]
    assert products["extracted"] == products["inserted"] + products["quarantined"]
    assert products["extracted"] < expected.extracted["products"], "killed before the end"
    assert products["extracted"] % CHUNK == 0, "only whole chunks commit"
    assert all(expected.rows["products"][key] == row for key, row in committed.items())
    assert marks.get("products") is None
    assert {killed[e]["status"] for e in ("facilities", "vendors")} == {"succeeded"}
    assert set(killed) == {"facilities", "vendors", "products"}

    started = datetime.now(UTC)
    resumed = run_sync(engine, sandbox)
    finished = datetime.now(UTC)

    result = resumed.results["products"]
    assert result.unchanged == len(committed), "rows committed before the kill are not rewritten"
    assert result.inserted == len(expected.rows["products"]) - len(committed)
    assert result.updated == 0 and result.balanced
    assert result.extracted == expected.extracted["products"]
    for entity in ("facilities", "vendors"):
        assert resumed.results[entity].extracted == 0, "finished entities resume incrementally"
    for entity in ("stock", "purchase_orders"):
        assert resumed.results[entity].inserted == expected.loaded_count(entity)
    with engine.connect() as conn:
        assert_warehouse_matches(conn, expected)
        assert_quarantine_matches(
            conn, resumed.run_id, expected, source, ["products", "stock", "purchase_orders"]
        )
        for entity in ENTITIES:
            assert live_count(conn, _table(entity)) == len(expected.rows[entity])
        marks = watermarks(conn)
        recorded = run_rows(conn, resumed.run_id)
        newest = {
            e: conn.execute(sa.select(sa.func.max(_table(e).c.last_updated_at))).scalar_one()
            for e in ("facilities", "vendors", "products", "purchase_orders")
        }
        stamps = synced_at(conn)
    assert set(marks) == {"facilities", "vendors", "products", "purchase_orders"}
    assert started <= marks["products"] <= finished
    assert marks["products"] == recorded["products"]["watermark_after"]
    for entity, newest_update in newest.items():
        assert newest_update <= marks[entity] <= finished, entity

    quiet = run_sync(engine, sandbox)

    for entity, outcome in quiet.results.items():
        assert (outcome.inserted, outcome.updated) == (0, 0), entity
    with engine.connect() as conn:
        assert synced_at(conn) == stamps, "a run over an unchanged source rewrote rows"

    # The killed run is still 'running'; the stale-run sweep is what closes it.
    with engine.begin() as conn:
        closed = state.mark_stale_runs(conn, timedelta(0), datetime.now(UTC))
        statuses = {e: r["status"] for e, r in run_rows(conn, killed_run).items()}
    assert closed == 1
    assert statuses["products"] == state.STALE


def _table(entity: str) -> sa.Table:
    return ENTITIES[entity].table
