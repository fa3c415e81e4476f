"""Run the sandbox: in a background thread (tests, demo, benchmarks) or in the foreground (CLI).

with start_in_thread(SandboxConfig(port=0, products=500)) as sandbox:
    httpx.get(f"{sandbox.base_url}/acme/api/product/", auth=("sandbox-key", "sandbox-secret"))

serve(SandboxConfig(port=8700))   # blocks; prints the URL, credentials and env vars
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from types import TracebackType
from typing import TextIO

import uvicorn

from sandbox.app import SandboxState, create_app
from sandbox.config import SandboxConfig

__all__ = [
    "SandboxConfig",
    "SandboxHandle",
    "sandbox_env",
    "serve",
    "ssl_context",
    "start_in_thread",
]

STARTUP_TIMEOUT_SECONDS = 15.0


class _IntentionalDropFilter(logging.Filter):
    # The ``drop`` fault ends a response early on purpose; uvicorn would log each one as an
    # application error. Hide exactly that message, nothing else.
    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing response" not in record.getMessage()


@lru_cache(maxsize=1)
def ssl_context() -> ssl.SSLContext:
    """One default SSL context per process, for short-lived httpx clients.

    Building one costs ~35 ms (it loads the CA bundle); tests and the control client create
    many clients, so they share this one (``httpx.Client(verify=ssl_context())``).
    """
    return ssl.create_default_context()


def _answers(host: str, port: int) -> bool:
    # Plain http.client: no SSL context to build, so the startup probe costs ~1 ms.
    connection = http.client.HTTPConnection(host, port, timeout=2.0)
    try:
        connection.request("GET", "/__sandbox__/health")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _IntentionalDropFilter) for f in logger.filters):
        logger.addFilter(_IntentionalDropFilter())


def _bind(host: str, port: int) -> socket.socket:
    # Binding ourselves (rather than letting uvicorn do it) lets port 0 report the real port.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP
    # (accepted sockets inherit it). With proto 0, Nagle plus delayed ACKs add ~40 ms to
    # every response on a kept-alive connection.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _server(
    config: SandboxConfig, clock: Callable[[], float] = time.monotonic
) -> tuple[uvicorn.Server, SandboxState]:
    _install_log_filter()
    app = create_app(config, clock=clock)
    uv_config = uvicorn.Config(
        app,
        log_level=config.log_level,
        access_log=False,
        lifespan="off",
        # A ``timeout`` fault may still be sleeping when the server stops; do not wait for it.
        timeout_graceful_shutdown=1,
    )
    return uvicorn.Server(uv_config), app.state.sandbox


def _base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def sandbox_env(config: SandboxConfig, base_url: str) -> dict[str, str]:
    """The environment variables that point inventory-sync at a sandbox."""
    return {
        "FINALE_BASE_URL": base_url,
        "FINALE_ACCOUNT": config.account,
        "FINALE_API_KEY": config.api_key,
        "FINALE_API_SECRET": config.api_secret,
    }


class SandboxHandle:
    """A sandbox running in a daemon thread; stop it with :meth:`stop` or a ``with`` block."""

    def __init__(
        self,
        config: SandboxConfig,
        base_url: str,
        server: uvicorn.Server,
        thread: threading.Thread,
        state: SandboxState,
    ) -> None:
        self.config = config
        self.base_url = base_url
        self.state = state
        """The app state (store, limiter, faults, sessions) for in-process inspection."""
        self._server = server
        self._thread = thread

    @property
    def api_url(self) -> str:
        """``{base_url}/{account}/api`` (no trailing slash)."""
        return f"{self.base_url}/{self.config.account}/api"

    @property
    def env(self) -> dict[str, str]:
        """FINALE_* variables pointing at this sandbox."""
        return sandbox_env(self.config, self.base_url)

    def stop(self, timeout: float = 5.0, *, wait: bool = True) -> None:
        """Stop the server; with ``wait`` (default) block until its thread has ended.

        uvicorn needs ~0.15 s to shut down; ``wait=False`` lets that overlap other work.
        """
        self._server.should_exit = True
        if wait:
            self._thread.join(timeout)

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_in_thread(
    config: SandboxConfig | None = None, *, clock: Callable[[], float] = time.monotonic
) -> SandboxHandle:
    """Start a sandbox in a daemon thread and return once it answers HTTP.

    Data is generated lazily on first use, so this returns in a fraction of a second even for
    large accounts. ``config.port`` 0 picks a free port; ``handle.base_url`` has the real one.
    ``clock`` (monotonic seconds) drives session expiry and rate-limit refills: tests pass a
    fake one and move it on instead of sleeping.

    Raises:
        RuntimeError: when the server does not come up within 15 seconds.
    """
    config = config or SandboxConfig(port=0)
    sock = _bind(config.host, config.port)
    base_url = _base_url(config.host, sock.getsockname()[1])
    server, state = _server(config, clock)
    thread = threading.Thread(
        target=server.run,
        kwargs={"sockets": [sock]},
        name=f"finale-sandbox-{base_url}",
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.started and _answers(config.host, sock.getsockname()[1]):
            return SandboxHandle(config, base_url, server, thread, state)
        if not thread.is_alive():
            break
        time.sleep(0.01)
    server.should_exit = True
    raise RuntimeError(f"the Finale sandbox did not start on {base_url}")


def banner(config: SandboxConfig, base_url: str) -> str:
    """The text :func:`serve` prints on start (credentials are the sandbox's fake ones)."""
    env = "\n".join(f"  export {k}={v}" for k, v in sandbox_env(config, base_url).items())
    rate = f"{config.rate_limit_per_minute}/min" if config.rate_limit_per_minute else "off"
    return (
        f"Finale sandbox listening on {base_url}\n"
        f"  account:      {config.account} ({config.products:,} products, seed {config.seed})\n"
        f"  API root:     {base_url}/{config.account}/api/\n"
        f"  Basic auth:   {config.api_key} / {config.api_secret}\n"
        f"  session auth: {config.username} / {config.password}"
        f" (POST /{config.account}/api/auth)\n"
        f"  rate limit:   {rate}; faults: {config.faults or 'none'}\n"
        f"  control API:  {base_url}/__sandbox__/info\n"
        f"Point inventory-sync at it with:\n{env}\n"
    )


def serve(config: SandboxConfig, out: TextIO | None = None) -> None:
    """Run the sandbox in the foreground until interrupted (Ctrl-C).

    Prints the base URL, account, accepted credentials and the FINALE_* environment variables
    first, so a user can copy them.
    """
    sock = _bind(config.host, config.port)
    base_url = _base_url(config.host, sock.getsockname()[1])
    stream = out or sys.stdout
    stream.write(banner(config, base_url))
    stream.flush()
    _server(config)[0].run(sockets=[sock])
