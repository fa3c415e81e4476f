"""Every Finale request of a flow run also draws from the Prefect global rate limit.

The limit is what keeps concurrent runs and workers within Finale's budget together, on top
of each client's own token bucket; here the client's own bucket is set far higher, so only
the shared limit can explain the pace.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import get_client

from flows.finale_sync import sync_entity
from sandbox.control import SandboxControl
from sandbox.server import SandboxConfig, SandboxHandle, start_in_thread

LIMIT = "finale-api-test"
PER_SECOND = 4.0


@pytest.fixture
def sandbox() -> Iterator[SandboxHandle]:
    with start_in_thread(SandboxConfig(port=0, products=240, rate_limit_per_minute=0)) as h:
        yield h


def _sync_products(monkeypatch: pytest.MonkeyPatch, limit_name: str) -> float:
    monkeypatch.setenv("FINALE_SHARED_RATE_LIMIT", limit_name)
    started = time.monotonic()
    result = sync_entity(entity="products", mode="full", chunk_size=20)
    assert result.status == "succeeded"
    return time.monotonic() - started


def test_requests_are_paced_by_the_shared_prefect_rate_limit(
    prefect_harness: None, sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    for key, value in sandbox.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FINALE_RATE_LIMIT_PER_MINUTE", "60000")  # the local bucket never waits
    monkeypatch.setenv("QUARANTINE_FAIL_RATIO", "0.5")
    monkeypatch.setenv("WAREHOUSE_URL", f"sqlite:///{tmp_path / 'a.db'}")
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(
            LIMIT, limit=1, slot_decay_per_second=PER_SECOND
        )
    control = SandboxControl(sandbox.base_url)

    before = control.stats()["requests"].get("total", 0)
    paced = _sync_products(monkeypatch, LIMIT)
    requests = control.stats()["requests"].get("total", 0) - before
    assert requests >= 12  # 240 products in pages of 20

    monkeypatch.setenv("WAREHOUSE_URL", f"sqlite:///{tmp_path / 'b.db'}")
    free = _sync_products(monkeypatch, "")

    # One slot that frees at 4/s: n requests need at least (n - 1) / 4 seconds.
    assert paced >= (requests - 1) / PER_SECOND
    assert paced - free >= 0.6 * (requests - 1) / PER_SECOND
