"""The delivery engine: outbox events to subscribers, at least once, in order per record.

One run (``deliver``) does two things:

1. **Fan-out** (``fan_out``): for each subscriber, one ``event_deliveries`` row per outbox
   event after its ``fanned_out_to`` whose type it wants. A new subscriber starts at the
   current end of the outbox (``invsync events replay --since`` hands it history). The
   outbox is read under ``LOCK TABLE outbox_events IN SHARE MODE`` on PostgreSQL: that waits
   for every transaction still inserting events, so no event can later commit with an id
   below ``fanned_out_to`` and be skipped (ids are taken at insert, not at commit). On SQLite
   ``BEGIN IMMEDIATE`` already excludes every other writer.
2. **Sending**, each subscriber in its own thread (a slow or dead endpoint only holds its own
   thread), under a per-subscriber lock (``warehouse.locks.entity_lock``: an advisory lock on
   PostgreSQL, a file lock on SQLite) so two runs never send to one subscriber at once. Its
   pending deliveries are walked in outbox ``id`` order:

   - a delivery waits while an earlier delivery of the same (entity, key) to that
     subscriber is not delivered (pending, backing off or dead): receivers see each
     record's events in order;
   - each attempt is counted (and its retry time set) in a short transaction *before* the
     POST, and its outcome written in another *after* it. A process killed in between
     leaves the delivery pending and sends it again later with the same
     ``Idempotency-Key``: at least once on the wire, exactly once for a receiver that
     de-duplicates by that key;
   - 2xx: delivered. 408, 429, 5xx, timeouts and connection failures: retried after
     full-jitter exponential backoff (``connectors.retry.RetryPolicy.backoff``; a longer
     ``Retry-After`` wins) until ``max_attempts``, then dead. Any other answer (400, 401,
     404, 410, a redirect, ...) is dead at once: the same request would get the same answer;
     fix the receiver (or the secret) and replay. Dead means a row in ``event_dead_letters``;
   - the circuit breaker: ``breaker_failures`` retryable failures in a row open the circuit
     for ``breaker_cooldown_seconds``; while open the subscriber is skipped without spending
     attempts; then one probe is sent (half-open): success closes it, failure re-opens it.
     An answer that is not retryable proves the endpoint is up, so it resets the count.

Nothing here reads the environment or imports Prefect: the flow hands in resolved
subscribers. Subscriber URLs and secrets never reach a log line, an exception or the
database (errors are masked with ``connectors.redact``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from connectors.redact import Redactor, register_log_secret, truncate
from connectors.retry import RetryPolicy
from events.outbox import OutboxEvent
from events.sending import Outcome, post
from events.subscribers import Subscriber, SubscriberConfig
from schemas.tables import event_dead_letters, event_deliveries, event_subscribers, outbox_events
from warehouse.backends import backend_for
from warehouse.locks import EntityLocked, entity_lock

log = logging.getLogger(__name__)

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
STATUSES = (PENDING, DELIVERED, DEAD)

#: Outbox events handed out per fan-out transaction (it blocks event inserts while it runs).
FAN_OUT_BATCH = 5000
#: Deliveries read per query while walking a subscriber's queue.
PAGE = 200
#: How long fan-out waits for transactions still writing events.
FAN_OUT_LOCK_TIMEOUT_SECONDS = 10

Clock = Callable[[], datetime]
ClientFactory = Callable[[Subscriber], httpx.Client]


def utcnow() -> datetime:
    """The current instant, in UTC (the default clock)."""
    return datetime.now(UTC)


@dataclass
class SubscriberCounts:
    """What one run did for one subscriber.

    Attributes:
        fanned_out: deliveries created by this run's fan-out.
        delivered: acknowledged (2xx) in this run.
        retried: attempts that failed and were scheduled again.
        dead: deliveries that died in this run (out of attempts, or not retryable).
        skipped_open_circuit: due deliveries not attempted because the circuit was open.
        pending: deliveries still pending after the run (waiting, backing off or blocked).
        locked: another run was serving this subscriber, so this one left it alone.
        circuit: the breaker at the end of the run: closed, open or half-open.
        error: why serving the subscriber failed (a database error), masked.
    """

    fanned_out: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    skipped_open_circuit: int = 0
    pending: int = 0
    locked: bool = False
    circuit: str = "closed"
    error: str | None = None


@dataclass
class DeliveryCounts:
    """What one run did, per subscriber, with totals."""

    subscribers: dict[str, SubscriberCounts] = field(default_factory=dict)

    def _total(self, name: str) -> int:
        return sum(int(getattr(c, name)) for c in self.subscribers.values())

    @property
    def delivered(self) -> int:
        """Deliveries acknowledged in this run."""
        return self._total("delivered")

    @property
    def retried(self) -> int:
        """Failed attempts scheduled again."""
        return self._total("retried")

    @property
    def dead(self) -> int:
        """Deliveries that died in this run."""
        return self._total("dead")

    @property
    def skipped_open_circuit(self) -> int:
        """Due deliveries skipped because their subscriber's circuit was open."""
        return self._total("skipped_open_circuit")

    @property
    def pending(self) -> int:
        """Deliveries still pending after the run."""
        return self._total("pending")

    @property
    def locked(self) -> list[str]:
        """Subscribers another run was serving."""
        return [name for name, c in self.subscribers.items() if c.locked]

    @property
    def errors(self) -> dict[str, str]:
        """Subscribers whose serving failed, with why."""
        return {name: c.error for name, c in self.subscribers.items() if c.error}

    def to_json(self) -> dict[str, Any]:
        """Totals and per-subscriber counts, JSON-ready."""
        totals = ("delivered", "retried", "dead", "skipped_open_circuit", "pending")
        return {
            **{name: getattr(self, name) for name in totals},
            "subscribers": {name: asdict(c) for name, c in self.subscribers.items()},
        }


