"""Delivery channels: SendGrid email and Slack incoming webhooks, over plain HTTP.

Each channel is handed what it needs (its secret, its addresses, optionally an
``httpx.Client``) and exposes one method, ``send(message)``, that either delivers or raises
``DeliveryError``. Alerting must never become the outage: timeouts are short, there is one
retry for transient failures (timeouts, dropped connections, 429, 5xx), and the error a
channel raises names the channel and the HTTP status, never the API key or the webhook URL.

A Slack incoming-webhook URL *is* a credential (anyone holding it can post to the channel),
so it is treated exactly like the SendGrid key: it is a ``SecretStr``, it is masked in
errors, and ``httpx``'s own request log line is filtered so the URL does not reach logs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from email.utils import getaddresses, parseaddr
from typing import Any, Protocol, runtime_checkable

import httpx
from pydantic import SecretStr

from connectors.redact import redact_secrets, register_log_secret, truncate
from connectors.retry import Retrier, RetryPolicy, TransientError, parse_retry_after
from notifications.message import Message

log = logging.getLogger(__name__)

#: Short: an alert that cannot be delivered in a few seconds will not be delivered by waiting.
DEFAULT_TIMEOUT = httpx.Timeout(5.0, connect=3.0)
#: Most seconds to wait before the one retry; a longer ``Retry-After`` gives up at once.
MAX_RETRY_WAIT = 5.0


class DeliveryError(Exception):
    """A channel could not deliver a message. The text is safe to log (no secrets)."""

    def __init__(self, channel: str, reason: str) -> None:
        super().__init__(f"{channel}: {reason}")
        self.channel = channel
        self.reason = reason


@runtime_checkable
class Channel(Protocol):
    """Something that delivers a rendered alert."""

    #: Stable, secret-free name used in logs and in ``Notifier.send``'s return value.
    name: str

    def send(self, message: Message) -> None:
        """Deliver ``message`` or raise ``DeliveryError``."""
        ...

    def secrets(self) -> list[str]:
        """Secret values this channel holds, so other channels' messages can mask them."""
        ...


def post_json(
    http: httpx.Client | None,
    url: str,
    payload: dict[str, Any],
    *,
    channel: str,
    headers: dict[str, str] | None = None,
    secrets: Iterable[str] = (),
    timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    retry_delay: float = 1.0,
) -> httpx.Response:
    """POST ``payload`` as JSON, with one retry on transient failures.

    The retry is the connector's (``connectors.retry``): a ``Retry-After`` is honoured
    exactly, and one longer than ``MAX_RETRY_WAIT`` ends the attempt at once.

    Args:
        http: a client to use; ``None`` builds a short-lived one for this call.
        url: target URL (may itself be secret: it is never put in the error).
        payload: JSON body.
        channel: channel name for error messages.
        headers: extra headers (e.g. ``Authorization``).
        secrets: values to mask in error messages (key, URL).
        timeout: per-request timeout.
        retry_delay: most seconds to wait before the retry (jittered; unless ``Retry-After``
            says otherwise).

    Returns:
        The 2xx response.

    Raises:
        DeliveryError: after a non-retryable status, or when the retry failed too.
    """
    secret_values = [s for s in secrets if s]
    policy = RetryPolicy(
        max_retries=1,
        base_delay=retry_delay,
        max_delay=retry_delay,
        max_total_wait=MAX_RETRY_WAIT,
    )
    retrier = Retrier(policy, system=channel, logger=log)
    owned = http is None
    client = httpx.Client() if http is None else http

    def attempt() -> httpx.Response:
        try:
            response = client.post(url, json=payload, headers=headers, timeout=timeout)
        except httpx.TransportError as exc:
            # str(exc) of a transport error does not carry the URL, but mask it anyway.
            raise TransientError(
                redact_secrets(f"{type(exc).__name__}: {exc}", secret_values)
            ) from exc
        if response.is_success:
            return response
        body = truncate(redact_secrets(response.text, secret_values), 300)
        reason = f"HTTP {response.status_code}: {body}"
        if response.status_code != 429 and response.status_code < 500:
            # 4xx other than 429: our request or our credentials are wrong; a retry would
            # fail the same way.
            raise DeliveryError(channel, reason)
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=time.time())
        raise TransientError(reason, retry_after=retry_after)

    try:
        return retrier.run(attempt)
    except TransientError as exc:
        raise DeliveryError(channel, exc.message) from exc
    finally:
        if owned:
            client.close()


