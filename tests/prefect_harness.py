"""The test session's Prefect servers on a throwaway PostgreSQL database instead of SQLite.

Prefect's own ``prefect_test_harness`` always puts its server on a new SQLite file. Under
load a SQLite server answers some writes (``POST /api/task_runs/``, logs, events) with 503
while another write holds the database lock, and the client waits about 2 s before it tries
again; a new SQLite file also costs every server start Prefect's migrations (~10 s here).
A production server runs on PostgreSQL, so the tests do too:

- ``prefect_database`` creates one database for the session (dropped at its end, connections
  and all) and names it in ``INVSYNC_TEST_PREFECT_DATABASE_URL``, which
  ``invsync.prefect_server`` hands to the temporary servers the CLI starts (the tests' CLI
  subprocesses inherit it). Only the first server to start migrates it.
- ``prefect_server_harness`` is ``prefect_test_harness`` with that database: one server
  process, ``PREFECT_API_URL`` pointed at it, logs and events drained before it stops. Its
  event persister flushes every 0.5 s instead of 5 s, so a test reading an event back
  (polling until it appears) waits less.
"""

from __future__ import annotations

import inspect
import socket
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import sqlalchemy as sa

from invsync.prefect_server import TEST_DATABASE_ENV

__all__ = ["TEST_DATABASE_ENV", "prefect_database", "prefect_server_harness"]


@contextmanager
def prefect_database(admin: sa.Engine) -> Iterator[str]:
    """A new, empty database on ``admin``'s server; yields its ``postgresql+asyncpg`` URL.

    Args:
        admin: an AUTOCOMMIT engine allowed to create and drop databases.
    """
    name = f"prefect_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        url = admin.url.set(drivername="postgresql+asyncpg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def prefect_server_harness(database_url: str, startup_timeout: int = 60) -> Iterator[str]:
    """``prefect.testing.utilities.prefect_test_harness`` on ``database_url``.

    Starts the server as Prefect's harness does (``SubprocessASGIServer``, which hands the
    current settings, the database URL among them, to the server process), registers it as
    the default temporary server so nothing in the process starts a second one, and points
    ``PREFECT_API_URL`` at it. Yields the API URL.
    """
    import prefect.context
    import prefect.settings
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.server.database.dependencies import temporary_database_interface
    from prefect.utilities.asyncutils import run_coro_as_sync

    with ExitStack() as stack:
        stack.enter_context(temporary_database_interface())
        stack.enter_context(
            prefect.settings.temporary_settings(
                updates={
                    prefect.settings.PREFECT_SERVER_DATABASE_CONNECTION_URL: database_url,
                    # Events are written in batches at most this far apart (default 5 s); the
                    # tests that read an event back poll until it is there.
                    prefect.settings.PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL: 0.5,
                }
            )
        )
        server = SubprocessASGIServer(port=_free_port())
        prior_default = SubprocessASGIServer._instances.get(None)
        SubprocessASGIServer._instances[None] = server
        try:
            server.start(timeout=startup_timeout)
            stack.enter_context(
                prefect.settings.temporary_settings(
                    updates={prefect.settings.PREFECT_API_URL: server.api_url}
                )
            )
            # As Prefect's harness: code in a context copied before the harness started
            # (an event loop made at collection time) sees these settings too.
            stack.enter_context(
                prefect.context._temporary_global_settings_context(
                    prefect.context.get_settings_context()
                )
            )
            yield server.api_url

            async def drain() -> None:
                # Logs and events go out before the server stops, and none leak onward.
                try:
                    result = APILogWorker.instance().drain()
                    if inspect.isawaitable(result):
                        await result
                except RuntimeError:
                    pass  # the log worker never started
                result = EventsWorker.drain_all()
                if inspect.isawaitable(result):
                    await result

            run_coro_as_sync(drain())
        finally:
            server.stop()
            if prior_default is not None:
                SubprocessASGIServer._instances[None] = prior_default
            else:
                SubprocessASGIServer._instances.pop(None, None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
