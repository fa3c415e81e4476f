"""Both auth methods against the sandbox: Basic, session login, bad credentials, expiry."""

from __future__ import annotations

from http.cookies import SimpleCookie

import pytest
from finale_sandbox_support import (
    API_SECRET,
    PASSWORD,
    Connect,
    frame_records,
    keys_of,
    server_rows,
)
from pydantic import SecretStr

from connectors.finale import AuthError, RetryableError
from sandbox.control import SandboxControl
from sandbox.server import SandboxHandle


def _session_ids(conn) -> set[str]:
    ids = set()
    for exchange in conn.log.exchanges:
        if exchange.cookies:
            cookie = SimpleCookie(exchange.cookies)
            if "JSESSIONID" in cookie:
                ids.add(cookie["JSESSIONID"].value)
    return ids


def test_basic_auth_reads_a_collection(shared_sandbox: SandboxHandle, connect: Connect) -> None:
    conn = connect(shared_sandbox, auth="basic")

    records = frame_records(conn.client.iter_collection("partygroup", page_size=8))

    assert records == server_rows(shared_sandbox, "partygroup")
    assert not _session_ids(conn), "Basic auth must not use a session"
    assert not conn.log.of("POST", "/auth")


def test_wrong_api_secret_is_an_auth_error_naming_the_settings_without_the_secret(
    shared_sandbox: SandboxHandle, shared_control: SandboxControl, connect: Connect
) -> None:
    wrong = "Wrong-Secret-e41d9b77"
    conn = connect(shared_sandbox, auth="basic", api_secret=SecretStr(wrong))
    refused_before = shared_control.stats()["unauthorized"]

    with pytest.raises(AuthError) as caught:
        list(conn.client.iter_collection("facility"))

    error = caught.value
    text = str(error)
    assert error.status == 401
    assert "FINALE_API_KEY" in text and "FINALE_API_SECRET" in text
    for leaked in (wrong, API_SECRET):
        assert leaked not in text and leaked not in repr(error)
        assert leaked not in (error.url or "") and leaked not in (error.body or "")
    # Fatal: sent once, never retried.
    assert conn.client.stats.retries == 0
    assert shared_control.stats()["unauthorized"] - refused_before == 1


def test_wrong_password_is_an_auth_error_naming_the_settings_without_the_password(
    shared_sandbox: SandboxHandle, connect: Connect
) -> None:
    wrong = "Wrong-Password-0c5a27f3"
    conn = connect(shared_sandbox, auth="session", password=SecretStr(wrong))

    with pytest.raises(AuthError) as caught:
        list(conn.client.iter_collection("facility"))

    text = str(caught.value)
    assert "FINALE_USERNAME" in text and "FINALE_PASSWORD" in text
    assert wrong not in text and PASSWORD not in text and wrong not in repr(caught.value)
    assert [e.path for e in conn.log.exchanges] == ["/acme/api/auth"]  # no retry of a bad login
    assert conn.log.exchanges[0].status == 401


def test_session_auth_reads_and_writes_with_session_secret(make_sandbox, connect: Connect) -> None:
    handle: SandboxHandle = make_sandbox()
    conn = connect(handle, auth="session")
    assert not conn.settings.uses_basic_auth

    products = frame_records(conn.client.iter_collection("product", page_size=60))
    facility_url = server_rows(handle, "facility")[0]["facilityUrl"]
    created = conn.client.create_order(
        {
            "orderId": "IT-SESSION-1",
            "orderTypeId": "PURCHASE_ORDER",
            "destinationFacilityUrl": facility_url,
            "orderItemList": [
                {"productUrl": products[0]["productUrl"], "quantity": 3, "unitPrice": 4.5}
            ],
        }
    )
    locked = conn.client.order_action(created, "lock")

    assert keys_of("product", products) == keys_of("product", server_rows(handle, "product"))
    assert created["statusId"] == "ORDER_CREATED" and locked["statusId"] == "ORDER_LOCKED"
    assert conn.client.get(created["orderUrl"])["statusId"] == "ORDER_LOCKED"
    # One login; every request after it carries the session cookie; every POST other than
    # the login carries sessionSecret equal to the cookie (else the sandbox answers 403).
    logins = conn.log.of("POST", "/auth")
    assert len(logins) == 1 and logins[0].status == 200
    (session_id,) = _session_ids(conn)
    writes = [e for e in conn.log.of("POST") if not e.path.endswith("/auth")]
    assert len(writes) == 2
    assert all(e.json_body()["sessionSecret"] == session_id for e in writes)
    assert all(e.status == 200 for e in conn.log.exchanges)
    assert conn.client.stats.relogins == 0


def test_expired_session_mid_read_logs_in_again_and_completes(
    make_sandbox, connect: Connect
) -> None:
    handle: SandboxHandle = make_sandbox()
    truth = keys_of("product", server_rows(handle, "product"))
    conn = connect(handle, auth="session")
    records = []

    with SandboxControl(handle.base_url) as control:
        pages = conn.client.iter_collection("product", page_size=50)
        records.extend(next(pages).to_dict("records"))
        assert control.expire_sessions() == 1
        for frame in pages:
            records.extend(frame.to_dict("records"))
        stats = control.stats()

    assert keys_of("product", records) == truth
    assert conn.client.stats.relogins == 1
    assert len(conn.log.of("POST", "/auth")) == 2
    assert len(_session_ids(conn)) == 2  # the read went on with a new session
    assert stats["login_pages"] == 1  # the one request that met the login page
    html = [e for e in conn.log.exchanges if "text/html" in e.headers.get("content-type", "")]
    assert len(html) == 1 and html[0].status == 200


def test_expired_session_is_renewed_for_a_write_too(make_sandbox, connect: Connect) -> None:
    handle: SandboxHandle = make_sandbox()
    conn = connect(handle, auth="session")
    order = server_rows(handle, "order")
    open_order = next(o for o in order if o["statusId"] == "ORDER_CREATED")

    with SandboxControl(handle.base_url) as control:
        current = conn.client.get(open_order["orderUrl"])
        control.expire_sessions()
        locked = conn.client.order_action(current, "lock")

    assert locked["statusId"] == "ORDER_LOCKED"
    assert conn.client.stats.relogins == 1
    action_posts = conn.log.of("POST", "/lock")
    assert [e.status for e in action_posts] == [200, 200]  # login page, then the real answer
    assert (
        action_posts[0].json_body()["sessionSecret"] != action_posts[1].json_body()["sessionSecret"]
    )


def test_login_page_with_basic_auth_is_retryable_not_an_auth_error(
    make_sandbox, connect: Connect
) -> None:
    # With Basic auth an HTML login page cannot be a session expiry; it is retried and, if it
    # persists, reported as retryable with a hint at the base URL and account.
    handle: SandboxHandle = make_sandbox()
    conn = connect(handle, auth="basic", max_retries=2)
    with SandboxControl(handle.base_url) as control:
        control.set_faults("html:1.0")

        with pytest.raises(RetryableError) as caught:
            list(conn.client.iter_collection("facility"))

    assert not isinstance(caught.value, AuthError)
    assert "FINALE_BASE_URL" in str(caught.value)
    assert caught.value.attempts == 3
    assert len(conn.log.exchanges) == 3
