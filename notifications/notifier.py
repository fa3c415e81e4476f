"""Send one alert through every configured channel; a failing channel never stops the rest.

Usage at the edge (a flow, after an entity finished)::

    kind = transition(previous_status, record.status)
    if kind:
        alert = Alert.from_result(kind, record, deployment=..., flow_run_url=..., status=...)
        Notifier(channels_from_settings(settings)).send(alert)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import httpx

from connectors.redact import redact_secrets
from notifications.alert import Alert
from notifications.channels import Channel, DeliveryError, SendGridChannel, SlackChannel
from notifications.message import render

if TYPE_CHECKING:
    from invsync.settings import Settings

log = logging.getLogger(__name__)


class Notifier:
    """Renders an alert once and hands it to each channel in turn.

    Args:
        channels: the channels to deliver through (may be empty: alerting is optional).
    """

    def __init__(self, channels: Sequence[Channel]) -> None:
        self.channels = list(channels)

    def send(self, alert: Alert, now: datetime | None = None) -> list[str]:
        """Deliver ``alert`` through every channel.

        Errors are logged (channel name and HTTP status, never a secret) and swallowed: an
        alert that cannot be delivered must not fail the sync it is about.

        Args:
            alert: the alert to send.
            now: time the freshness age is measured from (default: now).

        Returns:
            Names of the channels that delivered, in channel order.
        """
        # Every channel's secrets are masked in every message, so no channel can carry
        # another's credential (say, a webhook URL quoted in an upstream error).
        secrets = [s for channel in self.channels for s in channel.secrets()]
        message = render(alert, secrets=secrets, now=now)
        delivered: list[str] = []
        for channel in self.channels:
            try:
                channel.send(message)
            except DeliveryError as exc:
                log.warning("alert %r not delivered via %s", message.subject, exc)
            except Exception as exc:  # a channel bug must not break the sync
                # No traceback: an unexpected exception's text may quote a URL or a header.
                reason = redact_secrets(f"{type(exc).__name__}: {exc}", secrets)
                log.warning(
                    "alert %r not delivered via %s: %s", message.subject, channel.name, reason
                )
            else:
                delivered.append(channel.name)
        if delivered:
            log.info("alert %r delivered via %s", message.subject, ", ".join(delivered))
        return delivered


def channels_from_settings(
    settings: Settings, *, http: httpx.Client | None = None, retry_delay: float = 1.0
) -> list[Channel]:
    """Build the channels the settings configure; a half-configured channel is skipped.

    - SendGrid needs ``SENDGRID_API_KEY``, ``ALERT_EMAIL_FROM`` and ``ALERT_EMAIL_TO``
      (``SENDGRID_BASE_URL`` defaults to https://api.sendgrid.com);
    - Slack needs ``SLACK_WEBHOOK_URL``;
    - a Prefect notification block needs ``ALERT_PREFECT_BLOCK`` (``<block-type>/<name>``,
      e.g. ``slack-webhook/ops-alerts``), when the settings have that field.

    A partial configuration is logged as a warning naming the missing variables, not
    raised: a typo in alerting settings must not stop the data from syncing.

    Args:
        settings: the loaded settings.
        http: client shared by the HTTP channels (``None``: each builds its own per message).
        retry_delay: seconds before a channel's one retry.
    """
    channels: list[Channel] = []
    email = {
        "SENDGRID_API_KEY": settings.sendgrid_api_key,
        "ALERT_EMAIL_FROM": settings.alert_email_from,
        "ALERT_EMAIL_TO": settings.alert_email_to,
    }
    missing = [name for name, value in email.items() if not value]
    if len(missing) < len(email) and missing:
        log.warning("email alerts disabled: %s not set", ", ".join(missing))
    elif not missing:
        assert settings.sendgrid_api_key and settings.alert_email_from and settings.alert_email_to
        try:
            channels.append(
                SendGridChannel(
                    settings.sendgrid_api_key,
                    settings.sendgrid_base_url,
                    settings.alert_email_from,
                    settings.alert_email_to,
                    http=http,
                    retry_delay=retry_delay,
                )
            )
        except ValueError as exc:
            log.warning("email alerts disabled: %s", exc)
    if settings.slack_webhook_url is not None and settings.slack_webhook_url.get_secret_value():
        try:
            channels.append(
                SlackChannel(settings.slack_webhook_url, http=http, retry_delay=retry_delay)
            )
        except ValueError as exc:
            log.warning("Slack alerts disabled: %s", exc)
    # Optional until the settings object grows the field; read with getattr so this module
    # works with or without it.
    block_name = getattr(settings, "alert_prefect_block", None)
    if block_name:
        from notifications.prefect_blocks import PrefectBlockChannel

        channels.append(PrefectBlockChannel(block_name))
    return channels
