"""Overlap protection and backfills, through real Prefect flow runs against the sandbox."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest
import sqlalchemy as sa
from prefect import flow, get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
    TaskRunFilter,
    TaskRunFilterName,
)
from prefect.client.schemas.objects import TaskRun

from flows.backfill import backfill_id, finale_backfill, plan_windows
from flows.finale_sync import sync_entity
from sandbox.control import SandboxControl
from sandbox.server import SandboxConfig, SandboxHandle, start_in_thread
from schemas import tables
from warehouse.db import create_warehouse_engine
from warehouse.locks import EntityLocked, entity_lock
from warehouse.migrate import upgrade


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    with start_in_thread(SandboxConfig(port=0, products=400, rate_limit_per_minute=0)) as h:
        yield h


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandbox: SandboxHandle, warehouse_url: str
) -> str:
    monkeypatch.chdir(tmp_path)
    for key, value in sandbox.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("FINALE_SHARED_RATE_LIMIT", "")
    upgrade(warehouse_url)
    return warehouse_url


def _count(url: str, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    engine = create_warehouse_engine(url)
    try:
        with engine.connect() as conn:
            query = sa.select(sa.func.count()).select_from(table)
            return conn.execute(query.where(*where) if where else query).scalar_one()
    finally:
        engine.dispose()


#: Longest a test waits for another thread to reach a point (a bound, never an ordering device).
WAIT_SECONDS = 30.0


def test_second_holder_of_an_entity_lock_is_refused(warehouse_url: str) -> None:
    upgrade(warehouse_url)
    engine = create_warehouse_engine(warehouse_url)
    try:
        with entity_lock(engine, "products"):
            with (
                pytest.raises(EntityLocked, match="products is already being synced"),
                entity_lock(engine, "products"),
            ):
                pass
            with entity_lock(engine, "vendors"):  # other entities are not blocked
                pass
    finally:
        engine.dispose()


def test_a_waiting_run_retries_and_takes_the_lock_once_its_holder_lets_go(
    warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder lets go only after the waiter has found the lock busy and paused to poll;
    the waiter's pause ends only once the lock is free. Events order both threads."""
    upgrade(warehouse_url)
    engine = create_warehouse_engine(warehouse_url)
    held, polled, released = threading.Event(), threading.Event(), threading.Event()
    order: list[str] = []
    waiter = threading.current_thread()
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        # Only the waiting run's polls are intercepted; any other thread sleeps as usual.
        if threading.current_thread() is not waiter:
            real_sleep(seconds)
            return
        order.append("busy")
        polled.set()
        released.wait(WAIT_SECONDS)

    def hold() -> None:
        with entity_lock(engine, "stock"):
            held.set()
            polled.wait(WAIT_SECONDS)
            order.append("releasing")
        released.set()

    monkeypatch.setattr(time, "sleep", sleep)
    holder = threading.Thread(target=hold, name="lock-holder")
    try:
        holder.start()
        assert held.wait(WAIT_SECONDS), "the holder never took the lock"
        with entity_lock(engine, "stock", wait_seconds=WAIT_SECONDS, poll_seconds=0.05):
            order.append("acquired")
        holder.join(WAIT_SECONDS)
    finally:
        released.set()
        polled.set()
        engine.dispose()
    # It found the lock busy (once: the holder had let go before its pause ended), waited
    # instead of giving up, and got the lock only after the holder released it.
    assert order == ["busy", "releasing", "acquired"]


def test_a_run_that_finds_its_entity_locked_is_skipped_and_writes_nothing(
    prefect_harness: None, env: str
) -> None:
    engine = create_warehouse_engine(env)
    try:
        with entity_lock(engine, "facilities"):
            result = sync_entity(entity="facilities", mode="full")
    finally:
        engine.dispose()
    assert result.status == "skipped"
    assert "already being synced" in result.error
    assert _count(env, tables.facilities) == 0
    assert _count(env, tables.sync_runs, tables.sync_runs.c.status == "skipped") == 1
    # Once free, the next run syncs.
    assert sync_entity(entity="facilities", mode="full").status == "succeeded"
    assert _count(env, tables.facilities) > 0


