"""Delivery to real loopback receivers, on SQLite and PostgreSQL: exactly once per key as a
receiver sees it, order per record across failures, dead letters and replay, a dead
subscriber that does not hold up the others, and two runs that never send the same delivery.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from event_receivers import (
    Clock,
    Log,
    Receiver,
    add_events,
    closed_port_url,
    deliveries,
    subscriber,
    wh,
    wh_url,
)

from events.admin import replay
from events.delivery import deliver
from events.outbox import record_event
from schemas.tables import event_dead_letters

__all__ = ["wh", "wh_url"]  # fixtures


def _until_settled(
    engine: sa.Engine, subs: list, clock: Clock | None = None, runs: int = 20
) -> int:
    """Run deliveries until none is pending (moving the clock past any backoff)."""
    for n in range(1, runs + 1):
        counts = deliver(engine, subs, **({"clock": clock} if clock else {}))
        if counts.pending == 0:
            return n
        if clock is not None:
            clock.advance(3600)
        else:
            threading.Event().wait(0.01)
    raise AssertionError(f"still pending after {runs} runs")


def test_each_event_reaches_each_wanting_subscriber_once_signed(wh: sa.Engine) -> None:
    log = Log()
    with Receiver("all", "secret-all-1234", log) as ra, Receiver("po", "secret-po-5678", log) as rb:
        subs = [
            subscriber("all", ra.url, "secret-all-1234"),
            subscriber("po", rb.url, "secret-po-5678", events=("purchase_order.*",)),
        ]
        deliver(wh, subs)  # first sight of both: they start at the end of the outbox
        po = add_events(wh, ["PO-1", "PO-2", "PO-1"])
        stock = add_events(wh, ["SKU-1"], type="stock.below_reorder_point")
        counts = deliver(wh, subs)

        assert counts.delivered == 7 and counts.pending == 0 and counts.dead == 0
        assert [r.key for r in ra.processed()] == po + stock
        assert [r.key for r in rb.processed()] == po
        assert len(ra.requests) == 4 and len(rb.requests) == 3  # nothing sent twice
        assert all(r.signature_ok for r in log.entries)
        first = ra.requests[0].event
        assert first["id"] == po[0] and first["type"] == "purchase_order.status_changed"
        assert first["entity"] == "purchase_orders" and first["key"] == "PO-1"
        assert first["data"] == {"n": 0}
        assert {d["status"] for d in deliveries(wh, "all").values()} == {"delivered"}
        # A second run has nothing left to send.
        assert deliver(wh, subs).delivered == 0 and len(log.entries) == 7


def test_a_new_subscriber_starts_at_the_end_of_the_outbox(wh: sa.Engine) -> None:
    with Receiver("late", "secret-late-123") as r:
        old = add_events(wh, ["PO-1"])
        sub = subscriber("late", r.url, "secret-late-123")
        assert deliver(wh, [sub]).delivered == 0
        new = add_events(wh, ["PO-2"])
        deliver(wh, [sub])
        assert [x.key for x in r.processed()] == new
        assert old[0] not in deliveries(wh, "late")


def test_order_per_key_is_kept_across_failures_and_each_key_is_processed_once(
    wh: sa.Engine,
) -> None:
    with Receiver("app", "secret-app-1234") as r:
        sub = subscriber("app", r.url, "secret-app-1234")
        deliver(wh, [sub])
        keys = ["A", "B", "A", "C", "B", "A", "C", "A"]
        ids = add_events(wh, keys)
        r.fail_next = 3  # the first three requests get 503 (A#1, B#1, C#1)
        runs = _until_settled(wh, [sub])

        assert runs >= 2
        processed = r.processed()
        assert sorted(x.key for x in processed) == sorted(ids)  # each once, none lost
        by_key: dict[str, list[int]] = defaultdict(list)
        for x in processed:
            by_key[x.event["key"]].append(x.event["data"]["n"])
        for key, numbers in by_key.items():
            assert numbers == sorted(numbers), f"{key} out of order: {numbers}"
        # While A#1 backed off, no later A was sent: the 503'd heads were resent first.
        first_a = [x for x in r.requests if x.event["key"] == "A"]
        assert [x.answered for x in first_a[:2]] == [503, 200]
        assert first_a[0].key == first_a[1].key == ids[0]
        assert len(r.requests) == len(ids) + 3


def test_dead_after_max_attempts_blocks_its_key_until_replayed(wh: sa.Engine) -> None:
    clock = Clock()
    with Receiver("erp", "secret-erp-1234") as r:
        sub = subscriber("erp", r.url, "secret-erp-1234", max_attempts=3)
        deliver(wh, [sub], clock=clock)
        ids = add_events(wh, ["PO-1", "PO-1", "PO-2"])
        r.fail_entity_keys, r.fail_status = {"PO-1"}, 500
        for _ in range(3):
            deliver(wh, [sub], clock=clock)
            clock.advance(10)
        state = deliveries(wh, "erp")
        assert state[ids[0]]["status"] == "dead" and state[ids[0]]["attempts"] == 3
        assert state[ids[1]]["status"] == "pending"  # waits behind its dead predecessor
        assert state[ids[1]]["attempts"] == 0
        assert state[ids[2]]["status"] == "delivered"  # another record: not held up
        with wh.connect() as conn:
            letters = conn.execute(sa.select(event_dead_letters)).all()
        assert [(x.subscriber, x.attempts) for x in letters] == [("erp", 3)]
        assert letters[0].last_error.startswith("HTTP 500")

        r.fail_entity_keys.clear()  # the receiver is fixed
        with wh.begin() as conn:
            queued = replay(conn, [sub.config], now=clock(), subscriber="erp")
        assert [(q["event_id"], q["was"]) for q in queued] == [(ids[0], "dead")]
        deliver(wh, [sub], clock=clock)
        assert [x.key for x in r.processed()] == [ids[2], ids[0], ids[1]]
        with wh.connect() as conn:
            assert conn.execute(sa.select(event_dead_letters.c.replayed_at)).scalar_one()


def test_replay_since_hands_history_to_a_subscriber_and_resends_delivered(
    wh: sa.Engine,
) -> None:
    with Receiver("bi", "secret-bi-12345") as r:
        ids = add_events(wh, ["X", "Y"])
        sub = subscriber("bi", r.url, "secret-bi-12345")
        deliver(wh, [sub])
        assert r.requests == []
        with wh.begin() as conn:
            queued = replay(
                conn, [sub.config], now=datetime.now(UTC), since=datetime(2000, 1, 1, tzinfo=UTC)
            )
        assert [q["was"] for q in queued] == ["new", "new"]
        deliver(wh, [sub])
        with wh.begin() as conn:
            again = replay(conn, [sub.config], now=datetime.now(UTC), event_ids=[ids[1]])
        assert [q["was"] for q in again] == ["delivered"]
        deliver(wh, [sub])
        assert [x.key for x in r.requests] == [ids[0], ids[1], ids[1]]  # same key: a receiver
        assert [x.key for x in r.processed()] == ids  # that de-duplicates processes it once


def test_a_dead_subscriber_does_not_hold_up_the_others(wh: sa.Engine) -> None:
    log = Log()
    with (
        Receiver("hung", "secret-hung-123", log) as hung,
        Receiver("ok", "secret-ok-1234", log) as ok,
    ):
        hung.hold = threading.Event()  # answers nothing while the run lasts
        subs = [
            subscriber(
                "hung", hung.url, "secret-hung-123", timeout_seconds=0.5, breaker_failures=2
            ),
            subscriber("refused", closed_port_url(), "secret-dead-123", breaker_failures=2),
            subscriber("ok", ok.url, "secret-ok-1234"),
        ]
        deliver(wh, subs)
        ids = add_events(wh, ["P1", "P2", "P3", "P4", "P5"])
        results = []
        run = threading.Thread(target=lambda: results.append(deliver(wh, subs)))
        run.start()
        assert hung.arrived.wait(10)
        for _ in range(1000):
            if len(ok.processed()) == len(ids):
                break
            threading.Event().wait(0.01)
        # Everything reached "ok" while the hung endpoint still held its first request.
        assert [x.key for x in ok.processed()] == ids
        assert hung.requests[0].answered is None
        run.join(30)

        counts = results[0]
        assert counts.subscribers["ok"].delivered == 5
        for name in ("hung", "refused"):
            c = counts.subscribers[name]
            assert (c.delivered, c.retried, c.circuit) == (0, 2, "open")
            assert c.skipped_open_circuit == 3  # the circuit opened after two failures
        assert len(hung.requests) == 2  # no attempt spent while open


def test_two_runs_never_send_the_same_delivery_at_once(wh: sa.Engine) -> None:
    with Receiver("one", "secret-one-1234") as r:
        sub = subscriber("one", r.url, "secret-one-1234")
        deliver(wh, [sub])
        ids = add_events(wh, ["K1", "K2", "K3"])
        r.hold = threading.Event()
        results = []
        first = threading.Thread(target=lambda: results.append(deliver(wh, [sub])))
        first.start()
        assert r.arrived.wait(10)  # the first run is inside its first POST
        second = deliver(wh, [sub])
        r.hold.set()
        first.join(20)

        assert second.locked == ["one"] and second.delivered == 0
        assert results[0].delivered == 3
        assert [x.key for x in r.requests] == ids  # each sent once


# PostgreSQL only: SQLite has one writer at a time, so an id cannot commit out of order.
@pytest.mark.parametrize("wh_url", ["postgres"], indirect=True)
def test_an_event_committed_late_is_not_skipped_by_fan_out(wh: sa.Engine) -> None:
    """PostgreSQL takes ids at insert, not at commit: fan-out must wait for a transaction
    still writing events, or its event would fall below the subscriber's high-water mark."""
    with Receiver("app", "secret-app-1234") as r:
        sub = subscriber("app", r.url, "secret-app-1234")
        deliver(wh, [sub])
        slow = wh.connect()
        slow_tx = slow.begin()
        record_event(slow, "purchase_order.created", entity="purchase_orders", entity_key="P1",
                     payload={})  # fmt: skip
        (later,) = add_events(wh, ["P2"])  # a higher id, committed first
        results = []
        run = threading.Thread(target=lambda: results.append(deliver(wh, [sub])))
        run.start()
        run.join(0.5)
        assert run.is_alive()  # fan-out waits for the open transaction...
        slow_tx.commit()
        slow.close()
        run.join(20)
        assert results[0].delivered == 2  # ...and then hands out both events
        assert {x.event["key"] for x in r.processed()} == {"P1", "P2"}
        assert later in {x.key for x in r.processed()}
