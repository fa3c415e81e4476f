"""Alerts through a Prefect notification block saved on a (temporary) Prefect server.

A ``CustomWebhookNotificationBlock`` pointed at the loopback receiver stands in for the
Slack/Teams/email block an operator would configure in the UI: the channel loads it by its
slug and calls ``notify(body, subject)``, exactly as it would a ``SlackWebhook``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from pydantic import BaseModel, SecretStr

from notifications import Alert, Notifier
from notifications.prefect_blocks import PrefectBlockChannel

if TYPE_CHECKING:
    from conftest import Receiver

pytestmark = pytest.mark.usefixtures("prefect_harness")

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def save_webhook_block(receiver: Receiver, path: str) -> str:
    name = f"ops-{uuid.uuid4().hex[:8]}"
    CustomWebhookNotificationBlock(
        name="ops",
        url=receiver.url + path,
        json_data={"subject": "{{subject}}", "text": "{{body}}"},
        allow_private_urls=True,  # the receiver is on loopback
    ).save(name)
    return f"custom-webhook/{name}"


def test_block_loaded_by_slug_delivers_subject_and_body(receiver: Receiver) -> None:
    slug = save_webhook_block(receiver, "/block-hook/secret-path-123")
    alert = Alert(kind="degraded", entity="stock", flow_run_url="http://ui/runs/1",
                  extracted=10, inserted=10)  # fmt: skip

    delivered = Notifier([PrefectBlockChannel(slug)]).send(alert, now=NOW)

    assert delivered == [f"prefect-block:{slug}"]
    [request] = receiver.to("/block-hook/secret-path-123")
    body = request.json()
    assert body["subject"] == "[inventory-sync] stock DEGRADED"
    assert "Entity: stock" in body["text"]
    assert "Flow run: http://ui/runs/1" in body["text"]


def test_block_endpoint_failure_is_not_delivered_and_url_not_logged(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    slug = save_webhook_block(receiver, "/block-hook/secret-path-456")
    receiver.script("/block-hook/secret-path-456", receiver.reply(500, "boom"))

    delivered = Notifier([PrefectBlockChannel(slug)]).send(
        Alert(kind="failed", entity="stock"), now=NOW
    )

    assert delivered == []
    assert "HTTPStatusError" in caplog.text
    assert "secret-path-456" not in caplog.text


def test_missing_block_is_not_delivered_and_other_channels_still_run(
    receiver: Receiver,
) -> None:
    good = save_webhook_block(receiver, "/block-hook/good")
    channels = [PrefectBlockChannel("custom-webhook/does-not-exist"), PrefectBlockChannel(good)]

    delivered = Notifier(channels).send(Alert(kind="failed", entity="vendors"), now=NOW)

    assert delivered == [f"prefect-block:{good}"]


def test_block_name_must_be_a_slug() -> None:
    with pytest.raises(ValueError, match="<block-type-slug>/<block-name>"):
        PrefectBlockChannel("ops-alerts")


class _PlainFieldsBlock(BaseModel):
    """A block whose author typed its credential as a plain ``str``."""

    api_token: str = "tok-not-typed-as-secret-1234"
    webhook: SecretStr = SecretStr("hush-secret-value-5678")
    endpoint_url: str = "https://hooks.example.invalid/abc"
    channel: str = "#ops"

    def notify(self, body: str, subject: str | None = None) -> None:
        raise NotImplementedError


def test_block_values_are_masked_by_type_by_secret_name_and_when_urls() -> None:
    channel = PrefectBlockChannel("custom/ops", block=_PlainFieldsBlock())  # type: ignore[arg-type]

    masked = channel.secrets()

    assert set(masked) == {
        "tok-not-typed-as-secret-1234",
        "hush-secret-value-5678",
        "https://hooks.example.invalid/abc",
    }