def _task_runs_of(
    client: SyncPrefectClient, flow_run_id: UUID, name: str, count: int, timeout: float = 20.0
) -> list[TaskRun]:
    """The task runs ``name`` of a flow run, once ``count`` of them are recorded (or the
    timeout passed: then the caller's assertion says what was missing)."""
    deadline = time.monotonic() + timeout
    while True:
        found = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=[name])),
        )
        done = [run for run in found if run.state_type and run.state_type.value == "COMPLETED"]
        if len(done) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_backfill_rereads_in_windows_resumes_and_leaves_the_watermark(
    prefect_harness: None, env: str, sandbox: SandboxHandle
) -> None:
    first = sync_entity(entity="products", mode="full")
    engine = create_warehouse_engine(env)
    with engine.connect() as conn:
        watermark = conn.execute(
            sa.select(tables.sync_state.c.watermark).where(tables.sync_state.c.entity == "products")
        ).scalar_one()
    since = datetime(2026, 5, 1, tzinfo=UTC)
    until = datetime(2026, 7, 15, tzinfo=UTC)
    truth = SandboxControl(sandbox.base_url).count(
        "product", {"lastUpdatedDate": ["2026-05-01T00:00:00", "2026-07-15T00:00:00"]}
    )
    assert truth > 0 and first.status == "succeeded"

    progress: list[tuple[int, int]] = []
    done = finale_backfill(
        since=since, until=until, entities=["products"],
        on_progress=lambda d, t: progress.append((d, t)),
    )  # fmt: skip
    assert done.windows == len(plan_windows(since, until, 30)) == 3
    assert done.skipped == 0
    assert progress[-1] == (3, 3)
    counts = done.entities["products"]
    # Every record updated in the range was re-read once; nothing in it changed since.
    assert counts["extracted"] == truth
    assert counts["inserted"] == counts["updated"] == 0
    with engine.connect() as conn:
        after = conn.execute(
            sa.select(tables.sync_state.c.watermark).where(tables.sync_state.c.entity == "products")
        ).scalar_one()
        assert after == watermark
        # Each window's run is recorded as a backfill, under the backfill's flow run.
        runs = conn.execute(
            sa.select(tables.sync_runs.c.mode, tables.sync_runs.c.flow_run_id).where(
                tables.sync_runs.c.run_id != first.run_id
            )
        ).all()
        recorded = conn.execute(
            sa.select(sa.func.count()).select_from(tables.backfill_windows)
        ).scalar_one()
        assert recorded == 3

    # The progress artifact of this backfill reached 100 % in the Prefect API.
    with get_client(sync_client=True) as client:
        progress_artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[f"backfill-{backfill_id(['products'], since, until)}"])
            )
        )
    assert progress_artifacts and progress_artifacts[-1].type == "progress"
    assert float(progress_artifacts[-1].data) == 100.0  # type: ignore[arg-type]
    assert [mode for mode, _ in runs] == ["backfill"] * 3
    (backfill_run,) = {flow_run_id for _, flow_run_id in runs}
    with get_client(sync_client=True) as client:
        parent = client.read_flow_run(UUID(backfill_run))
        backfill_flow = client.read_flow(parent.flow_id)
        assert backfill_flow.name == "finale-backfill"
        # Each window ran as a task run of the backfill's flow run. Task runs reach the
        # server as events, recorded a moment after the flow run ends.
        window_runs = _task_runs_of(client, parent.id, "sync-products-backfill", count=3)
    assert len(window_runs) == 3
    assert {run.state_type.value for run in window_runs if run.state_type} == {"COMPLETED"}

    again = finale_backfill(since=since, until=until, entities=["products"])
    assert again.skipped == 3 and again.entities["products"] == {}

    # A backfill that stopped after its first window resumes with the other two.
    bid = backfill_id(["products"], since, until)
    with engine.begin() as conn:
        conn.execute(
            sa.delete(tables.backfill_windows).where(
                tables.backfill_windows.c.backfill_id == bid,
                tables.backfill_windows.c.window_start > since,
            )
        )
    resumed = finale_backfill(since=since, until=until, entities=["products"])
    assert resumed.skipped == 1
    assert 0 < resumed.entities["products"]["extracted"] < truth
    engine.dispose()


def test_a_run_left_running_by_a_dead_worker_is_marked_stale(
    prefect_harness: None, env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from flows.finale_sync import finale_sync
    from warehouse import state

    monkeypatch.setenv("STALE_RUN_MINUTES", "60")
    engine = create_warehouse_engine(env)
    long_ago = datetime.now(UTC) - timedelta(hours=3)
    recent = datetime.now(UTC) - timedelta(minutes=5)
    with engine.begin() as conn:
        state.start_run(conn, run_id="dead", flow_run_id=None, entity="vendors",
                        mode="incremental", started_at=long_ago)  # fmt: skip
        state.start_run(conn, run_id="alive", flow_run_id=None, entity="stock",
                        mode="incremental", started_at=recent)  # fmt: skip
    finale_sync(entities=["facilities"], mode="full")
    with engine.connect() as conn:
        statuses = dict(
            conn.execute(
                sa.select(tables.sync_runs.c.run_id, tables.sync_runs.c.status).where(
                    tables.sync_runs.c.run_id.in_(["dead", "alive"])
                )
            ).all()
        )
    engine.dispose()
    assert statuses == {"dead": "stale", "alive": "running"}


@flow(name="ghost")
def _ghost() -> None:
    """A flow whose runs the test creates in given states, without running it."""


def test_a_run_whose_flow_run_crashed_or_is_gone_is_marked_crashed_at_the_next_sync(
    prefect_harness: None, env: str
) -> None:
    from uuid import uuid4

    from prefect.states import Crashed, Running

    from flows.finale_sync import finale_sync
    from warehouse import state

    with get_client(sync_client=True) as client:
        crashed = client.create_flow_run(_ghost, state=Crashed(message="process killed"))
        running = client.create_flow_run(_ghost, state=Running())
    recent = datetime.now(UTC)
    runs = {"killed": str(crashed.id), "vanished": str(uuid4()), "busy": str(running.id)}
    engine = create_warehouse_engine(env)
    with engine.begin() as conn:
        for run_id, flow_run_id in runs.items():
            state.start_run(conn, run_id=run_id, flow_run_id=flow_run_id, entity="vendors",
                            mode="incremental", started_at=recent)  # fmt: skip

    finale_sync(entities=["facilities"], mode="full")  # long before STALE_RUN_MINUTES

    with engine.connect() as conn:
        rows = {
            row.run_id: row
            for row in conn.execute(
                sa.select(tables.sync_runs).where(tables.sync_runs.c.run_id.in_(list(runs)))
            )
        }
    engine.dispose()
    assert rows["killed"].status == "crashed"
    assert rows["killed"].error == (
        f"crashed: its flow run {runs['killed']} ended Crashed before the run did"
    )
    assert rows["vanished"].status == "crashed"
    assert "is gone from Prefect" in rows["vanished"].error
    assert rows["busy"].status == "running"  # its flow run is still running: left alone
