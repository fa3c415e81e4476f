"""Fixtures for the write-back tests: a private sandbox, one PostgreSQL database playing
both the warehouse (synced from the sandbox first) and the app's Supabase database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from writeback_support import World, make_world, start_sandbox

from sandbox.server import SandboxHandle


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., SandboxHandle]]:
    """Factory for private sandboxes (``SandboxConfig`` options)."""
    handles: list[SandboxHandle] = []

    def make(**options: Any) -> SandboxHandle:
        handles.append(start_sandbox(**options))
        return handles[-1]

    yield make
    for handle in handles:
        handle.stop(wait=False)


@pytest.fixture
def world(make_sandbox: Callable[..., SandboxHandle], pg_url: str) -> Iterator[World]:
    """A sandbox (a create's lost answer stays silent 3 s), a synced warehouse, app tables."""
    made = make_world(make_sandbox(fault_delay=3.0), pg_url)
    yield made
    made.control.close()
    made.engine.dispose()
    made.app.dispose()
