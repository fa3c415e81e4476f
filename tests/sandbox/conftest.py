"""Fixtures for the Finale sandbox tests: real servers on loopback, httpx clients.

Test files here are named ``test_sandbox_*.py`` so their module names stay unique across the
test tree (there is no ``__init__.py``: a ``tests/sandbox`` package would shadow ``sandbox``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sandbox_helpers import api_client

from sandbox.control import SandboxControl
from sandbox.server import SandboxConfig, SandboxHandle, start_in_thread


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    """A sandbox shared by one module's read-only tests: tests must not change its data."""
    with start_in_thread(SandboxConfig(port=0, products=400, rate_limit_per_minute=0)) as handle:
        yield handle


@pytest.fixture
def api(sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    """Client for the shared sandbox."""
    with api_client(sandbox) as client:
        yield client


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., SandboxHandle]]:
    """Factory for private sandboxes (for tests that change data, limits or faults).

    ``make_sandbox(clock=FakeClock(), ...)`` runs the sandbox on a clock the test moves;
    the other options are ``SandboxConfig`` fields.
    """
    handles: list[SandboxHandle] = []

    def make(clock: Callable[[], float] = time.monotonic, **options: Any) -> SandboxHandle:
        options.setdefault("port", 0)
        options.setdefault("products", 200)
        options.setdefault("rate_limit_per_minute", 0)
        handle = start_in_thread(SandboxConfig(**options), clock=clock)
        handles.append(handle)
        return handle

    yield make
    for handle in handles:
        handle.stop(wait=False)  # shutting down in the background saves ~0.15 s per test


@pytest.fixture
def private(make_sandbox: Callable[..., SandboxHandle]) -> SandboxHandle:
    """A private default sandbox (200 products, no rate limit, no faults)."""
    return make_sandbox()


@pytest.fixture
def control(private: SandboxHandle) -> Iterator[SandboxControl]:
    """Control client of the private sandbox."""
    with SandboxControl(private.base_url) as ctl:
        yield ctl
