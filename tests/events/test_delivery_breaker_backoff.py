"""The circuit breaker and the backoff schedule, with an injected clock and random source,
on SQLite and PostgreSQL; and the attempt counted before its POST (crash safety)."""

from __future__ import annotations

import random
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from event_receivers import Clock, Receiver, add_events, deliveries, subscriber, wh, wh_url

from events.delivery import deliver
from schemas.tables import event_subscribers

__all__ = ["wh", "wh_url"]  # fixtures


class Ceiling(random.Random):
    """Jitter that always draws the top of its range (the schedule's bound)."""

    def uniform(self, a: float, b: float) -> float:
        return b


def _attempts(engine: sa.Engine, name: str) -> list[int]:
    return [d["attempts"] for d in sorted(deliveries(engine, name).values(), key=lambda d: d["id"])]


def test_breaker_opens_skips_without_attempts_half_opens_and_closes(wh: sa.Engine) -> None:
    clock = Clock()
    with Receiver("flaky", "secret-flaky-12") as r:
        sub = subscriber(
            "flaky", r.url, "secret-flaky-12", breaker_failures=3, breaker_cooldown_seconds=60
        )
        deliver(wh, [sub], clock=clock)
        add_events(wh, ["K1", "K2", "K3", "K4", "K5"])
        r.fail_next = 1000

        first = deliver(wh, [sub], clock=clock)
        assert (first.retried, first.skipped_open_circuit) == (3, 2)
        assert first.subscribers["flaky"].circuit == "open"
        assert _attempts(wh, "flaky") == [1, 1, 1, 0, 0]

        clock.advance(30)  # still open: nothing is attempted, no attempt is spent
        second = deliver(wh, [sub], clock=clock)
        assert (second.retried, second.skipped_open_circuit, len(r.requests)) == (0, 5, 3)
        assert _attempts(wh, "flaky") == [1, 1, 1, 0, 0]

        clock.advance(31)  # cool-down over: one probe, which fails and re-opens the circuit
        third = deliver(wh, [sub], clock=clock)
        assert (third.retried, third.skipped_open_circuit, len(r.requests)) == (1, 4, 4)
        assert third.subscribers["flaky"].circuit == "open"

        r.fail_next = 0  # the endpoint recovers
        clock.advance(61)
        fourth = deliver(wh, [sub], clock=clock)
        assert (fourth.delivered, fourth.pending, len(r.requests)) == (5, 0, 9)
        assert fourth.subscribers["flaky"].circuit == "closed"
        with wh.connect() as conn:
            row = conn.execute(sa.select(event_subscribers)).one()
        assert (row.consecutive_failures, row.circuit_open_until) == (0, None)


def test_backoff_doubles_up_to_its_cap_then_the_delivery_dies(wh: sa.Engine) -> None:
    clock = Clock()
    with Receiver("down", "secret-down-123") as r:
        sub = subscriber(
            "down",
            r.url,
            "secret-down-123",
            backoff_base_seconds=10,
            backoff_max_seconds=100,
            max_attempts=6,
        )
        deliver(wh, [sub], clock=clock)
        (event_id,) = add_events(wh, ["K"])
        r.fail_next = 1000
        waits = []
        for _ in range(6):
            counts = deliver(wh, [sub], clock=clock, rng=Ceiling())
            row = deliveries(wh, "down")[event_id]
            waits.append(row["next_attempt_at"].replace(tzinfo=None) - clock().replace(tzinfo=None))
            clock.advance(1000)
        assert [w.total_seconds() for w in waits[:5]] == [10, 20, 40, 80, 100]
        assert counts.dead == 1 and row["status"] == "dead" and row["attempts"] == 6


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_jitter_stays_within_zero_and_the_cap(wh: sa.Engine, seed: int) -> None:
    clock = Clock()
    with Receiver("down", "secret-down-123") as r:
        sub = subscriber(
            "down", r.url, "secret-down-123", backoff_base_seconds=10, backoff_max_seconds=50
        )
        deliver(wh, [sub], clock=clock)
        (event_id,) = add_events(wh, ["K"])
        r.fail_next = 1000
        rng = random.Random(seed)
        waits = []
        for attempt in range(1, 5):
            deliver(wh, [sub], clock=clock, rng=rng)
            due = deliveries(wh, "down")[event_id]["next_attempt_at"].replace(tzinfo=None)
            wait = (due - clock().replace(tzinfo=None)).total_seconds()
            assert 0 <= wait <= min(50, 10 * 2 ** (attempt - 1))
            waits.append(wait)
            clock.advance(1000)
        assert len(set(waits)) == 4  # jittered, not a fixed schedule


def test_an_attempt_is_counted_before_its_post(wh: sa.Engine) -> None:
    """A process killed mid-POST leaves the delivery pending, its attempt counted and its
    retry due after the timeout (not at once, not never)."""
    clock = Clock()
    with Receiver("held", "secret-held-123") as r:
        sub = subscriber("held", r.url, "secret-held-123", timeout_seconds=5)
        deliver(wh, [sub], clock=clock)
        (event_id,) = add_events(wh, ["K"])
        r.hold = threading.Event()
        run = threading.Thread(target=deliver, args=(wh, [sub]), kwargs={"clock": clock})
        run.start()
        assert r.arrived.wait(10)
        during = deliveries(wh, "held")[event_id]
        r.hold.set()
        run.join(10)
        assert (during["status"], during["attempts"]) == ("pending", 1)
        due = during["next_attempt_at"].replace(tzinfo=None)
        assert due - clock().replace(tzinfo=None) >= timedelta(seconds=5)
        assert deliveries(wh, "held")[event_id]["status"] == "delivered"
