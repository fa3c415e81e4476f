"""Fixtures for the alerting tests: a loopback HTTP receiver standing in for SendGrid and Slack.

The receiver is a real HTTP server on 127.0.0.1 (port 0: the OS picks a free one). It
records every request and answers with scripted responses per path, so tests assert on the
exact bytes a channel put on the wire.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Recorded:
    """One request the receiver got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """A scripted answer: status, body, and a delay before answering (to provoke timeouts)."""

    status: int = 200
    body: str = "ok"
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    """Records requests; answers each path with its scripted replies, then with 200 ``ok``."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._replies: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = receiver._record(Recorded("POST", self.path, headers, body))
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    payload = reply.body.encode()
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left: that is the point of the delay

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        host, port = self.server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _record(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            queue = self._replies.get(request.path) or []
            return queue.pop(0) if queue else Reply()

    @staticmethod
    def reply(
        status: int = 200, body: str = "ok", *, delay: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> Reply:  # fmt: skip
        """A scripted answer (a method, so tests need not import from this conftest)."""
        return Reply(status, body, delay, headers or {})

    def script(self, path: str, *replies: Reply) -> None:
        """Answer the next requests to ``path`` with ``replies``, in order."""
        with self._lock:
            self._replies.setdefault(path, []).extend(replies)

    def to(self, path: str) -> list[Recorded]:
        """The requests made to ``path``."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A fresh loopback receiver per test."""
    server = Receiver()
    server.start()
    try:
        yield server
    finally:
        server.stop()
