"""The lock holds, or the run stops: an entity run writes on the connection holding its lock.

On real PostgreSQL: while a run is loading, the test terminates the database backend that
holds the entity's lock and at once starts a second run. The first run must stop (its
connection, lock and writes die together), record the lost connection as its error, and
never write again; the second run takes the lock and leaves the warehouse exact.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from pipeline_e2e_support import (
    expected_warehouse,
    finale_settings,
    read_source,
    run_sync,
    warehouse_rows,
)

from connectors.finale import FinaleClient
from pipeline.entities import ENTITIES
from pipeline.sync import EntitySync, SyncOptions
from sandbox.server import SandboxHandle
from schemas import tables
from warehouse.db import create_warehouse_engine
from warehouse.locks import entity_lock
from warehouse.migrate import upgrade

pytestmark = pytest.mark.slow


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[sa.Engine]:
    upgrade(pg_url)
    engine = create_warehouse_engine(pg_url)
    yield engine
    engine.dispose()


def _locked_run(
    engine: sa.Engine, handle: SandboxHandle, run_id: str, *, wait: float, outcome: dict[str, Any]
) -> None:
    """One products run as the flow does it: under the lock, on the lock's connection."""
    options = SyncOptions(mode="full", chunk_size=100, tz=handle.config.timezone)
    try:
        with (
            entity_lock(engine, "products", wait_seconds=wait, poll_seconds=0.05) as conn,
            FinaleClient(finale_settings(handle)) as client,
            EntitySync(
                ENTITIES["products"], client, engine, run_id=run_id, options=options, conn=conn
            ) as sync,
        ):
            outcome["pid"] = conn.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
            outcome["locked"].set()
            for chunk in sync.chunks():
                sync.process(chunk)
                outcome["chunks"] = outcome.get("chunks", 0) + 1
            outcome["result"] = sync.finish()
    except BaseException as exc:  # handed to the test
        outcome["error"] = exc


def test_a_run_whose_lock_connection_dies_stops_and_a_second_run_takes_over(
    pg_engine: sa.Engine, make_sandbox: Any
) -> None:
    # Slow pages (0.5 s each, 100 records) keep the first run loading for ~5 s.
    handle = make_sandbox(products=1000, faults="slow:1.0")
    run_sync(pg_engine, handle, entities=["facilities", "vendors"])
    first: dict[str, Any] = {"locked": threading.Event()}
    worker = threading.Thread(
        target=_locked_run, args=(pg_engine, handle, "first"), kwargs={"wait": 0, "outcome": first}
    )
    worker.start()
    assert first["locked"].wait(30), first.get("error")
    with pg_engine.connect() as admin:
        # Wait until the first run has committed a chunk, then cut its connection.
        for _ in range(600):
            extracted = admin.execute(
                sa.select(tables.sync_runs.c.extracted).where(tables.sync_runs.c.run_id == "first")
            ).scalar()
            if extracted:
                break
            threading.Event().wait(0.05)
        assert extracted, "the first run committed nothing"
        admin.execute(sa.select(sa.func.pg_terminate_backend(first["pid"])))
        admin.commit()

    second: dict[str, Any] = {"locked": threading.Event()}
    _locked_run(pg_engine, handle, "second", wait=30, outcome=second)
    worker.join(60)

    # The first run stopped on the lost connection, and says so everywhere.
    error = first.get("error")
    assert isinstance(error, sa.exc.OperationalError), first
    assert "terminat" in str(error)
    assert "result" not in first
    with pg_engine.connect() as conn:
        runs = {
            row.run_id: row
            for row in conn.execute(
                sa.select(tables.sync_runs).where(tables.sync_runs.c.entity == "products")
            )
        }
    assert runs["first"].status == "failed"
    assert "OperationalError" in runs["first"].error and "terminat" in runs["first"].error
    assert "staging" not in runs["first"].error and "does not exist" not in runs["first"].error
    # The second run had the lock alone and left the warehouse exact.
    assert "error" not in second, second.get("error")
    assert second["result"].status == "succeeded"
    assert runs["second"].started_at >= runs["first"].started_at
    source = read_source(handle)
    with pg_engine.connect() as conn:
        assert warehouse_rows(conn, "products") == expected_warehouse(source).rows["products"]


def test_the_lock_connection_is_the_runs_and_is_released_after(pg_engine: sa.Engine) -> None:
    with entity_lock(pg_engine, "stock") as conn:
        assert conn is not None
        with conn.begin():
            conn.execute(sa.text("CREATE TEMP TABLE t (x int)"))
        with pg_engine.connect() as other:
            key_held = other.execute(
                sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
            ).scalar_one()
        assert key_held >= 1
    with entity_lock(pg_engine, "stock"):  # released: taken again at once
        pass
