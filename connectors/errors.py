"""The base of every connector's errors: a message that says what to do, and what is known
of the request that failed (masked before it gets here; see ``connectors/redact.py``).

Each connector sorts its errors by the reaction they need (retryable, fatal, auth) in its
own ``errors`` module, on top of this class.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """A connector's failure, with what is known of the request.

    Attributes:
        message: what went wrong and what to do.
        url: the masked URL of the request, if any.
        status: the HTTP status, if a response arrived.
        server_message: the server's own message, if it sent one.
        attempts: how many attempts were made before giving up.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        server_message: str | None = None,
    ) -> None:
        """Build the error; ``url`` and ``server_message`` must already be masked."""
        super().__init__(message)
        self.message = message
        self.url = url
        self.status = status
        self.server_message = server_message
        self.attempts = 1

    def _identity(self) -> list[str]:
        """What identifies the failure beside its HTTP status (a server's error code)."""
        return []

    def _evidence(self) -> list[str]:
        """What the server sent, shown last (a response body)."""
        return []

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        parts += self._identity()
        if self.url:
            parts.append(f"url: {self.url}")
        if self.attempts > 1:
            parts.append(f"gave up after {self.attempts} attempts")
        parts += self._evidence()
        return "; ".join(parts)
