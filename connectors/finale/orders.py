"""Rules of Finale order writes: error bodies on 200, duplicate ids, status actions."""

from __future__ import annotations

import re
from typing import Any, Literal

from connectors.finale.errors import FatalError, write_error_message

OrderAction = Literal["lock", "complete", "cancel"]

ACTION_URL_KEYS: dict[str, str] = {
    "lock": "actionUrlLock",
    "complete": "actionUrlComplete",
    "cancel": "actionUrlCancel",
}
# The status an action leads to, to recognise an action that already happened.
ACTION_TARGET_STATUS: dict[str, str] = {
    "lock": "ORDER_LOCKED",
    "complete": "ORDER_COMPLETED",
    "cancel": "ORDER_CANCELLED",
}
ACTION_VALID_FROM: dict[str, str] = {
    "lock": "ORDER_CREATED",
    "complete": "ORDER_LOCKED",
    "cancel": "ORDER_CREATED or ORDER_LOCKED",
}
FINAL_STATUSES = frozenset({"ORDER_COMPLETED", "ORDER_CANCELLED"})

_DUPLICATE = re.compile(r"already (?:in use|exists|used)|duplicate", re.IGNORECASE)


def check_write_body(data: Any) -> None:
    """Raise when a 2xx write answer reports a failure in its body.

    Finale answers some failed writes with HTTP 200 and ``errorMessage``, a non-empty
    ``errors`` or ``success: false``.

    Raises:
        FatalError: with Finale's message.
    """
    if not isinstance(data, dict):
        raise FatalError(
            f"Finale answered the write with a JSON {type(data).__name__}, not an object; "
            "the write may or may not have been applied: check Finale"
        )
    message = write_error_message(data)
    if message:
        raise FatalError(f"Finale refused the write: {message}", server_message=message)


def is_duplicate_order_message(message: str | None) -> bool:
    """True when Finale's message says an order id is already taken."""
    return bool(message and _DUPLICATE.search(message))


def describe(order: dict[str, Any]) -> str:
    """A short label for messages: ``order 10012 (ORDER_LOCKED)``."""
    label = order.get("orderId") or order.get("orderUrl") or "(no orderId)"
    status = order.get("statusId")
    return f"order {label}" + (f" ({status})" if status else "")
