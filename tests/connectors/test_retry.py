"""The project's one retry mechanism: the ``Retry-After`` parser and a retry outside Finale."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from connectors.retry import Retrier, RetryPolicy, TransientError, parse_retry_after

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "now", "seconds"),
    [
        pytest.param("120", None, 120.0, id="delay-seconds"),
        pytest.param(" 1.5 ", None, 1.5, id="fraction-and-spaces"),
        pytest.param("0", None, 0.0, id="zero"),
        pytest.param("-3", None, 0.0, id="negative-is-now"),
        pytest.param(format_datetime(NOW.replace(minute=1)), NOW.timestamp(), 60.0,
                     id="http-date"),
        pytest.param(format_datetime(NOW.replace(hour=11)), NOW.timestamp(), 0.0,
                     id="http-date-in-the-past"),
        pytest.param(format_datetime(NOW), None, None, id="http-date-without-a-clock"),
        pytest.param("soon", NOW.timestamp(), None, id="garbage"),
        pytest.param(None, None, None, id="absent"),
    ],
)  # fmt: skip
def test_parse_retry_after(header: str | None, now: float | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=now) == seconds


def test_any_transient_error_is_retried_and_retry_after_is_waited_exactly() -> None:
    sleeps: list[float] = []
    calls = iter([TransientError("busy", retry_after=2.0), TransientError("busy"), "ok"])

    def attempt() -> str:
        outcome = next(calls)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    policy = RetryPolicy(max_retries=2, base_delay=0.0, rng=random.Random(0))
    assert Retrier(policy, sleep=sleeps.append).run(attempt) == "ok"
    assert sleeps == [2.0, 0.0]


def test_a_retry_after_beyond_the_budget_ends_the_retries_at_once() -> None:
    sleeps: list[float] = []

    def attempt() -> None:
        raise TransientError("HTTP 429", retry_after=30.0)

    policy = RetryPolicy(max_retries=1, max_total_wait=5.0)
    with pytest.raises(TransientError, match="asked to wait 30s") as caught:
        Retrier(policy, sleep=sleeps.append, system="slack").run(attempt)
    assert sleeps == []
    assert caught.value.attempts == 1
