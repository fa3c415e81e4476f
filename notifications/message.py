"""Render an ``Alert`` once, for every channel: subject, plain text, HTML and Slack blocks.

Rendering is pure and time-explicit (``now``), so tests can assert the exact text. Every
rendered string passes through ``redact_secrets`` with the secrets of all configured
channels, so the Slack webhook URL can never end up in an email, nor the SendGrid key in
Slack, even if some upstream message quoted them.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.redact import redact_secrets
from notifications.alert import Alert

#: Subject prefix; mail filters and Slack searches key on it.
PREFIX = "[inventory-sync]"

_HEADLINE = {
    "failed": "sync FAILED",
    "crashed": "sync CRASHED (the run stopped without reporting)",
    "degraded": "sync DEGRADED (the data loaded, but a check failed)",
    "recovered": "sync RECOVERED",
}

_EMOJI = {"failed": ":red_circle:", "crashed": ":boom:", "degraded": ":warning:",
          "recovered": ":large_green_circle:"}  # fmt: skip

# Slack limits: header text 150 chars, section text 3000 chars.
_SLACK_HEADER_LIMIT = 150
_SLACK_SECTION_LIMIT = 2900


@dataclass(frozen=True)
class Message:
    """One alert rendered for every channel."""

    subject: str
    text: str
    html: str
    slack_text: str = ""
    slack_blocks: list[dict[str, Any]] = field(default_factory=list)

    def redacted(self, secrets: Iterable[str | None]) -> Message:
        """A copy with ``secrets`` (and anything secret-looking) masked in every field."""
        values = [s for s in secrets if s]

        def clean(value: Any) -> Any:
            if isinstance(value, str):
                return redact_secrets(value, values)
            if isinstance(value, list):
                return [clean(v) for v in value]
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            return value

        return Message(
            subject=clean(self.subject),
            text=clean(self.text),
            html=clean(self.html),
            slack_text=clean(self.slack_text),
            slack_blocks=clean(self.slack_blocks),
        )


def subject(alert: Alert) -> str:
    """``[inventory-sync] products FAILED``."""
    return f"{PREFIX} {alert.entity} {alert.kind.upper()}"


def _age(when: datetime, now: datetime) -> str:
    seconds = max(0, int((now - when).total_seconds()))
    if seconds < 90:
        return f"{seconds} s ago"
    minutes = seconds // 60
    if minutes < 90:
        return f"{minutes} min ago"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min ago"
    return f"{hours // 24} days ago"


def facts(alert: Alert, now: datetime | None = None) -> list[tuple[str, str]]:
    """The alert as (label, value) lines, in display order; shared by every format."""
    now = now or datetime.now(UTC)
    rows: list[tuple[str, str]] = [
        ("Entity", alert.entity),
        ("Deployment", alert.deployment or "(none: run from the CLI)"),
    ]
    if alert.flow_run_url:
        rows.append(("Flow run", alert.flow_run_url))
    if alert.run_id:
        rows.append(("Run id", alert.run_id))
    rows.append(("Counts", ", ".join(f"{k} {v:,}" for k, v in alert.counts.items())))
    if alert.quarantine_share is not None:
        rows.append(("Quarantined share", f"{alert.quarantine_share:.1%}"))
    if alert.last_success_at is not None:
        when = alert.last_success_at
        rows.append(("Last successful sync", f"{when.isoformat()} ({_age(when, now)})"))
    else:
        rows.append(("Last successful sync", "never"))
    if alert.health_score is not None:
        rows.append(("Health score", f"{alert.health_score}/100"))
    return rows


def render(
    alert: Alert, secrets: Iterable[str | None] = (), now: datetime | None = None
) -> Message:
    """Render ``alert`` as subject, plain text, HTML and Slack blocks, with secrets masked.

    Args:
        alert: the alert.
        secrets: exact secret values to mask (the channels' API key and webhook URL).
        now: the time the freshness age is measured from (default: now).
    """
    rows = facts(alert, now)
    headline = f"{alert.entity}: {_HEADLINE[alert.kind]}"
    text_lines = [headline, ""]
    text_lines += [f"{label}: {value}" for label, value in rows]
    if alert.error:
        text_lines += ["", "Error:", alert.error]
    text = "\n".join(text_lines) + "\n"

    html_rows = "".join(
        f'<tr><th align="left">{html.escape(label)}</th><td>{_html_value(label, value)}</td></tr>'
        for label, value in rows
    )
    html_error = f"<h3>Error</h3><pre>{html.escape(alert.error)}</pre>" if alert.error else ""
    html_body = f"<h2>{html.escape(headline)}</h2><table>{html_rows}</table>{html_error}"

    message = Message(
        subject=subject(alert),
        text=text,
        html=html_body,
        slack_text=f"{_EMOJI[alert.kind]} {subject(alert)}",
        slack_blocks=_slack_blocks(alert, headline, rows),
    )
    return message.redacted(secrets)


def _html_value(label: str, value: str) -> str:
    if label == "Flow run" and value.startswith(("http://", "https://")):
        url = html.escape(value, quote=True)
        return f'<a href="{url}">{url}</a>'
    return html.escape(value)


def _slack_escape(text: str) -> str:
    # Slack mrkdwn needs only these three escaped.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_blocks(alert: Alert, headline: str, rows: list[tuple[str, str]]) -> list[dict[str, Any]]:
    lines = []
    for label, value in rows:
        if label == "Flow run":
            lines.append(f"*{label}:* <{value}|open in Prefect>")
        else:
            lines.append(f"*{label}:* {_slack_escape(value)}")
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"{headline}"[:_SLACK_HEADER_LIMIT]},
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "\n".join(lines)[:_SLACK_SECTION_LIMIT]},
        },
    ]
    if alert.error:
        error = _slack_escape(alert.error)[: _SLACK_SECTION_LIMIT - 8]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{error}```"}})
    return blocks
