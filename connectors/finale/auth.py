"""Finale authentication: HTTP Basic with an API key, or a login session.

The transport asks the authenticator for ``Credentials`` before each request and applies
them; the session authenticator logs in lazily (through a callable the transport provides,
so the login is rate limited and classified like any request) and again after the transport
reports that the session expired.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson

from connectors.finale.errors import AuthError, RetryableError, auth_hint
from connectors.finale.settings import FinaleSettings

LoginCall = Callable[[str, dict[str, Any]], httpx.Response]
"""``login(url, json_body) -> response``: one POST, rate limited, non-2xx already raised."""

_JSESSIONID = re.compile(r"(?:^|[;,\s])JSESSIONID=([^;,\s]+)", re.IGNORECASE)


@dataclass(frozen=True)
class Credentials:
    """What one request carries to authenticate.

    Attributes:
        httpx_auth: an ``httpx.Auth`` (Basic), or None.
        session_id: the ``JSESSIONID`` cookie value, or None.
        session_secret: the CSRF value every POST body must carry, or None.
        generation: which login produced these, so a stale expiry report is ignored.
    """

    httpx_auth: httpx.Auth | None = None
    session_id: str | None = None
    session_secret: str | None = None
    generation: int = 0

    def headers(self) -> dict[str, str]:
        """Headers to add; the cookie is set explicitly, so it works whatever the cookie jar
        of a handed-in ``httpx.Client`` does with loopback hosts."""
        return {"Cookie": f"JSESSIONID={self.session_id}"} if self.session_id else {}

    def sign(self, body: dict[str, Any]) -> dict[str, Any]:
        """Return a copy of a POST body carrying ``sessionSecret`` when a session is used."""
        if self.session_secret is None:
            return body
        return {**body, "sessionSecret": self.session_secret}


class Authenticator(Protocol):
    """How the transport obtains and renews credentials."""

    kind: str
    """``"basic"`` or ``"session"``: names the settings to fix in auth errors."""
    renews_session: bool
    """True when an expired session can be renewed by logging in again."""

    def credentials(self, login: LoginCall) -> Credentials:
        """Return credentials for the next request, logging in first if needed."""
        ...

    def invalidate(self, used: Credentials) -> None:
        """Report that ``used`` no longer works (the session expired)."""
        ...


class BasicAuthenticator:
    """HTTP Basic with ``FINALE_API_KEY:FINALE_API_SECRET`` (preferred by Finale)."""

    kind = "basic"
    renews_session = False

    def __init__(self, key: str, secret: str) -> None:
        """Hold the key pair as an ``httpx.BasicAuth``."""
        self._credentials = Credentials(httpx_auth=httpx.BasicAuth(key, secret))

    def credentials(self, login: LoginCall) -> Credentials:
        """The same Basic credentials every time; ``login`` is not used."""
        return self._credentials

    def invalidate(self, used: Credentials) -> None:
        """Nothing to renew: an API key does not expire like a session."""


class SessionAuthenticator:
    """Legacy session auth: ``POST /{account}/api/auth``, then the ``JSESSIONID`` cookie.

    Thread-safe: one thread logs in while others wait for the new session, and an expiry
    reported for an older session does not throw away a newer one.
    """

    kind = "session"
    renews_session = True

    def __init__(self, username: str, password: str, login_url: str) -> None:
        """Remember the login; nothing is sent until the first request."""
        self._username = username
        self._password = password
        self._login_url = login_url
        self._lock = threading.Lock()
        self._current: Credentials | None = None
        self._generation = 0

    def credentials(self, login: LoginCall) -> Credentials:
        """Current session credentials; logs in when there is no live session."""
        with self._lock:
            if self._current is None:
                response = login(
                    self._login_url, {"username": self._username, "password": self._password}
                )
                self._generation += 1
                self._current = self._from_login(response, self._generation)
            return self._current

    def invalidate(self, used: Credentials) -> None:
        """Forget the session ``used`` (only if it is still the current one)."""
        with self._lock:
            if self._current is not None and self._current.generation == used.generation:
                self._current = None

    def _from_login(self, response: httpx.Response, generation: int) -> Credentials:
        content_type = response.headers.get("content-type", "")
        if "text/html" in content_type:
            raise RetryableError(
                "Finale answered the login with an HTML page instead of JSON; retrying",
                maybe_processed=False,
            )
        try:
            body = orjson.loads(response.content) if response.content else {}
        except orjson.JSONDecodeError as exc:
            # A login answer cut short is a transient fault, not a credentials problem.
            raise RetryableError(
                f"Finale's login answer is not valid JSON (truncated or corrupt: {exc}); retrying",
                maybe_processed=False,
            ) from exc
        session_id = _session_cookie(response)
        if not session_id:
            raise AuthError(
                "Finale accepted the login but set no JSESSIONID cookie, so no session can be "
                f"used; {auth_hint(self.kind)}, or use an API key instead"
            )
        # Finale's docs say the CSRF secret is the JSESSIONID value; prefer the body's
        # sessionSecret when a server sends a non-empty one.
        secret = session_id
        if isinstance(body, dict) and isinstance(body.get("sessionSecret"), str):
            secret = body["sessionSecret"] or session_id
        return Credentials(session_id=session_id, session_secret=secret, generation=generation)


def _session_cookie(response: httpx.Response) -> str | None:
    for header in response.headers.get_list("set-cookie"):
        match = _JSESSIONID.search(header)
        if match:
            return match.group(1)
    return None


def build_authenticator(settings: FinaleSettings, login_url: str) -> Authenticator:
    """Choose Basic auth when an API key pair is set, else session auth.

    Raises:
        AuthError: when neither credential pair is complete.
    """
    if settings.uses_basic_auth:
        assert settings.api_key is not None and settings.api_secret is not None
        return BasicAuthenticator(settings.api_key, settings.api_secret.get_secret_value())
    if settings.username and settings.password:
        return SessionAuthenticator(
            settings.username, settings.password.get_secret_value(), login_url
        )
    raise AuthError(
        "no Finale credentials: set FINALE_API_KEY and FINALE_API_SECRET (preferred), or "
        "FINALE_USERNAME and FINALE_PASSWORD, and FINALE_ACCOUNT"
    )
