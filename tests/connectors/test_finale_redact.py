"""Secrets never reach messages: masking helpers and end-to-end error messages."""

from __future__ import annotations

import base64

import httpx
import pytest
from finale_fakes import (
    API_KEY,
    API_SECRET,
    PASSWORD,
    SESSION_ID,
    ClientFactory,
    json_response,
    session_settings,
)

from connectors.finale import FinaleError
from connectors.redact import Redactor, mask_url, redact_text, truncate


@pytest.mark.parametrize(
    "text, secret_part",
    [
        pytest.param('{"sessionSecret": "abc123xyz"}', "abc123xyz", id="json-session-secret"),
        pytest.param('{"password":"pw-987654"}', "pw-987654", id="json-password"),
        pytest.param("Cookie: JSESSIONID=F00BA4; Path=/", "F00BA4", id="cookie"),
        pytest.param("/acme/login;jsessionid=F00BA4?x=1", "F00BA4", id="url-path-param"),
        pytest.param("Authorization: Basic a2V5OnNlY3JldA==", "a2V5OnNlY3JldA", id="basic-header"),
        pytest.param("https://user:topsecret@finale.test/acme", "topsecret", id="url-userinfo"),
    ],
)
def test_redact_text_masks_secret_looking_values(text: str, secret_part: str) -> None:
    redacted = redact_text(text)
    assert secret_part not in redacted
    assert "***" in redacted


def test_redact_text_masks_known_values_anywhere() -> None:
    assert redact_text("oops hunter2-value leaked", ["hunter2-value"]) == "oops *** leaked"


def test_mask_url_keeps_useful_params_and_masks_credentials() -> None:
    masked = mask_url(
        "https://u:p@finale.test/acme/api/product/?filter=eyJ9&sessionSecret=abc&limit=5"
    )
    assert masked == "https://finale.test/acme/api/product/?filter=eyJ9&sessionSecret=***&limit=5"


def test_truncate_says_how_much_was_cut() -> None:
    assert truncate("x" * 510, 500) == "x" * 500 + "... (10 more chars)"
    assert truncate("short") == "short"


def test_redactor_masks_before_truncating_so_a_cut_secret_cannot_leak() -> None:
    redactor = Redactor(["SECRETSECRET"])
    body = "a" * 495 + "SECRETSECRET"
    assert "SECRET" not in redactor.body(body, limit=500)


def test_fatal_error_on_basic_auth_never_contains_the_secret(make_client: ClientFactory) -> None:
    token = base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()

    def echo(request: httpx.Request) -> httpx.Response:
        # A careless server echoing what it got, secret included.
        return json_response(
            {
                "errorMessage": f"bad request from {API_SECRET}",
                "auth": request.headers["authorization"],
                "token": token,
            },
            400,
        )

    with pytest.raises(FinaleError) as info:
        make_client(echo).get("/acme/api/order/1")
    text = f"{info.value} {info.value.body} {info.value.server_message} {info.value.args}"
    assert API_SECRET not in text
    assert token not in text
    assert "bad request from ***" in text


def test_fatal_error_on_session_auth_never_contains_password_or_session_id(
    make_client: ClientFactory,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/auth"):
            return httpx.Response(200, json={}, headers={"set-cookie": f"JSESSIONID={SESSION_ID}"})
        return json_response(
            {"errorMessage": f"session {SESSION_ID} user pw {PASSWORD} cannot do this"}, 400
        )

    with pytest.raises(FinaleError) as info:
        make_client(handler, session_settings()).create_order({"orderId": "9"})
    text = f"{info.value} {info.value.body} {info.value.server_message}"
    assert SESSION_ID not in text
    assert PASSWORD not in text
    assert "cannot do this" in text  # the useful part survives


def test_secrets_inside_network_error_texts_are_scrubbed(make_client: ClientFactory) -> None:
    """The last line of defence: every error is scrubbed before it leaves the connector."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"proxy refused credentials {API_SECRET}")

    with pytest.raises(FinaleError) as info:
        make_client(handler).get("/acme/api/order/1")
    assert API_SECRET not in str(info.value)
    assert API_SECRET not in repr(info.value.args)
    assert "proxy refused credentials ***" in str(info.value)
