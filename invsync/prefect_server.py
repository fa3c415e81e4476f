"""A temporary Prefect server for the CLI that dies with it, even when the CLI is killed.

With no ``PREFECT_API_URL``, Prefect starts a temporary server by itself, but as a plain child
process: when the CLI is killed outright (SIGKILL, out of memory) that server is re-parented
and keeps running. The CLI starts its own instead, the way Prefect does (uvicorn serving
Prefect's ``create_app``), asking Linux to stop it when its parent dies, and points this
process's Prefect settings at it for the command's duration.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

#: Run by the server's own process before it becomes uvicorn: ask for SIGTERM when the CLI
#: dies (``prctl(PR_SET_PDEATHSIG)``, kept across ``exec``), and stop at once if the CLI is
#: already gone.
_DIE_WITH_PARENT = """
import ctypes, os, signal, sys
parent = int(sys.argv[1])
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass  # not Linux: the CLI still stops the server when it exits normally
if os.getppid() != parent:
    sys.exit(0)
os.execv(sys.executable, [sys.executable, "-m", "uvicorn", *sys.argv[2:]])
"""

STARTUP_SECONDS_DEFAULT = 60.0

#: Test-only: the test suite names its throwaway PostgreSQL database here so the servers the
#: CLI starts under test use it (already migrated, and no 503 while SQLite is locked) instead
#: of SQLite in ``PREFECT_HOME``. Nothing else sets it; unset, the server is Prefect's default.
TEST_DATABASE_ENV = "INVSYNC_TEST_PREFECT_DATABASE_URL"


@contextmanager
def temporary_server() -> Iterator[None]:
    """Run the block against a temporary Prefect server, unless one is configured.

    A configured ``PREFECT_API_URL`` (a real server, a test harness, an outer call of this)
    is used as it is.

    Raises:
        RuntimeError: the server did not answer within
            ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` (default 60).
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    port = _free_port()
    args = [
        "--factory", "prefect.server.api.server:create_app",
        "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "error", "--lifespan", "on",
    ]  # fmt: skip
    env = {**os.environ, "PREFECT_UI_ENABLED": "0"}
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if test_database := os.environ.get(TEST_DATABASE_ENV):
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = test_database
    process = subprocess.Popen(
        [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Stopped when the process exits, as Prefect stops its own: exit hooks run last-in
    # first-out, so Prefect's (registered during the runs) first send their last logs and
    # events to it.
    atexit.register(_stop, process)
    url = f"http://127.0.0.1:{port}/api"
    _wait_until_healthy(url, process)
    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_until_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    limit = float(
        os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", STARTUP_SECONDS_DEFAULT)
    )
    deadline = time.monotonic() + limit
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the temporary Prefect server exited ({process.returncode})")
            try:
                if client.get(f"{url}/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)  # polling a starting server; nothing depends on the timing
    raise RuntimeError(
        f"the temporary Prefect server did not start within {limit:g}s; raise "
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS or set PREFECT_API_URL"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
