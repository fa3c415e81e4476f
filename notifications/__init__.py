"""Alerts about sync health: when to send one, what it says, and how it is delivered.

No Prefect import here (except the optional ``notifications.prefect_blocks`` adapter), so
alerting works from the CLI and in tests without a Prefect API.

Public API:

- ``transition(previous_status, current_status)``: which alert a state change needs;
- ``Alert`` (and ``Alert.from_result``): what the alert says;
- ``SendGridChannel``, ``SlackChannel`` (and ``notifications.prefect_blocks.PrefectBlockChannel``);
- ``channels_from_settings(settings)`` and ``Notifier(channels).send(alert)``.
"""

from connectors.redact import redact_secrets, summarize_error
from notifications.alert import ALERT_KINDS, Alert, AlertKind, flow_run_link, transition
from notifications.channels import Channel, DeliveryError, SendGridChannel, SlackChannel
from notifications.message import Message, render
from notifications.notifier import Notifier, channels_from_settings

__all__ = [
    "ALERT_KINDS",
    "Alert",
    "AlertKind",
    "Channel",
    "DeliveryError",
    "Message",
    "Notifier",
    "SendGridChannel",
    "SlackChannel",
    "channels_from_settings",
    "flow_run_link",
    "redact_secrets",
    "render",
    "summarize_error",
    "transition",
]