def parse_addresses(value: str | Sequence[str] | None) -> list[tuple[str, str]]:
    """Parse ``"a@x.com, Ops <b@x.com>"`` (or a list) into ``[(name, email), ...]``."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    # getaddresses splits on commas; semicolons are a common habit in .env files too.
    items = [part for item in items for part in item.replace(";", ",").split(",")]
    return [(name, addr) for name, addr in getaddresses(items) if addr and "@" in addr]


def _sendgrid_address(name: str, email: str) -> dict[str, str]:
    return {"email": email, "name": name} if name else {"email": email}


class SendGridChannel:
    """Email through the SendGrid v3 Mail Send API (``POST {base_url}/v3/mail/send``).

    Args:
        api_key: SendGrid API key (``SENDGRID_API_KEY``), sent as a Bearer token.
        base_url: API base URL (``SENDGRID_BASE_URL``; tests point it at a loopback server).
        from_addr: sender (``ALERT_EMAIL_FROM``), ``ops@x.com`` or ``Sync <ops@x.com>``;
            must be a verified SendGrid sender.
        to_addrs: recipients (``ALERT_EMAIL_TO``), a comma-separated string or a list.
        http: client to send with; ``None`` builds one per message.
        timeout: per-request timeout.
        retry_delay: wait before the one retry.

    Raises:
        ValueError: if there is no valid sender or recipient.
    """

    name = "sendgrid"

    def __init__(
        self,
        api_key: SecretStr,
        base_url: str,
        from_addr: str,
        to_addrs: str | Sequence[str],
        *,
        http: httpx.Client | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry_delay: float = 1.0,
    ) -> None:
        self._api_key = api_key
        self.url = f"{base_url.rstrip('/')}/v3/mail/send"
        sender_name, sender = parseaddr(from_addr)
        if not sender or "@" not in sender:
            raise ValueError("ALERT_EMAIL_FROM is not an email address")
        self.sender = _sendgrid_address(sender_name, sender)
        self.recipients = [_sendgrid_address(n, e) for n, e in parse_addresses(to_addrs)]
        if not self.recipients:
            raise ValueError("ALERT_EMAIL_TO has no email address")
        self._http = http
        self._timeout = timeout
        self._retry_delay = retry_delay

    def secrets(self) -> list[str]:
        """The API key."""
        return [self._api_key.get_secret_value()]

    def payload(self, message: Message) -> dict[str, Any]:
        """The v3 Mail Send body. text/plain must come before text/html (SendGrid's rule)."""
        return {
            "personalizations": [{"to": self.recipients, "subject": message.subject}],
            "from": self.sender,
            "subject": message.subject,
            "content": [
                {"type": "text/plain", "value": message.text},
                {"type": "text/html", "value": message.html},
            ],
            "categories": ["inventory-sync"],
        }

    def send(self, message: Message) -> None:
        """Send ``message`` to every recipient in one API call (SendGrid answers 202)."""
        post_json(
            self._http,
            self.url,
            self.payload(message),
            channel=self.name,
            headers={"Authorization": f"Bearer {self._api_key.get_secret_value()}"},
            secrets=self.secrets(),
            timeout=self._timeout,
            retry_delay=self._retry_delay,
        )


class SlackChannel:
    """A Slack incoming webhook: ``POST <webhook_url>`` with ``{"text", "blocks"}``.

    Args:
        webhook_url: the webhook URL (``SLACK_WEBHOOK_URL``): a secret in itself.
        http: client to send with; ``None`` builds one per message.
        timeout: per-request timeout.
        retry_delay: wait before the one retry.
    """

    name = "slack"

    def __init__(
        self,
        webhook_url: SecretStr,
        *,
        http: httpx.Client | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry_delay: float = 1.0,
    ) -> None:
        url = webhook_url.get_secret_value()
        if not url.startswith(("https://", "http://")):
            raise ValueError("SLACK_WEBHOOK_URL is not an http(s) URL")
        self._url = webhook_url
        self._http = http
        self._timeout = timeout
        self._retry_delay = retry_delay
        register_log_secret(url)

    def secrets(self) -> list[str]:
        """The webhook URL."""
        return [self._url.get_secret_value()]

    @staticmethod
    def payload(message: Message) -> dict[str, Any]:
        """``text`` is the notification/fallback line, ``blocks`` the formatted message."""
        return {"text": message.slack_text or message.subject, "blocks": message.slack_blocks}

    def send(self, message: Message) -> None:
        """Post ``message`` to the webhook (Slack answers 200 ``ok``)."""
        post_json(
            self._http,
            self._url.get_secret_value(),
            self.payload(message),
            channel=self.name,
            secrets=self.secrets(),
            timeout=self._timeout,
            retry_delay=self._retry_delay,
        )
