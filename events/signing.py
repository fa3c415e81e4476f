"""Signed deliveries: the headers each delivery carries, and how a receiver checks them.

Every delivery is a POST of the event's JSON envelope with::

    Content-Type: application/json
    Idempotency-Key: <event id>          (the same on every attempt and every replay)
    Invsync-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

The signature covers the timestamp, so a captured request cannot be replayed later than the
receiver's tolerance; ``v1`` names the scheme, so another can be added without breaking
receivers (a receiver accepts the header when any ``v1`` matches, which also allows two
secrets during a rotation). ``verify`` is standard library only and is what docs/events.md
tells receivers to copy.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Invsync-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: How old a signature a receiver should accept (seconds), as Stripe does.
DEFAULT_TOLERANCE = 300


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Invsync-Signature`` value of ``body`` signed at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def delivery_headers(secret: str, body: bytes, event_id: str, timestamp: int) -> dict[str, str]:
    """The headers of one delivery attempt of ``body`` (signed at ``timestamp``)."""
    return {
        "Content-Type": "application/json",
        IDEMPOTENCY_HEADER: event_id,
        SIGNATURE_HEADER: sign(secret, body, timestamp),
    }


# --- receivers: copy from here (docs/events.md has the same code) -------------------------


def verify(
    secret: str, header: str, body: bytes, tolerance: int = 300, now: float | None = None
) -> bool:
    """True when ``header`` (Invsync-Signature) signs ``body`` with ``secret``, recently.

    ``body`` must be the raw request body, before any JSON parsing. A timestamp more than
    ``tolerance`` seconds from ``now`` (default: the clock) is refused.
    """
    try:
        items = [part.split("=", 1) for part in header.split(",")]
        timestamps = [int(value) for key, value in items if key.strip() == "t"]
        signatures = [value.strip() for key, value in items if key.strip() == "v1"]
    except ValueError:  # a part without "=", or a t that is not a number
        return False
    if len(timestamps) != 1 or not signatures:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamps[0]) > tolerance:
        return False
    signed = str(timestamps[0]).encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)
