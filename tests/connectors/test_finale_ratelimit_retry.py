"""Token bucket timing (fake clock), server rate-limit feedback, and the retry policy."""

from __future__ import annotations

import random
import threading

import pytest
from finale_fakes import FakeTime

from connectors.finale import (
    FatalError,
    RateLimiter,
    RetryableError,
    RetryPolicy,
    TokenBucket,
    UnreachableError,
)
from connectors.retry import Retrier


def test_bucket_spaces_requests_at_the_configured_rate(fake_time: FakeTime) -> None:
    bucket = TokenBucket(120, clock=fake_time.monotonic, sleep=fake_time.sleep)
    waits = [bucket.acquire() for _ in range(4)]
    assert waits == [0.0, 0.5, 0.5, 0.5]
    assert fake_time.now == pytest.approx(1_001.5)


def test_bucket_is_full_again_after_idle_time(fake_time: FakeTime) -> None:
    bucket = TokenBucket(60, clock=fake_time.monotonic, sleep=fake_time.sleep)
    bucket.acquire()
    fake_time.now += 10
    assert bucket.acquire() == 0.0


def test_bucket_allows_a_burst_up_to_its_capacity(fake_time: FakeTime) -> None:
    bucket = TokenBucket(60, capacity=3, clock=fake_time.monotonic, sleep=fake_time.sleep)
    assert [bucket.acquire() for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]


def test_concurrent_callers_get_distinct_slots() -> None:
    """Threads reserve slots under the lock, so none shares another's slot."""
    clock_value = 0.0
    waits: list[float] = []
    lock = threading.Lock()

    def no_sleep(seconds: float) -> None:
        with lock:
            waits.append(seconds)

    bucket = TokenBucket(60, clock=lambda: clock_value, sleep=no_sleep)
    threads = [threading.Thread(target=bucket.acquire) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(waits) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]  # the first went at once


def test_server_pause_holds_the_bucket_then_resumes_one_interval_apart(
    fake_time: FakeTime,
) -> None:
    bucket = TokenBucket(120, clock=fake_time.monotonic, sleep=fake_time.sleep)
    bucket.pause(7)
    assert bucket.acquire() == 7.0
    assert bucket.acquire() == 0.5


