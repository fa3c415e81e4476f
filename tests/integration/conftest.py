"""Fixtures for the Finale connector against the Finale sandbox, over real HTTP on loopback.

- ``shared_sandbox``: one server for the whole session, for tests that only read (they must
  not change its data, limits or faults).
- ``make_sandbox``: private servers for tests that change data, limits or faults.
- ``connect``: a ``FinaleClient`` on a recorded ``httpx.Client`` (see ``RequestLog``).

The sandbox's account zone is not UTC (America/Chicago, with a DST change inside the
generated dates) and its credentials are distinctive, so "the secret is not in the message"
checks cannot pass by accident.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from finale_sandbox_support import (
    SANDBOX_DEFAULTS,
    Connect,
    Connection,
    RequestLog,
    fast_retries,
    settings_for,
)

from connectors.finale import FinaleClient, RetryPolicy
from sandbox.control import SandboxControl
from sandbox.server import SandboxConfig, SandboxHandle, start_in_thread


@pytest.fixture(scope="session")
def shared_sandbox() -> Iterator[SandboxHandle]:
    """A read-only sandbox shared by the session (300 products, no limit, no faults)."""
    with start_in_thread(SandboxConfig(**SANDBOX_DEFAULTS)) as handle:
        yield handle


@pytest.fixture(scope="session")
def shared_control(shared_sandbox: SandboxHandle) -> Iterator[SandboxControl]:
    """Control client of the shared sandbox (ground truth only: no changes)."""
    with SandboxControl(shared_sandbox.base_url) as control:
        yield control


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., SandboxHandle]]:
    """Factory for private sandboxes: ``make_sandbox(max_entities=50, ...)``."""
    handles: list[SandboxHandle] = []

    def make(**options: Any) -> SandboxHandle:
        handle = start_in_thread(SandboxConfig(**{**SANDBOX_DEFAULTS, **options}))
        handles.append(handle)
        return handle

    yield make
    for handle in handles:
        handle.stop(wait=False)


@pytest.fixture
def connect() -> Iterator[Connect]:
    """Factory: ``connect(handle, auth="basic"|"session", timeout=..., **settings)``.

    The ``httpx.Client`` is built here with the given timeout and recording hooks; retries
    back off for milliseconds (``fast_retries``) unless a ``retry_policy`` is passed.
    """
    opened: list[tuple[FinaleClient, httpx.Client]] = []

    def make(
        handle: SandboxHandle,
        *,
        auth: str = "basic",
        timeout: float = 10.0,
        retry_policy: RetryPolicy | None = None,
        **overrides: Any,
    ) -> Connection:
        settings = settings_for(handle, auth=auth, timeout_seconds=timeout, **overrides)
        log = RequestLog()
        http = httpx.Client(timeout=httpx.Timeout(timeout), event_hooks=log.hooks())
        client = FinaleClient(
            settings, http, retry_policy=retry_policy or fast_retries(settings.max_retries)
        )
        opened.append((client, http))
        return Connection(client, log, settings)

    yield make
    for client, http in opened:
        client.close()
        http.close()
