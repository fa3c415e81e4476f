"""Helpers for the data-quality tests (a uniquely named module: no conftest clash).

``SlackReceiver`` is a real HTTP server on 127.0.0.1 standing in for a Slack webhook: the
alert path under test posts to it over loopback, and the tests read what arrived.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: The webhook path; a secret in real life, so alerts must never quote it.
SLACK_PATH = "/services/T000/B000/dq-hook-secret"


class SlackReceiver:
    """Records every JSON body POSTed to it and answers 200 ``ok``."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length))
                with receiver._lock:
                    receiver.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        host, port = self.server.server_address[:2]
        self.url = f"http://{host!s}:{port}{SLACK_PATH}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def take(self) -> list[str]:
        """The headlines received since the last ``take``, sorted."""
        with self._lock:
            texts = [body["text"] for body in self.bodies]
            self.bodies.clear()
        return sorted(" ".join(text.split()[-2:]) for text in texts)

    def errors(self) -> list[str]:
        """The error blocks of the alerts received since the last ``take``."""
        with self._lock:
            return [
                block["text"]["text"]
                for body in self.bodies
                for block in body.get("blocks", [])
                if block["text"]["text"].startswith("```")
            ]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