def test_limiter_honours_retry_after_on_429_and_reset_when_remaining_is_zero(
    fake_time: FakeTime,
) -> None:
    limiter = RateLimiter.per_minute(
        1e9, clock=fake_time.monotonic, sleep=fake_time.sleep, wall_clock=lambda: 0.0
    )
    assert limiter.observe("GET", 429, {"retry-after": "3"}) == 3.0
    assert limiter.acquire("GET") == pytest.approx(3.0)
    assert limiter.acquire("POST") == 0.0  # the POST bucket is separate
    assert limiter.observe("POST", 200, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"})
    assert limiter.acquire("POST") == pytest.approx(2.0)
    assert (
        limiter.observe("GET", 200, {"x-ratelimit-remaining": "5", "x-ratelimit-reset": "9"})
        is None
    )


def test_limiter_reads_an_epoch_reset(fake_time: FakeTime) -> None:
    limiter = RateLimiter.per_minute(
        1e9, clock=fake_time.monotonic, sleep=fake_time.sleep, wall_clock=lambda: 1_700_000_000.0
    )
    pause = limiter.observe(
        "GET", 200, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1700000004"}
    )
    assert pause == pytest.approx(4.0)


def test_full_jitter_stays_between_zero_and_the_capped_exponential() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0, rng=random.Random(1))
    for retry_number in range(8):
        ceiling = min(8.0, 0.5 * 2**retry_number)
        delays = [policy.backoff(retry_number) for _ in range(50)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # jitter really spreads over the range


def test_retry_after_is_used_exactly_and_counts_against_the_total_budget() -> None:
    policy = RetryPolicy(max_retries=5, max_total_wait=10.0)
    error = RetryableError("slow down", retry_after=4.0)
    assert policy.delay(0, error, waited=0.0) == 4.0
    assert policy.delay(1, error, waited=8.0) is None  # 8 + 4 > 10
    assert policy.delay(5, error, waited=0.0) is None  # retries used up


def test_retrier_stops_at_max_retries_and_reports_attempts() -> None:
    sleeps: list[float] = []
    calls = 0

    def always_failing() -> None:
        nonlocal calls
        calls += 1
        raise RetryableError("boom")

    retrier = Retrier(RetryPolicy(max_retries=3, rng=random.Random(0)), sleep=sleeps.append)
    with pytest.raises(RetryableError) as info:
        retrier.run(always_failing)
    assert calls == 4
    assert len(sleeps) == 3
    assert info.value.attempts == 4
    assert "gave up after 4 attempts" in str(info.value)


def test_retrier_never_retries_fatal_errors() -> None:
    calls = 0

    def fatal() -> None:
        nonlocal calls
        calls += 1
        raise FatalError("no")

    with pytest.raises(FatalError):
        Retrier(RetryPolicy(), sleep=lambda s: None).run(fatal)
    assert calls == 1


@pytest.mark.parametrize(
    "maybe_processed, expected_calls",
    [
        pytest.param(True, 1, id="may-have-reached-server-not-repeated"),
        pytest.param(False, 3, id="certainly-not-sent-repeated"),
    ],
)
def test_non_idempotent_writes_are_repeated_only_when_certainly_not_applied(
    maybe_processed: bool, expected_calls: int
) -> None:
    calls = 0

    def write() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RetryableError("dropped", maybe_processed=maybe_processed)
        return "ok"

    retrier = Retrier(RetryPolicy(max_retries=5, rng=random.Random(0)), sleep=lambda s: None)
    if expected_calls == 1:
        with pytest.raises(RetryableError, match="may already have been applied"):
            retrier.run(write, idempotent=False)
    else:
        assert retrier.run(write, idempotent=False) == "ok"
    assert calls == expected_calls


def test_an_unreachable_finale_is_retried_only_for_the_short_unreachable_budget() -> None:
    clock = [0.0]

    def attempt() -> None:
        clock[0] += 5.0  # each attempt waits out a 5 s connect timeout
        raise UnreachableError("cannot reach Finale; check FINALE_BASE_URL")

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    policy = RetryPolicy(max_retries=6, base_delay=0.5, max_unreachable_seconds=12.0)
    retrier = Retrier(policy, sleep=sleep, clock=lambda: clock[0])
    with pytest.raises(UnreachableError) as error:
        retrier.run(attempt)
    # Retried while within 12 s of the first attempt, then reported; far short of the
    # six retries a dropped connection would get.
    assert 2 <= error.value.attempts <= 3
    assert clock[0] < 12.0 + 5.0 + 1.0
    # Other transient errors keep the full budget.
    count = [0]

    def flaky() -> None:
        count[0] += 1
        raise RetryableError("HTTP 503")

    with pytest.raises(RetryableError):
        Retrier(policy, sleep=lambda s: None, clock=lambda: 0.0).run(flaky)
    assert count[0] == 7


def test_every_rate_limit_pause_is_logged_with_its_length(
    fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = RateLimiter.per_minute(
        1e9, clock=fake_time.monotonic, sleep=fake_time.sleep, wall_clock=lambda: 0.0
    )
    with caplog.at_level("INFO", logger="connectors.finale.ratelimit"):
        limiter.observe("GET", 429, {"retry-after": "3"})
        limiter.acquire("GET")  # waits out the 3 s pause
        limiter.observe("GET", 200, {"x-ratelimit-remaining": "5"})  # no pause: no line
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "rate limit: Finale answered 429 with no requests left; pausing GET requests for 3.0s",
        "rate limit: waited 3.0s for a GET request slot",
    ]
