"""One delivery attempt: the signed POST, and what its result means.

2xx is delivered. 408, 425, 429, 5xx, timeouts and connection failures are worth another
attempt (a ``Retry-After`` is passed on). Anything else is not: the same request would get
the same answer, so the delivery dies at once and waits for a person (fix the receiver or
the secret, then replay). A 410 Gone is treated like any other refusal: the subscriber is
not unsubscribed automatically; remove it from the subscribers file.

Error texts go to the database and the logs: they are masked with the subscriber's
credentials (``connectors.redact``) and cut short.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime

import httpx

from connectors.redact import Redactor, truncate
from connectors.retry import parse_retry_after
from events.outbox import OutboxEvent
from events.signing import delivery_headers
from events.subscribers import Subscriber

#: HTTP statuses worth another attempt (besides 5xx): timeout, too early and rate limit.
RETRYABLE_STATUS = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Outcome:
    """The result of one POST: delivered, or why not and whether to try again."""

    delivered: bool
    retryable: bool = False
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None


def body_of(event: OutboxEvent) -> bytes:
    """The delivered body: the envelope as compact JSON (the same bytes on every attempt)."""
    return json.dumps(event.envelope(), separators=(",", ":"), sort_keys=True).encode()


def post(
    client: httpx.Client,
    subscriber: Subscriber,
    event: OutboxEvent,
    now: datetime,
    redactor: Redactor,
) -> Outcome:
    """Send one attempt and sort the result: delivered, retryable or not."""
    body = body_of(event)
    secret = subscriber.secret.get_secret_value()
    headers = delivery_headers(secret, body, event.event_id, int(now.timestamp()))
    timeout = subscriber.config.timeout_seconds
    try:
        response = client.post(
            subscriber.config.url.get_secret_value(), content=body, headers=headers
        )
    except httpx.TimeoutException:
        return Outcome(False, retryable=True, error=f"timed out after {timeout:g}s")
    except httpx.ConnectError as exc:
        return Outcome(False, retryable=True, error=f"cannot connect: {_reason(exc, redactor)}")
    except httpx.TransportError as exc:  # dropped connection, protocol error mid-answer
        return Outcome(
            False, retryable=True, error=f"{type(exc).__name__}: {_reason(exc, redactor)}"
        )
    code = response.status_code
    if 200 <= code < 300:
        return Outcome(True, status_code=code)
    said = redactor.body(response.text, 200) if response.content else ""
    error = f"HTTP {code}" + (f": {said}" if said else "")
    if code in RETRYABLE_STATUS or code >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=time.time())
        return Outcome(
            False, retryable=True, status_code=code, error=error, retry_after=retry_after
        )
    if code in (401, 403):
        error += (
            "; the receiver refused the signature or credentials: check the subscriber's "
            "secret, then replay"
        )
    elif 300 <= code < 400:
        error += (
            "; redirects are not followed: set the subscriber's url to the final address, "
            "then replay"
        )
    return Outcome(False, status_code=code, error=error)


def _reason(exc: Exception, redactor: Redactor) -> str:
    return truncate(redactor.text(str(exc) or type(exc).__name__), 200)
