"""What each answer means (status-code table), Retry-After, and credentials kept out of logs,
errors and the database. SQLite only: this is HTTP behaviour, the same on both backends."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from event_receivers import (
    Clock,
    Receiver,
    add_events,
    closed_port_url,
    deliveries,
    subscriber,
)

from events.delivery import deliver
from schemas.tables import event_dead_letters, event_deliveries, event_subscribers, outbox_events
from warehouse.db import create_warehouse_engine
from warehouse.migrate import upgrade


@pytest.fixture(scope="module")
def sqlite_wh_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('http') / 'warehouse.db'}"
    upgrade(url)
    return url


@pytest.fixture
def wh(sqlite_wh_url: str) -> Iterator[sa.Engine]:
    engine = create_warehouse_engine(sqlite_wh_url)
    with engine.begin() as conn:
        for table in (event_dead_letters, event_deliveries, event_subscribers, outbox_events):
            conn.execute(table.delete())
    yield engine
    engine.dispose()


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        pytest.param(200, "delivered", id="200-delivered"),
        pytest.param(204, "delivered", id="204-delivered"),
        pytest.param(408, "pending", id="408-retried"),
        pytest.param(429, "pending", id="429-retried"),
        pytest.param(500, "pending", id="500-retried"),
        pytest.param(503, "pending", id="503-retried"),
        pytest.param(400, "dead", id="400-dead-at-once"),
        pytest.param(401, "dead", id="401-dead-at-once"),
        pytest.param(404, "dead", id="404-dead-at-once"),
        pytest.param(410, "dead", id="410-dead-at-once"),
        pytest.param(301, "dead", id="redirect-dead-at-once"),
    ],
)
def test_each_answer_is_sorted_into_delivered_retried_or_dead(
    wh: sa.Engine, status: int, outcome: str
) -> None:
    with Receiver("r", "secret-r-123456") as r:
        sub = subscriber("r", r.url, "secret-r-123456")
        deliver(wh, [sub])
        (event_id,) = add_events(wh, ["K"])
        r.fail_next, r.fail_status = 1, status
        counts = deliver(wh, [sub])
        row = deliveries(wh, "r")[event_id]
        assert row["status"] == outcome
        assert row["attempts"] == 1
        assert (counts.delivered, counts.retried, counts.dead) == (
            int(outcome == "delivered"),
            int(outcome == "pending"),
            int(outcome == "dead"),
        )
        if outcome != "delivered":
            assert row["last_status_code"] == status
            assert row["last_error"].startswith(f"HTTP {status}")
        if status == 401:
            assert "secret" in row["last_error"] and "replay" in row["last_error"]


def test_a_longer_retry_after_is_honoured(wh: sa.Engine) -> None:
    clock = Clock()
    with Receiver("r", "secret-r-123456") as r:
        sub = subscriber("r", r.url, "secret-r-123456")
        deliver(wh, [sub], clock=clock)
        (event_id,) = add_events(wh, ["K"])
        r.fail_next, r.fail_status, r.fail_headers = 1, 429, {"Retry-After": "120"}
        deliver(wh, [sub], clock=clock)
        due = deliveries(wh, "r")[event_id]["next_attempt_at"].replace(tzinfo=None)
        assert (due - clock().replace(tzinfo=None)).total_seconds() == 120


def test_urls_and_secrets_never_reach_logs_errors_or_the_database(
    wh: sa.Engine, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    secret = "whsec_Zq8Lr2Vx9Tn4Ke7Bc1"
    dead_url = closed_port_url() + "?token=tok_Secret99"
    with Receiver("echo", secret) as echo, Receiver("slow", secret) as slow:
        # A receiver that echoes credentials back in its error body.
        echo.fail_next, echo.fail_status = 1, 500
        echo.answer_body = f"bad request to {echo.url} signed with {secret}".encode()
        slow.delay = 1.0
        subs = [
            subscriber("echo", echo.url, secret),
            subscriber("refused", dead_url, secret),
            subscriber("slow", slow.url, secret, timeout_seconds=0.2),
        ]
        caplog.set_level(logging.DEBUG)
        deliver(wh, subs)
        add_events(wh, ["K"])
        counts = deliver(wh, subs)
        assert counts.retried == 3
        with wh.connect() as conn:
            errors = [e for (e,) in conn.execute(sa.select(event_deliveries.c.last_error))]
        shown = caplog.text + "\n".join(errors) + repr(subs) + str(counts.to_json())
        for credential in (secret, echo.url, slow.url, dead_url, "tok_Secret99", "/hooks/"):
            assert credential not in shown
        assert "echo" in caplog.text and "refused" in caplog.text and "slow" in caplog.text
        assert any("***" in e for e in errors)  # the echoed body was kept, masked
        assert any("timed out" in e for e in errors)
        assert any("cannot connect" in e for e in errors)


def test_a_slow_answer_within_the_timeout_is_a_delivery(wh: sa.Engine) -> None:
    with Receiver("slow", "secret-slow-123") as r:
        sub = subscriber("slow", r.url, "secret-slow-123", timeout_seconds=2)
        deliver(wh, [sub])
        (event_id,) = add_events(wh, ["K"])
        r.delay = 0.3
        assert deliver(wh, [sub]).delivered == 1
        assert deliveries(wh, "slow")[event_id]["attempts"] == 1
