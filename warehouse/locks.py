"""One sync per entity at a time, whoever starts it (a deployment, a backfill or the CLI).

PostgreSQL: a session-level advisory lock held on a dedicated connection for the whole
entity run. If the process dies the connection closes and the lock goes with it, so a
crashed run never blocks the next one.

SQLite (the embedded, single-machine default): an exclusive ``flock`` on a file next to the
database, which the operating system also releases when the process dies.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa


class EntityLocked(Exception):
    """Another run holds the entity's lock and it did not free up in time."""


def _lock_key(entity: str) -> int:
    # A stable signed 64-bit key per entity (hash() is salted per process, so not that).
    digest = hashlib.sha256(f"inventory-sync:{entity}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def entity_lock(
    engine: sa.Engine, entity: str, *, wait_seconds: float = 0.0, poll_seconds: float = 1.0
) -> Iterator[sa.Connection | None]:
    """Hold the entity's lock for the duration of the block.

    On PostgreSQL the lock is a session advisory lock, and the block gets the connection
    that holds it: a run that does its writes on that connection cannot go on unlocked,
    because if the connection dies the lock and the writes die with it. On SQLite (a file
    lock, held by the process) the block gets None.

    Args:
        engine: the warehouse engine.
        entity: the entity name.
        wait_seconds: how long to wait for a busy lock before giving up (0 = do not wait).
        poll_seconds: how often to retry a busy lock.

    Raises:
        EntityLocked: with a message saying another run is syncing the entity.
    """
    deadline = time.monotonic() + wait_seconds
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, entity, deadline, poll_seconds) as conn:
            yield conn
    else:
        with _file_lock(engine, entity, deadline, poll_seconds):
            yield None


def _busy(entity: str) -> EntityLocked:
    return EntityLocked(
        f"{entity} is already being synced by another run (its lock is held); this run "
        "skips it rather than write alongside. It runs again on the next schedule."
    )


@contextmanager
def _advisory_lock(
    engine: sa.Engine, entity: str, deadline: float, poll: float
) -> Iterator[sa.Connection]:
    key = _lock_key(entity)
    with engine.connect() as conn:
        default = conn.default_isolation_level
        conn.execution_options(isolation_level="AUTOCOMMIT")
        while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
            if time.monotonic() >= deadline:
                raise _busy(entity)
            time.sleep(poll)
        # The block may run transactions on this connection (the lock is per session).
        conn.commit()  # ends SQLAlchemy's autobegun (no-op) transaction
        conn.execution_options(isolation_level=default)
        try:
            yield conn
        finally:
            try:
                if conn.in_transaction():
                    conn.rollback()
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
            except sa.exc.DBAPIError:
                pass  # the connection is gone, and its session's lock with it


@contextmanager
def _file_lock(engine: sa.Engine, entity: str, deadline: float, poll: float) -> Iterator[None]:
    database = engine.url.database
    folder = Path(database).resolve().parent if database and database != ":memory:" else None
    path = (folder or Path(os.environ.get("TMPDIR", "/tmp"))) / f".invsync-{entity}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _busy(entity) from None
                time.sleep(poll)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
