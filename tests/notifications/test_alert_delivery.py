"""Alerts over real HTTP: a loopback receiver stands in for SendGrid and a Slack webhook."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx
import pytest
from pydantic import SecretStr

from invsync.settings import Settings
from notifications import (
    Alert,
    DeliveryError,
    Notifier,
    SendGridChannel,
    SlackChannel,
    channels_from_settings,
    render,
)
from notifications.message import Message

if TYPE_CHECKING:
    from conftest import Receiver

API_KEY = "SG.test-key-0123456789.abcdefghijklmnopqrstuvwx"
HOOK_PATH = "/services/T000TEST/B000TEST/planted0webhook0secret"
PLANTED = "hunter2-planted-password"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
RUN_URL = "http://prefect.local/runs/flow-run/8f0c"


def failed_alert(**overrides: object) -> Alert:
    fields: dict[str, object] = {
        "kind": "failed",
        "entity": "products",
        "deployment": "finale-sync/products-hourly",
        "flow_run_url": RUN_URL,
        # The caller redacts; the alert must hold even if it did not.
        "error": f"FinaleAuthError: 401 password={PLANTED} Authorization: Basic dXNlcjpwYXNz",
        "extracted": 1200,
        "inserted": 1000,
        "updated": 100,
        "unchanged": 40,
        "quarantined": 60,
        "quarantine_share": 0.05,
        "last_success_at": NOW - timedelta(hours=3),
        "health_score": 30,
        "run_id": "run-42",
    }
    fields.update(overrides)
    return Alert(**fields)  # type: ignore[arg-type]


def _message() -> Message:
    return render(failed_alert(), now=NOW)


def sendgrid(receiver: Receiver, **kwargs: object) -> SendGridChannel:
    return SendGridChannel(
        SecretStr(API_KEY),
        receiver.url,
        "Inventory Sync <sync@example.com>",
        "ops@example.com, Buyer <buyer@example.com>",
        retry_delay=0,
        **kwargs,  # type: ignore[arg-type]
    )


def slack(receiver: Receiver, **kwargs: object) -> SlackChannel:
    return SlackChannel(SecretStr(receiver.url + HOOK_PATH), retry_delay=0, **kwargs)  # type: ignore[arg-type]


def webhook_url(receiver: Receiver) -> str:
    return receiver.url + HOOK_PATH


def test_sendgrid_request_is_a_v3_mail_send_with_bearer_auth(receiver: Receiver) -> None:
    receiver.script("/v3/mail/send", receiver.reply(202, ""))
    delivered = Notifier([sendgrid(receiver)]).send(failed_alert(), now=NOW)

    assert delivered == ["sendgrid"]
    [request] = receiver.to("/v3/mail/send")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    subject = "[inventory-sync] products FAILED"
    assert body["personalizations"] == [
        {
            "to": [{"email": "ops@example.com"}, {"email": "buyer@example.com", "name": "Buyer"}],
            "subject": subject,
        }
    ]
    assert body["from"] == {"email": "sync@example.com", "name": "Inventory Sync"}
    assert body["subject"] == subject
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    text, html = (c["value"] for c in body["content"])
    expected = (
        "products", "finale-sync/products-hourly", RUN_URL, "run-42", "extracted 1,200",
        "inserted 1,000", "updated 100", "unchanged 40", "quarantined 60", "5.0%",
        "3 h 0 min ago", "30/100", "FinaleAuthError: 401",
    )  # fmt: skip
    for part in expected:
        assert part in text, part
    assert f'<a href="{RUN_URL}">' in html
    assert "<h2>products: sync FAILED</h2>" in html
    for leak in (PLANTED, "dXNlcjpwYXNz", API_KEY, HOOK_PATH):
        assert leak not in request.body.decode(), leak


def test_slack_request_has_text_and_blocks_and_no_secret(receiver: Receiver) -> None:
    delivered = Notifier([slack(receiver)]).send(failed_alert(), now=NOW)

    assert delivered == ["slack"]
    [request] = receiver.to(HOOK_PATH)
    body = request.json()
    assert body["text"] == ":red_circle: [inventory-sync] products FAILED"
    header, facts, error = body["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "products: sync FAILED"},
    }
    assert facts["type"] == "section"
    assert f"*Flow run:* <{RUN_URL}|open in Prefect>" in facts["text"]["text"]
    assert "*Counts:* extracted 1,200, inserted 1,000" in facts["text"]["text"]
    assert error["text"]["text"].startswith("```FinaleAuthError: 401")
    for leak in (PLANTED, "dXNlcjpwYXNz", HOOK_PATH):
        assert leak not in request.body.decode(), leak


def test_no_channel_carries_another_channels_secret(receiver: Receiver) -> None:
    # An upstream error that quoted the webhook URL and the SendGrid key.
    alert = failed_alert(error=f"while posting to {webhook_url(receiver)} with {API_KEY}")
    receiver.script("/v3/mail/send", receiver.reply(202, ""))
    Notifier([sendgrid(receiver), slack(receiver)]).send(alert, now=NOW)

    email = receiver.to("/v3/mail/send")[0].body.decode()
    chat = receiver.to(HOOK_PATH)[0].body.decode()
    for body in (email, chat):
        assert HOOK_PATH not in body
        assert API_KEY not in body
        assert "while posting to" in body


def test_a_channel_answering_500_does_not_stop_the_other(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.script(
        "/v3/mail/send", receiver.reply(500, "upstream broke"), receiver.reply(500, "still broken")
    )
    caplog.set_level(logging.INFO)

    delivered = Notifier([sendgrid(receiver), slack(receiver)]).send(failed_alert(), now=NOW)

    assert delivered == ["slack"]
    assert len(receiver.to("/v3/mail/send")) == 2, "one retry, no more"
    assert len(receiver.to(HOOK_PATH)) == 1
    assert "sendgrid: HTTP 500: still broken" in caplog.text
    assert API_KEY not in caplog.text


def test_slack_failure_is_logged_without_the_webhook_url(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.script(HOOK_PATH, receiver.reply(503, "busy"), receiver.reply(404, "no_service"))
    receiver.script("/v3/mail/send", receiver.reply(202, ""))
    caplog.set_level(logging.DEBUG)

    delivered = Notifier([slack(receiver), sendgrid(receiver)]).send(failed_alert(), now=NOW)

    assert delivered == ["sendgrid"]
    assert "slack: HTTP 404: no_service" in caplog.text
    # httpx logs each request URL at INFO; the channel's filter masks the webhook there too.
    assert "HTTP Request: POST" in caplog.text
    assert HOOK_PATH not in caplog.text
    assert "planted0webhook0secret" not in caplog.text


@pytest.mark.parametrize(
    ("status", "attempts"),
    [
        pytest.param(400, 1, id="400-bad-request-not-retried"),
        pytest.param(401, 1, id="401-bad-key-not-retried"),
        pytest.param(429, 2, id="429-retried-once"),
        pytest.param(502, 2, id="502-retried-once"),
    ],
)
def test_only_transient_statuses_are_retried(
    receiver: Receiver, status: int, attempts: int
) -> None:
    receiver.script("/v3/mail/send", receiver.reply(status, "nope"), receiver.reply(status, "nope"))
    with pytest.raises(DeliveryError) as caught:
        sendgrid(receiver).send(_message())
    assert len(receiver.to("/v3/mail/send")) == attempts
    assert caught.value.channel == "sendgrid"
    assert f"HTTP {status}" in str(caught.value)


def test_retry_after_then_success_delivers(receiver: Receiver) -> None:
    receiver.script(HOOK_PATH, receiver.reply(429, "rate_limited", headers={"Retry-After": "0"}))
    slack(receiver).send(_message())
    assert len(receiver.to(HOOK_PATH)) == 2


def test_a_retry_after_longer_than_an_alert_can_wait_is_not_waited_for(
    receiver: Receiver,
) -> None:
    receiver.script(HOOK_PATH, receiver.reply(429, "rate_limited", headers={"Retry-After": "60"}))
    with pytest.raises(DeliveryError, match="asked to wait 60s") as caught:
        slack(receiver).send(_message())
    assert len(receiver.to(HOOK_PATH)) == 1
    assert HOOK_PATH not in str(caught.value)


def test_a_slow_endpoint_times_out_fast_and_is_retried_once(receiver: Receiver) -> None:
    receiver.script(HOOK_PATH, receiver.reply(delay=1.0), receiver.reply(delay=1.0))
    channel = slack(receiver, timeout=0.2)
    with pytest.raises(DeliveryError, match="slack: ReadTimeout") as caught:
        channel.send(_message())
    assert len(receiver.to(HOOK_PATH)) == 2
    assert HOOK_PATH not in str(caught.value)


def test_an_unreachable_endpoint_is_not_delivered_and_does_not_raise() -> None:
    # A port that was free a moment ago: nothing listens, the connection is refused.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel = SlackChannel(SecretStr(f"http://127.0.0.1:{port}{HOOK_PATH}"), retry_delay=0)
    assert Notifier([channel]).send(failed_alert(), now=NOW) == []


def test_a_shared_http_client_is_used_when_given(receiver: Receiver) -> None:
    seen: list[str] = []
    with httpx.Client(event_hooks={"request": [lambda r: seen.append(r.url.path)]}) as http:
        slack(receiver, http=http).send(_message())
    assert seen == [HOOK_PATH]


def test_recovered_alert_subject_and_body(receiver: Receiver) -> None:
    alert = failed_alert(kind="recovered", error=None, quarantined=0, quarantine_share=0.0)
    receiver.script("/v3/mail/send", receiver.reply(202, ""))
    Notifier([sendgrid(receiver)]).send(alert, now=NOW)
    body = receiver.to("/v3/mail/send")[0].json()
    assert body["subject"] == "[inventory-sync] products RECOVERED"
    assert "Error" not in body["content"][0]["value"]


# --- channels from settings ----------------------------------------------------------------

_ENV = ("SENDGRID_API_KEY", "SENDGRID_BASE_URL", "ALERT_EMAIL_FROM", "ALERT_EMAIL_TO",
        "SLACK_WEBHOOK_URL", "ALERT_PREFECT_BLOCK")  # fmt: skip


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]  # no stray .env
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("clean_env")
def test_channels_from_settings_end_to_end(receiver: Receiver) -> None:
    settings = Settings(
        sendgrid_api_key=SecretStr(API_KEY),
        sendgrid_base_url=receiver.url,
        alert_email_from="sync@example.com",
        alert_email_to="ops@example.com",
        slack_webhook_url=SecretStr(webhook_url(receiver)),
    )
    receiver.script("/v3/mail/send", receiver.reply(202, ""))
    channels = channels_from_settings(settings, retry_delay=0)
    assert [c.name for c in channels] == ["sendgrid", "slack"]
    assert Notifier(channels).send(failed_alert(), now=NOW) == ["sendgrid", "slack"]
    assert len(receiver.requests) == 2


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("fields", "names", "warning"),
    [
        pytest.param({}, [], None, id="nothing-configured"),
        pytest.param({"sendgrid_api_key": SecretStr(API_KEY)}, [],
                     "ALERT_EMAIL_FROM, ALERT_EMAIL_TO not set", id="email-half-configured"),
        pytest.param({"sendgrid_api_key": SecretStr(API_KEY), "alert_email_from": "nobody",
                      "alert_email_to": "ops@example.com"}, [],
                     "ALERT_EMAIL_FROM is not an email address", id="bad-sender"),
        pytest.param({"slack_webhook_url": SecretStr("hooks.slack.com/x")}, [],
                     "SLACK_WEBHOOK_URL is not an http(s) URL", id="bad-webhook"),
        pytest.param({"slack_webhook_url": SecretStr("https://hooks.slack.com/services/a")},
                     ["slack"], None, id="slack-only"),
    ],
)  # fmt: skip
def test_channels_from_settings_skips_half_configured_channels(
    caplog: pytest.LogCaptureFixture,
    fields: dict[str, object],
    names: list[str],
    warning: str | None,
) -> None:
    settings = Settings(**fields)  # type: ignore[arg-type]
    assert [c.name for c in channels_from_settings(settings)] == names
    if warning:
        assert warning in caplog.text
    assert API_KEY not in caplog.text
