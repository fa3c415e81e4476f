"""SYNC_PARALLEL_CHUNKS prepares chunks concurrently (``pipeline.ahead``).

The prepare step (transform, validate, render) of several chunks runs at once in the run's
thread pool; loads and commits stay in read order on the run's one connection, one
``load-chunk`` task run each. The warehouse a parallel run leaves must equal the one a
sequential run leaves, row for row and hash for hash, and the watermark must be committed as before.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from prefect import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    TaskRunFilter,
    TaskRunFilterName,
)
from prefect.client.schemas.objects import TaskRun

from flows.finale_sync import sync_entity
from pipeline.sync import Chunk, EntityRunResult, EntitySync
from sandbox.server import SandboxConfig, SandboxHandle, start_in_thread
from schemas import tables
from warehouse.db import create_warehouse_engine

PRODUCTS = 600
CHUNK_SIZE = 50
CHUNKS = PRODUCTS // CHUNK_SIZE
PARALLEL = 4


@pytest.fixture
def sandbox() -> Iterator[SandboxHandle]:
    config = SandboxConfig(port=0, products=PRODUCTS, rate_limit_per_minute=0)
    with start_in_thread(config) as handle:
        yield handle


@pytest.fixture
def sequential_url(
    warehouse_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """Another, empty database on the same backend as ``warehouse_url``."""
    if warehouse_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'sequential.db'}"
        return
    admin: sa.Engine = request.getfixturevalue("pg_admin_engine")
    name = f"invsync_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _run(monkeypatch: pytest.MonkeyPatch, url: str, parallel: int) -> tuple[EntityRunResult, UUID]:
    monkeypatch.setenv("WAREHOUSE_URL", url)
    monkeypatch.setenv("SYNC_PARALLEL_CHUNKS", str(parallel))
    state = sync_entity(entity="products", mode="full", chunk_size=CHUNK_SIZE, return_state=True)
    assert state.is_completed(), state.message
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    result: EntityRunResult = state.result()
    return result, flow_run_id


def _snapshot(url: str) -> dict[str, Any]:
    engine = create_warehouse_engine(url)
    try:
        with engine.connect() as conn:
            columns = [c for c in tables.products.c if c.name != "synced_at"]
            rows = conn.execute(sa.select(*columns).order_by(tables.products.c.sku)).all()
            quarantined = conn.execute(
                sa.select(tables.quarantine.c.source_key, tables.quarantine.c.reasons).order_by(
                    tables.quarantine.c.source_key
                )
            ).all()
            watermark = conn.execute(
                sa.select(tables.sync_state.c.watermark).where(
                    tables.sync_state.c.entity == "products"
                )
            ).scalar_one_or_none()
            run = conn.execute(sa.select(tables.sync_runs)).mappings().one()
    finally:
        engine.dispose()
    return {
        "rows": [tuple(r) for r in rows],
        "quarantined": [tuple(q) for q in quarantined],
        "watermark": watermark,
        "run": dict(run),
    }


def _load_runs(flow_run_id: UUID) -> list[TaskRun]:
    """The finished load-chunk task runs of one flow run (the API records them async)."""
    deadline = time.monotonic() + 20
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="products-chunk")),
            )
            done = [r for r in runs if r.end_time is not None]
            if len(done) >= CHUNKS or time.monotonic() > deadline:
                return done
            time.sleep(0.25)


def test_parallel_prepare_overlaps_and_loads_the_same_warehouse(
    prefect_harness: None, sandbox: SandboxHandle, warehouse_url: str, sequential_url: str,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    for key, value in sandbox.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FINALE_SHARED_RATE_LIMIT", "")
    # Pages must arrive faster than one chunk is prepared, or nothing can overlap.
    monkeypatch.setenv("FINALE_RATE_LIMIT_PER_MINUTE", "60000")
    monkeypatch.setenv("QUARANTINE_FAIL_RATIO", "0.5")

    sequential, _ = _run(monkeypatch, sequential_url, 1)

    real_prepare = EntitySync.prepare
    # The first two prepares wait for each other: the run only gets past them if two
    # prepares really run at once (else the barrier breaks and the run fails).
    both_preparing = threading.Barrier(2, timeout=30)
    calls = itertools.count()

    def overlapping_prepare(self: EntitySync, chunk: Chunk) -> Chunk:
        if next(calls) < 2:
            both_preparing.wait()
        return real_prepare(self, chunk)

    monkeypatch.setattr(EntitySync, "prepare", overlapping_prepare)
    parallel, flow_run_id = _run(monkeypatch, warehouse_url, PARALLEL)

    # (1) The same warehouse: rows, content hashes, quarantine and counts.
    for result in (sequential, parallel):
        assert result.status == "succeeded", result
        assert result.extracted == PRODUCTS
        assert result.extracted == result.inserted + result.quarantined
        assert result.updated == result.unchanged == result.deleted == 0
    counted = ("extracted", "inserted", "updated", "unchanged", "quarantined", "deleted")
    assert {k: getattr(parallel, k) for k in counted} == {
        k: getattr(sequential, k) for k in counted
    }
    assert parallel.source_checksum == sequential.source_checksum
    assert parallel.warehouse_checksum == parallel.source_checksum

    seq_db, par_db = _snapshot(sequential_url), _snapshot(warehouse_url)
    assert len(par_db["rows"]) == PRODUCTS - parallel.quarantined
    assert par_db["rows"] == seq_db["rows"]
    assert par_db["quarantined"] == seq_db["quarantined"]
    for db in (seq_db, par_db):
        assert db["run"]["status"] == "succeeded"
        assert db["run"]["extracted"] == db["run"]["inserted"] + db["run"]["quarantined"]

    # (2) Prepares overlapped (the barrier held), and every chunk loaded as its own task run.
    assert not both_preparing.broken
    assert next(calls) >= CHUNKS  # every chunk was prepared
    assert len(_load_runs(flow_run_id)) == CHUNKS

    # (3) The watermark was committed with the last chunk, as in the sequential run: the
    # instant the full read started, inside the run.
    for db in (seq_db, par_db):
        mark = db["watermark"]
        assert mark is not None
        assert mark == db["run"]["watermark_after"]
        assert db["run"]["started_at"] <= mark <= db["run"]["finished_at"]
