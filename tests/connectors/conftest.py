"""Fixtures for the Finale connector unit tests: fake time and a client factory on
``httpx.MockTransport``. No network, no real sleeping: every test runs in milliseconds.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
from finale_fakes import NOW, ClientFactory, FakeTime, Handler, make_settings

from connectors.finale import FinaleClient, RateLimiter, RetryPolicy
from connectors.finale.settings import FinaleSettings


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make_client(fake_time: FakeTime) -> Iterator[ClientFactory]:
    """Build a FinaleClient on a MockTransport; retry sleeps land in ``fake_time.sleeps``,
    rate-limiter sleeps in ``fake_time.limiter_sleeps``."""
    opened: list[httpx.Client] = []

    def factory(
        handler: Handler,
        settings: FinaleSettings | None = None,
        *,
        now: datetime = NOW,
        max_total_wait: float = 300.0,
    ) -> FinaleClient:
        settings = settings or make_settings()
        http = httpx.Client(transport=httpx.MockTransport(handler))
        opened.append(http)
        limiter = RateLimiter.per_minute(
            settings.rate_limit_per_minute,
            clock=fake_time.monotonic,
            sleep=fake_time.limiter_sleep,
            wall_clock=lambda: now.timestamp(),
        )
        policy = RetryPolicy(
            max_retries=settings.max_retries, max_total_wait=max_total_wait, rng=random.Random(7)
        )
        return FinaleClient(
            settings,
            http,
            clock=fake_time.monotonic,
            sleep=fake_time.sleep,
            now=lambda: now,
            limiter=limiter,
            retry_policy=policy,
        )

    yield factory
    for http in opened:
        http.close()
