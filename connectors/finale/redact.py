"""Masking of secrets in anything that may reach a log, an exception or the database.

Two layers, because either alone can miss something:

- pattern masking (``redact_text``, ``mask_url``): removes values that *look* secret
  (``JSESSIONID=...``, ``"sessionSecret": "..."``, ``"password": "..."``, ``Authorization``
  headers, ``user:pass@`` in URLs, sensitive query parameters), without knowing them;
- value masking (``Redactor``): replaces every occurrence of the actual secrets the client
  holds (API secret, password, session ids, the Basic token), wherever they appear.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
DEFAULT_BODY_LIMIT = 500

# Query parameters whose values are credentials (compared case-insensitively).
_SENSITIVE_PARAMS = frozenset(
    {
        "sessionsecret",
        "jsessionid",
        "password",
        "secret",
        "api_secret",
        "apisecret",
        "token",
        "access_token",
        "auth",
        "key",
        "api_key",
        "apikey",
    }
)

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # JSON members: "sessionSecret": "abc", "password":"abc", "api_secret": "abc"
    (
        re.compile(
            r'("(?:sessionSecret|password|api_?secret|secret|token|JSESSIONID)"\s*:\s*)"[^"]*"',
            re.IGNORECASE,
        ),
        rf'\1"{MASK}"',
    ),
    # Cookies, form fields and URL path parameters: JSESSIONID=abc, ;jsessionid=abc,
    # sessionSecret=abc, password=abc
    (
        re.compile(r"\b(JSESSIONID|sessionSecret|password|api_?secret)=[^;&\s\"'<>]+", re.I),
        rf"\1={MASK}",
    ),
    # HTTP Authorization header values.
    (re.compile(r"\b(Basic|Bearer)\s+[A-Za-z0-9+/=._~-]{8,}", re.IGNORECASE), rf"\1 {MASK}"),
    # user:password@ inside URLs.
    (re.compile(r"(https?://)[^/\s:@]+:[^/\s@]+@", re.IGNORECASE), rf"\1{MASK}@"),
]


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Mask secret-looking values in free text, plus any of the given secret values.

    Args:
        text: text that may end up in a log, an exception message or a database row.
        secrets: exact secret values to mask wherever they occur (``None`` and very short
            values are skipped: masking a 2-character value would shred the text).

    Returns:
        The text with every secret replaced by ``***``.
    """
    for value in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(value, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def mask_url(url: str) -> str:
    """Return ``url`` without credentials: no ``user:pass@``, sensitive query values masked.

    Non-sensitive parameters (``filter``, ``limit``, ``offset``) are kept, because they are what
    one needs to reproduce a failing request.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, MASK if k.lower() in _SENSITIVE_PARAMS else v) for k, v in pairs], safe="*"
        )
    path = re.sub(r";jsessionid=[^/?#]*", f";jsessionid={MASK}", parts.path, flags=re.I)
    return urlunsplit((parts.scheme, netloc, path, query, ""))


def truncate(text: str, limit: int = DEFAULT_BODY_LIMIT) -> str:
    """Cut ``text`` to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more chars)"


class Redactor:
    """Masks the secrets one client knows about; session ids are added as they are issued.

    Thread-safe: the client's threads may add session ids while others format errors.
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        """Start with the static secrets (API secret, password)."""
        self._lock = threading.Lock()
        self._secrets: set[str] = {s for s in secrets if s}

    def add(self, secret: str | None) -> None:
        """Remember one more secret value (e.g. a new session id)."""
        if secret:
            with self._lock:
                self._secrets.add(secret)

    def add_basic_credentials(self, user: str, password: str) -> None:
        """Remember the Basic token of ``user:password`` too, in case a header is echoed."""
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self.add(token)
        self.add(password)

    def text(self, text: str) -> str:
        """Mask known secrets and secret-looking values in ``text``."""
        with self._lock:
            secrets = list(self._secrets)
        return redact_text(text, secrets)

    def url(self, url: str) -> str:
        """Mask a URL for display: credentials removed, then known secrets masked."""
        return self.text(mask_url(url))

    def body(self, body: bytes | str, limit: int = DEFAULT_BODY_LIMIT) -> str:
        """Render a response body for an error message: decoded, masked, truncated."""
        text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
        # Mask before truncating, so a secret cut in half at the limit cannot slip through.
        return truncate(self.text(text), limit)
