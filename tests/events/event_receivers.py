"""Real HTTP receivers on loopback for the delivery tests, and the warehouse they share.

A ``Receiver`` is a threaded ``http.server`` that records every POST (body, Idempotency-Key,
whether the signature verifies) in arrival order, on a ``Log`` shared by every receiver of a
test, so tests can say "B's events all arrived before A's first timeout" without timing.
Its behaviour is a script: answer ``fail_next`` requests with an error status, hold
answers (``hold``) until released, answer slowly, or hang until the client times out.
``closed_port_url`` is a dead endpoint (connection refused).
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from events.outbox import record_event
from events.signing import verify
from events.subscribers import Subscriber, SubscriberConfig
from schemas.tables import (
    event_dead_letters,
    event_deliveries,
    event_subscribers,
    outbox_events,
)
from warehouse.db import create_warehouse_engine
from warehouse.migrate import upgrade


@dataclass
class Received:
    """One request as the receiver saw it."""

    seq: int
    receiver: str
    key: str
    body: bytes
    signature: str
    signature_ok: bool
    answered: int | None = None

    @property
    def event(self) -> dict[str, Any]:
        """The delivered envelope."""
        return dict(json.loads(self.body))


@dataclass
class Log:
    """Every request of every receiver of a test, in arrival order."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    seq: Iterator[int] = field(default_factory=itertools.count)
    entries: list[Received] = field(default_factory=list)

    def add(self, entry: Received) -> None:
        with self.lock:
            self.entries.append(entry)

    def of(self, receiver: str) -> list[Received]:
        with self.lock:
            return [e for e in self.entries if e.receiver == receiver]


class Receiver:
    """A webhook receiver on 127.0.0.1 that verifies signatures and records requests.

    Args:
        name: its name in the log.
        secret: the signing secret it verifies with.
        log: the test's shared log (a new one if None).
    """

    def __init__(self, name: str, secret: str, log: Log | None = None) -> None:
        self.name = name
        self.secret = secret
        self.log = log or Log()
        self.fail_next = 0
        self.fail_status = 503
        self.fail_headers: dict[str, str] = {}
        self.fail_entity_keys: set[str] = set()  # always fail the events of these records
        self.answer_body = b"ok"
        self.delay = 0.0  # answer this late (seconds)
        self.hold: threading.Event | None = None  # answer only once set
        self.hold_after = 0  # ...and only from this request on (0-based)
        self.arrived = threading.Event()  # set at each request (tests wait on it)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                signature = self.headers.get("Invsync-Signature", "")
                entry = Received(
                    seq=next(receiver.log.seq),
                    receiver=receiver.name,
                    key=self.headers.get("Idempotency-Key", ""),
                    body=body,
                    signature=signature,
                    signature_ok=verify(receiver.secret, signature, body),
                )
                receiver.log.add(entry)
                receiver.arrived.set()
                hold = receiver.hold
                position = sum(1 for e in receiver.requests if e.seq < entry.seq)
                if hold is not None and position >= receiver.hold_after:
                    hold.wait(30)
                if receiver.delay:
                    threading.Event().wait(receiver.delay)
                status, headers = 200, {}
                with receiver.log.lock:
                    if receiver.fail_next > 0:
                        receiver.fail_next -= 1
                        status, headers = receiver.fail_status, receiver.fail_headers
                    elif entry.event.get("key") in receiver.fail_entity_keys:
                        status, headers = receiver.fail_status, receiver.fail_headers
                entry.answered = status
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(receiver.answer_body)))
                    self.end_headers()
                    self.wfile.write(receiver.answer_body)
                except OSError:
                    pass  # the client is gone (timed out, or killed)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{uuid.uuid4().hex}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()

    @property
    def requests(self) -> list[Received]:
        """Every request received, in order."""
        return self.log.of(self.name)

    def processed(self) -> list[Received]:
        """What a receiver that de-duplicates by Idempotency-Key processed: the first
        acknowledged (2xx) request of each key, in order."""
        seen: set[str] = set()
        out = []
        for r in self.requests:
            if r.answered is not None and 200 <= r.answered < 300 and r.key not in seen:
                seen.add(r.key)
                out.append(r)
        return out


def closed_port_url() -> str:
    """A loopback URL nothing listens on: connection refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/dead"


def subscriber(
    name: str, url: str, secret: str, events: tuple[str, ...] = ("*",), **knobs: Any
) -> Subscriber:
    """A resolved subscriber with fast test defaults (no backoff wait, short timeout)."""
    values: dict[str, Any] = {
        "timeout_seconds": 2.0,
        "max_attempts": 5,
        "backoff_base_seconds": 0.001,
        "backoff_max_seconds": 0.001,
        "breaker_failures": 100,
        "breaker_cooldown_seconds": 60.0,
        **knobs,
    }
    config = SubscriberConfig(
        name=name, url=SecretStr(url), events=events, secret_ref="env:X", **values
    )
    return Subscriber(config=config, secret=SecretStr(secret))


def add_events(
    engine: sa.Engine, keys: list[str], type: str = "purchase_order.status_changed"
) -> list[str]:
    """Record one event per key (in order, one transaction each); return their event ids."""
    ids = []
    for n, key in enumerate(keys):
        with engine.begin() as conn:
            ids.append(
                record_event(conn, type, entity="purchase_orders", entity_key=key, payload={"n": n})
            )
    return ids


def deliveries(engine: sa.Engine, subscriber: str) -> dict[str, dict[str, Any]]:
    """The subscriber's deliveries by event id (uuid)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                outbox_events.c.id,
                outbox_events.c.event_id.label("uuid"),
                *[c for c in event_deliveries.c if c.name != "event_id"],
            )
            .join(outbox_events, outbox_events.c.id == event_deliveries.c.event_id)
            .where(event_deliveries.c.subscriber == subscriber)
        ).all()
    return {r.uuid: dict(r._mapping) for r in rows}


class Clock:
    """A settable clock for ``deliver(clock=...)``."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


# --- a warehouse per module and backend, emptied between tests -------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def wh_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated warehouse shared by a module's tests: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('events') / 'warehouse.db'}"
        upgrade(url)
        yield url
        return
    admin = request.getfixturevalue("pg_admin_engine")
    name = f"invsync_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def wh(wh_url: str) -> Iterator[sa.Engine]:
    """The module's warehouse engine, with the event tables emptied before the test."""
    engine = create_warehouse_engine(wh_url)
    with engine.begin() as conn:
        for table in (event_dead_letters, event_deliveries, event_subscribers, outbox_events):
            conn.execute(table.delete())
    yield engine
    engine.dispose()


def subscribers_file(path: Path, url: str, **options: object) -> Path:
    """Write a subscribers file at ``path``: one subscriber "app" of ``purchase_order.*`` at
    ``url``, its secret in ``APP_HOOK_SECRET``, with ``options`` (e.g. ``max_attempts=1``)."""
    lines = [
        "[[subscribers]]",
        'name = "app"',
        f'url = "{url}"',
        'events = ["purchase_order.*"]',
        'secret = "env:APP_HOOK_SECRET"',
        *(f"{key} = {json.dumps(value)}" for key, value in options.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