def deliver(
    engine: sa.Engine,
    subscribers: list[Subscriber],
    *,
    clock: Clock = utcnow,
    rng: random.Random | None = None,
    client_factory: ClientFactory | None = None,
    max_workers: int = 8,
    max_seconds: float | None = None,
) -> DeliveryCounts:
    """Fan out new events, then send every due delivery, each subscriber in its own thread.

    Args:
        engine: the warehouse engine (migrated).
        subscribers: the subscribers with their secrets (``events.subscribers``).
        clock: the current instant (injectable: backoff and the breaker are tested with it).
        rng: the source of backoff jitter (seed it in tests).
        client_factory: builds the HTTP client of a subscriber (default: an ``httpx.Client``
            with the subscriber's timeout and no redirects).
        max_workers: subscribers served at once; the others wait for a free thread.
        max_seconds: stop starting new attempts after this long (what is left stays pending
            for the next run), so a scheduled run ends before the next one is due.

    Returns:
        Counts per subscriber (``DeliveryCounts``).
    """
    counts = DeliveryCounts({s.name: SubscriberCounts() for s in subscribers})
    if not subscribers:
        return counts
    try:
        created = fan_out(engine, [s.config for s in subscribers], clock=clock)
    except sa.exc.OperationalError as exc:
        # A long transaction still writing events: hand them out next run; send what is due.
        log.warning("fan-out postponed to the next run: %s", type(exc).__name__)
        created = {}
    for name, number in created.items():
        counts.subscribers[name].fanned_out = number
    for subscriber in subscribers:
        register_log_secret(subscriber.config.url.get_secret_value())  # httpx logs URLs
    factory = client_factory or _default_client
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    shared_rng = rng or random.Random()
    workers = max(1, min(max_workers, len(subscribers)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deliver") as pool:
        futures = [
            pool.submit(
                _serve_safely,
                engine,
                subscriber,
                counts.subscribers[subscriber.name],
                clock=clock,
                rng=shared_rng,  # random() is atomic: threads may share it
                factory=factory,
                deadline=deadline,
            )
            for subscriber in subscribers
        ]
        for future in futures:
            future.result()
    return counts


def _default_client(subscriber: Subscriber) -> httpx.Client:
    # No redirects: a redirect is a configuration problem (update the URL), and following
    # one would send the signed body somewhere nobody configured.
    return httpx.Client(timeout=subscriber.config.timeout_seconds, follow_redirects=False)


# --- fan-out --------------------------------------------------------------------------------


def fan_out(
    engine: sa.Engine, configs: list[SubscriberConfig], *, clock: Clock = utcnow
) -> dict[str, int]:
    """Create the deliveries of new outbox events for each subscriber; return how many.

    A subscriber seen for the first time starts at the current end of the outbox.
    """
    created = {c.name: 0 for c in configs}
    for config in configs:
        while True:
            with engine.begin() as conn:
                number, more = _fan_out_batch(conn, config, clock())
            created[config.name] += number
            if not more:
                break
    return created


def _fan_out_batch(
    conn: sa.Connection, config: SubscriberConfig, now: datetime
) -> tuple[int, bool]:
    backend_for(conn).block_inserts(conn, outbox_events, FAN_OUT_LOCK_TIMEOUT_SECONDS)
    state = sa.select(event_subscribers.c.fanned_out_to).where(
        event_subscribers.c.name == config.name
    )
    # (SQLite renders no FOR UPDATE: its one writer at a time needs none.)
    start = conn.execute(state.with_for_update()).scalar_one_or_none()
    if start is None:
        end = conn.execute(sa.select(sa.func.coalesce(sa.func.max(outbox_events.c.id), 0)))
        conn.execute(
            event_subscribers.insert().values(
                name=config.name,
                fanned_out_to=end.scalar_one(),
                consecutive_failures=0,
                updated_at=now,
            )
        )
        return 0, False
    rows = conn.execute(
        sa.select(outbox_events.c.id, outbox_events.c.type)
        .where(outbox_events.c.id > start)
        .order_by(outbox_events.c.id)
        .limit(FAN_OUT_BATCH)
    ).all()
    if not rows:
        return 0, False
    wanted = [row.id for row in rows if config.wants(row.type)]
    number = queue_deliveries(conn, config.name, wanted, now)
    conn.execute(
        event_subscribers.update()
        .where(event_subscribers.c.name == config.name)
        .values(fanned_out_to=rows[-1].id, updated_at=now)
    )
    return number, len(rows) == FAN_OUT_BATCH


def queue_deliveries(conn: sa.Connection, subscriber: str, ids: list[int], now: datetime) -> int:
    """Create pending deliveries of outbox ``ids`` to ``subscriber`` (existing ones are
    left as they are); return how many were created."""
    if not ids:
        return 0
    existing = set(
        conn.execute(
            sa.select(event_deliveries.c.event_id).where(
                event_deliveries.c.subscriber == subscriber,
                event_deliveries.c.event_id.in_(ids),
            )
        ).scalars()
    )
    rows = [
        {
            "event_id": event_id,
            "subscriber": subscriber,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for event_id in ids
        if event_id not in existing
    ]
    if rows:
        conn.execute(event_deliveries.insert(), rows)
    return len(rows)


# --- sending --------------------------------------------------------------------------------


def _serve_safely(
    engine: sa.Engine, subscriber: Subscriber, counts: SubscriberCounts, **kw: Any
) -> None:
    """``_serve``, with a failure recorded (masked) instead of raised: one subscriber's
    database trouble must not stop the others."""
    redactor = Redactor(subscriber.credentials())
    try:
        _serve(engine, subscriber, counts, redactor=redactor, **kw)
    except EntityLocked:
        counts.locked = True
        log.info(
            "subscriber %s: another run is delivering to it; left to that run", subscriber.name
        )
    except Exception as exc:
        counts.error = truncate(redactor.text(f"{type(exc).__name__}: {exc}"), 300)
        log.error("subscriber %s: delivery stopped: %s", subscriber.name, counts.error)


@dataclass
class _Breaker:
    """The circuit breaker of one subscriber, as stored in ``event_subscribers``."""

    failures: int
    open_until: datetime | None

    def state(self, now: datetime) -> str:
        if self.open_until is None:
            return "closed"
        return "open" if now < self.open_until else "half-open"


@dataclass
class _Row:
    id: int
    status: str
    attempts: int
    next_attempt_at: datetime
    event: OutboxEvent


def _serve(
    engine: sa.Engine,
    subscriber: Subscriber,
    counts: SubscriberCounts,
    *,
    clock: Clock,
    rng: random.Random,
    factory: ClientFactory,
    deadline: float | None,
    redactor: Redactor,
) -> None:
    """Send the subscriber's due deliveries, under its lock (``EntityLocked`` if busy)."""
    with (
        entity_lock(engine, f"events-{subscriber.name}") as lock_conn,
        factory(subscriber) as client,
    ):
        tx = _transactions(engine, lock_conn)
        _SubscriberRun(subscriber, counts, tx, client, clock, rng, redactor).send_due(deadline)


class _SubscriberRun:
    """One run's walk through one subscriber's queue (see the module docstring)."""

    def __init__(
        self,
        subscriber: Subscriber,
        counts: SubscriberCounts,
        tx: Callable[[], Any],
        client: httpx.Client,
        clock: Clock,
        rng: random.Random,
        redactor: Redactor,
    ) -> None:
        self.subscriber = subscriber
        self.name = subscriber.name
        self.config = subscriber.config
        self.counts = counts
        self.tx = tx
        self.client = client
        self.clock = clock
        self.redactor = redactor
        self.policy = RetryPolicy(
            base_delay=self.config.backoff_base_seconds,
            max_delay=self.config.backoff_max_seconds,
            rng=rng,
        )
        with tx() as conn:
            self.breaker = _read_breaker(conn, self.name)

    def send_due(self, deadline: float | None) -> None:
        """Attempt every due delivery whose record is not held by an earlier one."""
        stop: str | None = None
        if self.breaker.state(self.clock()) == "open":
            stop = "circuit"
            log.warning("subscriber %s: circuit open; skipped", self.name)
        blocked: set[tuple[str, str]] = set()  # records whose later events must wait
        for row in _queue(self.tx, self.name):
            key = (row.event.entity, row.event.entity_key)
            if key in blocked:
                continue
            if row.status == DEAD or _aware(row.next_attempt_at) > self.clock():
                blocked.add(key)
                continue
            if stop is None and deadline is not None and time.monotonic() > deadline:
                stop = "deadline"
            if stop is not None:
                self.counts.skipped_open_circuit += stop == "circuit"
                blocked.add(key)
                continue
            delivered, circuit_opened = self._attempt(row)
            if not delivered:
                blocked.add(key)
            if circuit_opened:
                stop = "circuit"
        with self.tx() as conn:
            self.counts.pending = conn.execute(
                sa.select(sa.func.count()).where(
                    event_deliveries.c.subscriber == self.name,
                    event_deliveries.c.status == PENDING,
                )
            ).scalar_one()
        self.counts.circuit = self.breaker.state(self.clock())

    def _attempt(self, row: _Row) -> tuple[bool, bool]:
        """One attempt: counted, sent, recorded. Returns (delivered, circuit opened)."""
        now = self.clock()
        probing = self.breaker.state(now) == "half-open"
        attempt = row.attempts + 1
        # Drawn once: the wait after this attempt if it fails (full jitter, attempt-th).
        delay = self.policy.backoff(row.attempts)
        if_killed = now + timedelta(seconds=self.config.timeout_seconds + delay)
        with self.tx() as conn:
            if not _start_attempt(conn, row, self.name, if_killed):
                return False, False  # replayed or changed under us: the next run sees it
        outcome = post(self.client, self.subscriber, row.event, now, self.redactor)
        done = self.clock()
        with self.tx() as conn:
            if outcome.delivered:
                _finish(conn, row, self.name, DELIVERED, outcome, delivered_at=done)
                self.counts.delivered += 1
                if probing:
                    log.info("subscriber %s: probe delivered; circuit closed", self.name)
                self._reset_breaker(conn, done)
                return True, False
            if outcome.retryable and attempt < self.config.max_attempts:
                wait = max(delay, outcome.retry_after or 0.0)
                next_at = done + timedelta(seconds=wait)
                _finish(conn, row, self.name, PENDING, outcome, next_at=next_at)
                self.counts.retried += 1
                log.warning(
                    "subscriber %s: event %s attempt %d of %d failed (%s); next in %.1fs",
                    self.name, row.event.event_id, attempt, self.config.max_attempts,
                    outcome.error, wait,
                )  # fmt: skip
            else:
                _finish(conn, row, self.name, DEAD, outcome)
                _dead_letter(conn, row, self.name, attempt, outcome.error or "", done)
                self.counts.dead += 1
                log.error(
                    "subscriber %s: event %s dead after %d attempt(s): %s",
                    self.name, row.event.event_id, attempt, outcome.error,
                )  # fmt: skip
            if not outcome.retryable:
                # The endpoint answered: it is up, whatever it thought of this event.
                self._reset_breaker(conn, done)
                return False, False
            return False, self._count_failure(conn, done, probing)

    def _reset_breaker(self, conn: sa.Connection, now: datetime) -> None:
        if self.breaker.failures or self.breaker.open_until is not None:
            self.breaker = _Breaker(0, None)
            _write_breaker(conn, self.name, self.breaker, now)

    def _count_failure(self, conn: sa.Connection, now: datetime, probing: bool) -> bool:
        """Count a retryable failure; True when it opens the circuit."""
        self.breaker = _Breaker(self.breaker.failures + 1, self.breaker.open_until)
        opened = probing or self.breaker.failures >= self.config.breaker_failures
        if opened:
            cooldown = self.config.breaker_cooldown_seconds
            self.breaker.open_until = now + timedelta(seconds=cooldown)
            log.warning(
                "subscriber %s: circuit opened for %gs after %d failure(s) in a row",
                self.name, cooldown, self.breaker.failures,
            )  # fmt: skip
        _write_breaker(conn, self.name, self.breaker, now)
        return opened


def _transactions(engine: sa.Engine, lock_conn: sa.Connection | None) -> Callable[[], Any]:
    """Short transactions: on PostgreSQL on the connection holding the subscriber's lock
    (one connection per subscriber thread, and no sending once that session is gone), on
    SQLite on a pooled connection."""

    @contextmanager
    def tx() -> Iterator[sa.Connection]:
        if lock_conn is None:
            with engine.begin() as conn:
                yield conn
        else:
            with lock_conn.begin():
                yield lock_conn

    return tx


def _queue(tx: Callable[[], Any], subscriber: str) -> Iterator[_Row]:
    """The subscriber's undelivered deliveries (pending and dead), in outbox id order, read a
    page at a time (each page in its own transaction: nothing is held during sends)."""
    after = 0
    while True:
        with tx() as conn:
            rows = conn.execute(
                sa.select(
                    event_deliveries.c.status,
                    event_deliveries.c.attempts,
                    event_deliveries.c.next_attempt_at,
                    outbox_events,
                )
                .join(outbox_events, outbox_events.c.id == event_deliveries.c.event_id)
                .where(
                    event_deliveries.c.subscriber == subscriber,
                    event_deliveries.c.status != DELIVERED,
                    event_deliveries.c.event_id > after,
                )
                .order_by(event_deliveries.c.event_id)
                .limit(PAGE)
            ).all()
        if not rows:
            return
        for row in rows:
            m = row._mapping
            event = OutboxEvent(**{c.name: m[c] for c in outbox_events.c})
            yield _Row(event.id, m["status"], m["attempts"], m["next_attempt_at"], event)
        after = rows[-1].id


def _key(row: _Row, subscriber: str) -> Any:
    return sa.and_(
        event_deliveries.c.event_id == row.id, event_deliveries.c.subscriber == subscriber
    )


def _start_attempt(conn: sa.Connection, row: _Row, subscriber: str, retry_at: datetime) -> bool:
    """Count the attempt before sending, with the time to retry if this process dies
    mid-send. False when the delivery changed since it was read (a replay)."""
    result = conn.execute(
        event_deliveries.update()
        .where(
            _key(row, subscriber),
            event_deliveries.c.status == PENDING,
            event_deliveries.c.attempts == row.attempts,
        )
        .values(attempts=row.attempts + 1, next_attempt_at=retry_at)
    )
    return result.rowcount == 1


def _finish(
    conn: sa.Connection,
    row: _Row,
    subscriber: str,
    status: str,
    outcome: Outcome,
    *,
    delivered_at: datetime | None = None,
    next_at: datetime | None = None,
) -> None:
    values: dict[str, Any] = {
        "status": status,
        "last_status_code": outcome.status_code,
        "last_error": outcome.error,
    }
    if delivered_at is not None:
        values["delivered_at"] = delivered_at
    if next_at is not None:
        values["next_attempt_at"] = next_at
    conn.execute(event_deliveries.update().where(_key(row, subscriber)).values(**values))


def _dead_letter(
    conn: sa.Connection, row: _Row, subscriber: str, attempts: int, error: str, when: datetime
) -> None:
    conn.execute(
        event_dead_letters.insert().values(
            event_id=row.id,
            subscriber=subscriber,
            attempts=attempts,
            last_error=error,
            died_at=when,
        )
    )


def _read_breaker(conn: sa.Connection, subscriber: str) -> _Breaker:
    row = conn.execute(
        sa.select(event_subscribers.c.consecutive_failures, event_subscribers.c.circuit_open_until)
        .where(event_subscribers.c.name == subscriber)
    ).one_or_none()  # fmt: skip
    if row is None:
        return _Breaker(0, None)
    until = row.circuit_open_until
    return _Breaker(row.consecutive_failures, None if until is None else _aware(until))


def _write_breaker(conn: sa.Connection, subscriber: str, breaker: _Breaker, now: datetime) -> None:
    conn.execute(
        event_subscribers.update()
        .where(event_subscribers.c.name == subscriber)
        .values(
            consecutive_failures=breaker.failures,
            circuit_open_until=breaker.open_until,
            updated_at=now,
        )
    )


def _aware(value: datetime) -> datetime:
    # SQLite hands timestamps back without their zone; they are stored in UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)
