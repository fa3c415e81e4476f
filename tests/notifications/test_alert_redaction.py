"""Whatever reaches an alert is masked by shape: no token, password or credential URL."""

from __future__ import annotations

import pytest

from connectors.redact import redact_secrets, summarize_error

LEAKS = [
    pytest.param("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA==",
                 id="basic-header"),
    pytest.param("Authorization: Bearer eyJhbGciOi.abc123def456.ghi789", "eyJhbGciOi",
                 id="bearer-header"),
    pytest.param("GET https://api.x.test/v1?limit=5&key=abc123xyz", "abc123xyz", id="key-param"),
    pytest.param("url https://x.test/?api_key=K3Y&token=T0K3N", "T0K3N", id="token-param"),
    pytest.param("postgresql+psycopg://sync:hunter2@db:5432/wh", "hunter2", id="db-url-password"),
    pytest.param("https://bob:pa55@app.finaleinventory.com/acme", "pa55", id="https-userinfo"),
    pytest.param('{"password": "swordfish", "user": "bob"}', "swordfish", id="json-password"),
    pytest.param("{'api_secret': 's3cr3t!'}", "s3cr3t!", id="dict-repr-secret"),
    pytest.param('password="two words"', "two words", id="quoted-password"),
    pytest.param("JSESSIONID=ABCDEF0123; Path=/", "ABCDEF0123", id="session-cookie"),
    pytest.param("sessionSecret=abc.def", "abc.def", id="session-secret"),
    pytest.param("posting to https://hooks.slack.com/services/T0/B0/XyZ failed", "T0/B0/XyZ",
                 id="slack-webhook-url"),
    pytest.param("token xoxb-1234567890-abcdefghij", "xoxb-1234567890", id="slack-bot-token"),
    pytest.param("key SG.abcdefghijklmnop.qrstuvwxyz0123456789", "SG.abcdefghijklmnop",
                 id="sendgrid-key"),
    pytest.param("gh token ghp_abcdefghijklmnopqrstuvwxyz0123", "ghp_abcdefghij", id="github"),
    pytest.param("aws AKIAABCDEFGHIJKLMNOP", "AKIAABCDEFGHIJKLMNOP", id="aws-key-id"),
    pytest.param("blob Zm9vYmFyQmF6UXV4MTIzNDU2Nzg5MGFiY2Rl end", "Zm9vYmFyQmF6UXV4", id="base64"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "secret"), LEAKS)
def test_secret_shapes_are_masked(text: str, secret: str) -> None:
    masked = redact_secrets(text)
    assert secret not in masked
    assert "***" in masked


KEPT = [
    pytest.param("run 2f1c0a3e-4b5d-4e6f-8a9b-0c1d2e3f4a5b failed", id="uuid"),
    pytest.param("checksum 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                 id="sha256-hex"),
    pytest.param('duplicate key value violates unique constraint "products_pkey" '
                 "DETAIL: Key (product_id)=(10) already exists.", id="postgres-error"),
    pytest.param("20 of 200 products records (10.0%) failed validation", id="quarantine-error"),
    pytest.param("GET https://app.finaleinventory.com/acme/api/product?limit=100", id="plain-url"),
    pytest.param("https://app.finaleinventory.com/AcmeCo2024/api/product/SKU-Red-Widget-42",
                 id="mixed-case-url-path"),
]  # fmt: skip


@pytest.mark.parametrize("text", KEPT)
def test_debugging_details_survive(text: str) -> None:
    assert redact_secrets(text) == text


def test_known_secret_values_are_masked_anywhere() -> None:
    masked = redact_secrets("the webhook plainvalue42 said no", secrets=["plainvalue42", None])
    assert masked == "the webhook *** said no"


def test_short_known_values_are_not_masked() -> None:
    # Masking "ab" everywhere would shred the message.
    assert redact_secrets("about tabs", secrets=["ab"]) == "about tabs"


def test_summarize_error_masks_before_truncating() -> None:
    text = "x" * 95 + " password=swordfish"
    out = summarize_error(text, limit=100)
    assert out is not None
    assert "sword" not in out
    assert summarize_error(None) is None
