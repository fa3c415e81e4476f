"""Alerts from real Prefect flow runs: once per change of health, never once per retry.

The sync runs for real (sandbox over loopback, SQLite warehouse, the Prefect test server);
SendGrid and Slack are the loopback receiver, whose base URLs are settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.finale_sync import sync_entity
from sandbox.server import SandboxConfig, start_in_thread

SLACK_PATH = "/services/T000/B000/hook-secret-path"
SENDGRID_KEY = "SG.test-key-never-shown"


@pytest.fixture(scope="module")
def sandbox_env() -> Iterator[dict[str, str]]:
    with start_in_thread(SandboxConfig(port=0, products=300, rate_limit_per_minute=0)) as h:
        yield h.env


@pytest.fixture
def alerting_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandbox_env: dict[str, str], receiver
) -> None:
    monkeypatch.chdir(tmp_path)
    for key, value in sandbox_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WAREHOUSE_URL", f"sqlite:///{tmp_path / 'wh.db'}")
    monkeypatch.setenv("SENDGRID_API_KEY", SENDGRID_KEY)
    monkeypatch.setenv("SENDGRID_BASE_URL", receiver.url)
    monkeypatch.setenv("ALERT_EMAIL_FROM", "sync@example.com")
    monkeypatch.setenv("ALERT_EMAIL_TO", "ops@example.com")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", receiver.url + SLACK_PATH)
    monkeypatch.setenv("FINALE_SHARED_RATE_LIMIT", "")
    monkeypatch.setenv("QUARANTINE_FAIL_MIN_RECORDS", "1")


def _run(monkeypatch: pytest.MonkeyPatch, fail_ratio: str) -> str:
    monkeypatch.setenv("QUARANTINE_FAIL_RATIO", fail_ratio)
    state = sync_entity(entity="products", mode="full", return_state=True)
    return "failed" if state.is_failed() else "ok"


def test_alert_goes_out_once_per_state_change(
    prefect_harness: None, alerting_env: None, receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A first good run is not news.
    assert _run(monkeypatch, "0.5") == "ok"
    assert receiver.requests == []

    # The sandbox always has a few dirty products: a zero threshold fails the run.
    assert _run(monkeypatch, "0") == "failed"
    slack = receiver.to(SLACK_PATH)
    mail = receiver.to("/v3/mail/send")
    assert len(slack) == 1 and len(mail) == 1
    assert "products" in slack[0].json()["text"] and "FAILED" in slack[0].json()["text"]
    body = mail[0].json()
    assert body["subject"] == "[inventory-sync] products FAILED"
    text = body["content"][0]["value"]
    assert "QUARANTINE_FAIL_RATIO" in text  # the error summary says what to change
    for request in slack + mail:
        raw = request.body.decode()
        assert SENDGRID_KEY not in raw and SLACK_PATH not in raw

    # Failing again is the same outage: silence.
    assert _run(monkeypatch, "0") == "failed"
    assert len(receiver.requests) == 2

    # Back to healthy: one "recovered" per channel.
    assert _run(monkeypatch, "0.5") == "ok"
    assert len(receiver.requests) == 4
    [slack_back] = receiver.to(SLACK_PATH)[1:]
    [mail_back] = receiver.to("/v3/mail/send")[1:]
    assert slack_back.json()["text"].endswith("[inventory-sync] products RECOVERED")
    assert mail_back.json()["subject"] == "[inventory-sync] products RECOVERED"
