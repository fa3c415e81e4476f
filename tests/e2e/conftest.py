"""Fixtures for the end-to-end pipeline tests: private sandboxes, migrated warehouses, and
the environment a CLI run (in-process or a real subprocess) needs.

Every test that changes sandbox data gets its own sandbox (a 1,000-product account is
generated in ~0.05 s); warehouses come from the shared ``warehouse_url`` fixture, so each
data test runs once on SQLite and once on PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pipeline_e2e_support import OWN_PREFIXES, child_env

from sandbox.control import SandboxControl
from sandbox.server import SandboxConfig, SandboxHandle, start_in_thread

#: Small enough to sync in about a second, big enough for every kind of dirty record.
PRODUCTS = 1000

#: The generated account has 8 suppliers and one of them is dirty on purpose (12.5%), above
#: the default QUARANTINE_FAIL_RATIO of 5%; runs that are not about the threshold allow it.
LENIENT_RATIO = "0.5"

#: Generated dates end a day ago whatever today is (the default anchor is a fixed date),
#: so every generated record is older than any watermark a test's runs set.
ANCHOR = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT00:00:00")

SANDBOX_DEFAULTS: dict[str, Any] = {
    "port": 0,
    "products": PRODUCTS,
    "rate_limit_per_minute": 0,
    "anchor": ANCHOR,
}


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., SandboxHandle]]:
    """Factory for private sandboxes: ``make_sandbox(faults="slow:1.0", ...)``."""
    handles: list[SandboxHandle] = []

    def make(**options: Any) -> SandboxHandle:
        handles.append(start_in_thread(SandboxConfig(**{**SANDBOX_DEFAULTS, **options})))
        return handles[-1]

    yield make
    for handle in handles:
        handle.stop(wait=False)


@pytest.fixture
def sandbox(make_sandbox: Callable[..., SandboxHandle]) -> SandboxHandle:
    """A private 1,000-product sandbox without rate limit or faults."""
    return make_sandbox()


@pytest.fixture
def control(sandbox: SandboxHandle) -> Iterator[SandboxControl]:
    """Control client of ``sandbox``."""
    with SandboxControl(sandbox.base_url) as client:
        yield client


@pytest.fixture(scope="session")
def prefect_api_url(prefect_harness: None) -> str:
    """The API URL of the session's temporary Prefect server, for CLI subprocesses."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url, "the Prefect test harness did not set PREFECT_API_URL"
    return str(url)


@pytest.fixture
def cli_env(tmp_path: Path, prefect_api_url: str) -> Callable[..., dict[str, str]]:
    """Factory: the environment of a CLI subprocess pointed at a sandbox and a warehouse.

    The subprocess talks to the session's Prefect server (no second server to start) and
    keeps its Prefect home in the test's temporary folder.
    """

    def make(handle: SandboxHandle | None, warehouse_url: str, **extra: str) -> dict[str, str]:
        values = {
            "PREFECT_API_URL": prefect_api_url,
            "PREFECT_HOME": str(tmp_path / "prefect-home"),
            "QUARANTINE_FAIL_RATIO": LENIENT_RATIO,
            **extra,
        }
        return child_env(handle, warehouse_url, **values)

    return make


@pytest.fixture
def cli_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., None]:
    """Factory: set the environment for an in-process CLI run (restored afterwards).

    The working directory moves to the test's folder so no stray ``.env`` is read.
    """
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(OWN_PREFIXES) and not name.startswith("PREFECT_"):
            monkeypatch.delenv(name)

    def apply(handle: SandboxHandle | None, warehouse_url: str, **extra: str) -> None:
        values = {"WAREHOUSE_URL": warehouse_url, "QUARANTINE_FAIL_RATIO": LENIENT_RATIO}
        if handle is not None:
            values.update(handle.env, FINALE_RATE_LIMIT_PER_MINUTE="100000")
        values.update(extra)
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return apply
