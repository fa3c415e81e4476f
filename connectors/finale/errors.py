"""Errors sorted by the reaction they need, and the HTTP status -> error table.

- ``RetryableError``: transient; the connector retries it with backoff, and a caller may
  retry the whole step later (429, 5xx, timeouts, dropped connections, truncated or invalid
  JSON, an HTML login page instead of JSON).
- ``FatalError``: retrying cannot help; a person must change something (400, 404, our own bad
  request, an error body on a 200 write).
- ``AuthError``: a ``FatalError`` whose fix is a setting; the message names it.

Every message says what went wrong and what to do. URLs and bodies handed to these classes
must already be masked and truncated (see ``connectors/redact.py``); the transport scrubs every
``FinaleError`` once more before it leaves the connector.
"""

from __future__ import annotations

from typing import Any

import orjson

from connectors.errors import ConnectorError
from connectors.retry import TransientError

CREDENTIAL_SETTINGS = {
    "basic": "FINALE_API_KEY and FINALE_API_SECRET",
    "session": "FINALE_USERNAME and FINALE_PASSWORD",
}
ACCOUNT_HINT = (
    "FINALE_ACCOUNT (the account's path component, e.g. 'acme' in "
    "https://app.finaleinventory.com/acme/)"
)


class FinaleError(ConnectorError):
    """Base of every error the Finale connector raises (``ConnectorError``'s attributes).

    Attributes:
        body: the masked, truncated response body, if useful.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        body: str | None = None,
        server_message: str | None = None,
    ) -> None:
        """Build the error; ``url`` and ``body`` must already be masked."""
        super().__init__(message, url=url, status=status, server_message=server_message)
        self.body = body

    def _evidence(self) -> list[str]:
        return [f"body: {self.body}"] if self.body else []


class RetryableError(FinaleError, TransientError):
    """A transient failure: ``connectors.retry.Retrier`` retries it with backoff.

    Attributes:
        retry_after: seconds the server asked us to wait (``Retry-After``), if it said.
        maybe_processed: False when the request certainly did not take effect (connection
            refused, 429, login page), so even a non-idempotent write may be repeated.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        maybe_processed: bool = True,
        **kwargs: Any,
    ) -> None:
        """Build the error; see the class attributes."""
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        self.maybe_processed = maybe_processed


class SessionExpired(RetryableError):
    """Finale answered with its HTML login page: the session expired (or a URL needs login).

    With session auth the client logs in again once and repeats the request at once.
    """

    def __init__(self, message: str, **kwargs: Any) -> None:
        """Build the error; the request was not processed, so it may always be repeated."""
        kwargs.setdefault("maybe_processed", False)
        super().__init__(message, **kwargs)


class UnreachableError(RetryableError):
    """Finale could not be reached at all (connection refused, DNS, TLS): retried only for
    a short, bounded time (``RetryPolicy.max_unreachable_seconds``), then reported once."""

    unreachable = True


class FatalError(FinaleError):
    """Retrying cannot help: the request, the data or the configuration must change."""


class InvalidRequestError(FatalError, ValueError):
    """Our own request is invalid and was not sent (e.g. a naive datetime in a filter)."""


class AuthError(FatalError):
    """Finale rejected the credentials (401) or the access (403); fix the named settings."""


class DuplicateOrderError(FatalError):
    """Create refused because the ``orderId`` is already in use.

    Write-back may treat this as "already created" (e.g. an earlier attempt succeeded but its
    answer was lost).

    Attributes:
        order_id: the ``orderId`` that is taken, when known.
    """

    def __init__(self, message: str, *, order_id: str | None = None, **kwargs: Any) -> None:
        """Build the error with the conflicting ``order_id``."""
        super().__init__(message, **kwargs)
        self.order_id = order_id


def auth_hint(auth_kind: str) -> str:
    """Name the settings to check for ``auth_kind`` ("basic" or "session"), active pair first."""
    active = CREDENTIAL_SETTINGS.get(auth_kind, CREDENTIAL_SETTINGS["basic"])
    other = next(v for k, v in CREDENTIAL_SETTINGS.items() if v != active)
    return f"check {active} (or {other}) and {ACCOUNT_HINT}"


def server_message_of(body: bytes) -> str | None:
    """Extract Finale's own error text from a JSON error body, if there is one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return write_error_message(data) if isinstance(data, dict) else None


def write_error_message(data: dict[str, Any]) -> str | None:
    """Return the error a body reports (``errorMessage``, ``errors``, ``success: false``).

    Finale answers some failed writes with HTTP 200 and such a body, so a write must check
    the body, not just the status. Returns None for a body that reports no error.
    """
    message = data.get("errorMessage")
    if message:
        return str(message)
    errors = data.get("errors")
    if errors:
        if isinstance(errors, list):
            texts = [
                str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors[:5]
            ]
            return "; ".join(texts)
        return str(errors)
    if data.get("success") is False:
        return str(data.get("message") or "Finale answered success: false without a message")
    return None


def error_for_status(
    status: int,
    *,
    url: str,
    body: str,
    server_message: str | None,
    auth_kind: str,
    retry_after: float | None = None,
) -> FinaleError | None:
    """Map an HTTP status to the error it means, or None for 2xx.

    Args:
        status: the HTTP status code.
        url: masked URL of the request.
        body: masked, truncated body for the message.
        server_message: Finale's ``errorMessage``, if any (already masked).
        auth_kind: "basic" or "session", to name the right settings on 401/403.
        retry_after: parsed ``Retry-After`` seconds, if the server sent it.
    """
    if 200 <= status < 300:
        return None
    said = f": {server_message}" if server_message else ""
    common: dict[str, Any] = {
        "url": url,
        "status": status,
        "body": body,
        "server_message": server_message,
    }
    if status == 429:
        wait = f"it asked to wait {retry_after:g}s" if retry_after is not None else "no delay"
        return RetryableError(
            f"Finale rate limit exceeded ({wait}); retrying. If this keeps happening, lower "
            "FINALE_RATE_LIMIT_PER_MINUTE or run fewer syncs at once",
            retry_after=retry_after,
            maybe_processed=False,
            **common,
        )
    if status in (408, 425) or status >= 500:
        return RetryableError(
            f"Finale had a transient server error{said}; retrying",
            retry_after=retry_after,
            **common,
        )
    if status == 401:
        return AuthError(f"Finale rejected the credentials{said}; {auth_hint(auth_kind)}", **common)
    if status == 403:
        return AuthError(
            f"Finale denied access{said}; the credentials are not allowed to do this on this "
            f"account: {auth_hint(auth_kind)}, and that the user has the needed permissions",
            **common,
        )
    if status == 404:
        return FatalError(
            f"Finale has nothing at this URL{said}. Check {ACCOUNT_HINT} and the collection "
            "name (e.g. 'partygroup', not 'supplier'); collections need a trailing slash; "
            "entity URLs must come from the data (e.g. productUrl), never be built from ids",
            **common,
        )
    if status == 400:
        return FatalError(
            f"Finale rejected the request as invalid{said}. Retrying will not help: fix the "
            "request (e.g. a lastUpdatedDate range wider than 30 days, a filter on a collection "
            "that cannot be filtered, or a change to a completed or cancelled order)",
            **common,
        )
    if 300 <= status < 400:
        return FatalError(
            "Finale answered with a redirect, which the connector does not follow; check "
            "FINALE_BASE_URL (scheme and host, e.g. https://app.finaleinventory.com)",
            **common,
        )
    return FatalError(f"Finale refused the request{said}; retrying will not help", **common)
