"""Credentials: HTTP Basic API keys and legacy ``JSESSIONID`` sessions."""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

LOGIN_PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Finale Inventory - Sign in</title></head>
<body>
  <h1>Sign in to Finale Inventory</h1>
  <p>Your session has expired. Please sign in again.</p>
  <form method="post" action="/login">
    <label>Username <input name="username"></label>
    <label>Password <input name="password" type="password"></label>
    <button type="submit">Sign in</button>
  </form>
</body>
</html>
"""
"""What Finale serves (status 200, ``text/html``) to an expired or unknown session."""


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """``(user, password)`` from an ``Authorization: Basic ...`` header, else ``None``."""
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        user, sep, password = decoded.partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return (user, password) if sep else None


@dataclass
class Session:
    """A logged-in user and when the session was last used (monotonic seconds)."""

    username: str
    last_seen: float


class SessionStore:
    """Sessions by token, expiring after ``ttl`` seconds without use (like a servlet session).

    Args:
        ttl: idle seconds before a session expires.
        clock: monotonic clock (injectable for tests).
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def create(self, username: str) -> str:
        """Start a session and return its token (the ``JSESSIONID`` value)."""
        token = secrets.token_hex(16).upper()
        self._sessions[token] = Session(username, self._clock())
        return token

    def lookup(self, token: str) -> Session | None:
        """The live session for ``token`` (refreshing its idle timer), else ``None``."""
        session = self._sessions.get(token)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_seen > self.ttl:
            del self._sessions[token]
            return None
        session.last_seen = now
        return session

    def expire_all(self) -> int:
        """End every session; returns how many there were."""
        count = len(self._sessions)
        self._sessions.clear()
        return count
