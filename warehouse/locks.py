"""One sync per entity at a time, whoever starts it (a deployment, a backfill or the CLI).

The lock is the database backend's (``WarehouseBackend.entity_lock``): on PostgreSQL a
session-level advisory lock held on a dedicated connection for the whole entity run, on
SQLite (the embedded, single-machine default) an exclusive ``flock`` on a file next to the
database. Either way it goes when the process dies, so a crashed run never blocks the
next one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from warehouse.backends import backend_for


class EntityLocked(Exception):
    """Another run holds the entity's lock and it did not free up in time."""


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

    def wait() -> None:
        if time.monotonic() >= deadline:
            raise EntityLocked(
                f"{entity} is already being synced by another run (its lock is held); this "
                "run skips it rather than write alongside. It runs again on the next schedule."
            )
        time.sleep(poll_seconds)

    with backend_for(engine).entity_lock(engine, entity, wait) as conn:
        yield conn
