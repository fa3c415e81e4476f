"""The project's own log lines reach the flow run's logs in the Prefect API (and so the UI).

Window splits, retries and rate-limit pauses are logged by the connector, which knows nothing of
Prefect, often from the read-ahead pool's threads; an operator looks for them in the flow run's
logs, not in the worker's terminal.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest
import sqlalchemy as sa
from prefect import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

from flows.finale_sync import sync_entity
from sandbox.server import SandboxConfig, start_in_thread
from schemas import tables
from warehouse.db import create_warehouse_engine

pytestmark = pytest.mark.slow


def test_window_splits_and_retries_are_in_the_flow_run_logs(
    prefect_harness: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # 10,000 products over two years put ~400 in a 30-day window: a 100-entity cap splits
    # windows. One request in five answers 503, so the client retries. (Rate-limit pauses
    # are logged by the same logger; tests/connectors covers them without a minute's wait.)
    config = SandboxConfig(
        port=0,
        products=10_000,
        max_entities=100,
        rate_limit_per_minute=0,
        faults="503:0.2",
        fault_seed=3,
    )
    url = f"sqlite:///{tmp_path / 'w.db'}"
    with start_in_thread(config) as sandbox:
        for key, value in sandbox.env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("FINALE_RATE_LIMIT_PER_MINUTE", "60000")
        monkeypatch.setenv("FINALE_MAX_RETRIES", "8")
        monkeypatch.setenv("FINALE_MAX_ENTITIES_PER_RESPONSE", "100")  # the sandbox's cap
        monkeypatch.setenv("FINALE_SHARED_RATE_LIMIT", "")
        monkeypatch.setenv("WAREHOUSE_URL", url)
        result = sync_entity(
            entity="products", mode="incremental", since=datetime(2026, 3, 1, tzinfo=UTC)
        )
    assert result.status == "succeeded", result.error
    engine = create_warehouse_engine(url)
    with engine.connect() as conn:
        flow_run_id = conn.execute(
            sa.select(tables.sync_runs.c.flow_run_id).where(
                tables.sync_runs.c.run_id == result.run_id
            )
        ).scalar_one()
    engine.dispose()

    deadline = time.monotonic() + 30
    wanted = {"splitting it": False, "Finale request failed": False}
    with get_client(sync_client=True) as client:
        while not all(wanted.values()):
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(flow_run_id)]))
            )
            for log in logs:
                for text in wanted:
                    if text in log.message and log.name.startswith("connectors."):
                        wanted[text] = True
            assert time.monotonic() < deadline, f"not in the flow run's logs: {wanted}"
            time.sleep(0.5)  # polling the API for logs it batches; no ordering relies on it
