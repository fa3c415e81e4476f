"""Basic auth, session auth with its CSRF secret, and expired sessions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
from sandbox_helpers import FakeClock, plain_get, plain_post

from sandbox.auth import SessionStore
from sandbox.control import SandboxControl
from sandbox.server import SandboxHandle, ssl_context

LOGIN = {"username": "sandbox-user", "password": "sandbox-pass"}


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-credentials"),
        pytest.param({"Authorization": "Basic " + "c2FuZGJveC1rZXk6d3Jvbmc="}, id="wrong-secret"),
        pytest.param({"Authorization": "Basic bm9ib2R5OnNhbmRib3gtc2VjcmV0"}, id="wrong-key"),
        pytest.param({"Authorization": "Basic %%%"}, id="malformed-header"),
        pytest.param({"Authorization": "Bearer sandbox-key"}, id="wrong-scheme"),
    ],
)
def test_bad_or_missing_credentials_are_401(sandbox: SandboxHandle, headers: dict) -> None:
    response = plain_get(f"{sandbox.api_url}/product/", headers=headers)
    assert response.status_code == 401
    assert response.json()["errorMessage"]


def test_api_key_gives_json(api: httpx.Client) -> None:
    response = api.get("/facility/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")


@contextmanager
def _login(handle: SandboxHandle) -> Iterator[tuple[httpx.Client, str]]:
    with httpx.Client(base_url=handle.api_url, timeout=10.0, verify=ssl_context()) as client:
        response = client.post("/auth", json=LOGIN)
        assert response.status_code == 200
        body = response.json()
        assert body["sessionSecret"] is None
        assert body["resourceProduct"] == f"/{handle.config.account}/api/product"
        assert body["resourceInventoryItem"] == f"/{handle.config.account}/api/inventoryitem"
        yield client, client.cookies["JSESSIONID"]


def test_session_login_sets_cookie_and_reads_work(sandbox: SandboxHandle) -> None:
    with _login(sandbox) as (client, secret):
        assert secret
        response = client.get("/product/", params={"limit": 5})
        assert response.status_code == 200
        assert len(response.json()["productId"]) == 5


def test_bad_login_is_401(sandbox: SandboxHandle) -> None:
    response = plain_post(
        f"{sandbox.api_url}/auth", json={"username": "sandbox-user", "password": "nope"}
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param({}, 403, id="no-session-secret"),
        pytest.param({"sessionSecret": "WRONG"}, 403, id="wrong-session-secret"),
        pytest.param(None, 200, id="right-session-secret"),
    ],
)
def test_session_posts_need_the_session_secret(
    sandbox: SandboxHandle, body: dict | None, status: int
) -> None:
    with _login(sandbox) as (client, secret):
        payload = {"query": "{ partyViewConnection(first: 1) { edges { cursor } } }"}
        payload.update(body if body is not None else {"sessionSecret": secret})
        response = client.post("/graphql", json=payload)
        assert response.status_code == status
        if status == 200:
            assert response.json()["data"]["partyViewConnection"]["edges"]


def test_expired_session_gets_the_html_login_page_with_200(private: SandboxHandle) -> None:
    with _login(private) as (client, _), SandboxControl(private.base_url) as control:
        assert client.get("/facility/").status_code == 200
        assert control.expire_sessions() == 1
        response = client.get("/facility/")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "<html" in response.text
        with pytest.raises(ValueError):
            response.json()


def _served_as(response: httpx.Response) -> str:
    return "json" if response.headers["content-type"].startswith("application/json") else "html"


def test_session_expires_after_its_idle_ttl(make_sandbox: Callable[..., SandboxHandle]) -> None:
    clock = FakeClock()
    handle = make_sandbox(session_ttl_seconds=60, clock=clock)
    with _login(handle) as (client, _):
        assert _served_as(client.get("/facility/")) == "json"
        clock.advance(59)
        assert _served_as(client.get("/facility/")) == "json"
        # 118 s after login but only 59 s idle: each use restarts the idle timer.
        clock.advance(59)
        assert _served_as(client.get("/facility/")) == "json"
        clock.advance(61)
        assert _served_as(client.get("/facility/")) == "html"
        # Expired means gone: moving no further, the cookie still gets the login page.
        assert _served_as(client.get("/facility/")) == "html"


@pytest.mark.parametrize(
    ("idle", "alive"),
    [
        pytest.param(29.0, True, id="within-ttl"),
        pytest.param(30.0, True, id="exactly-ttl"),
        pytest.param(30.5, False, id="past-ttl"),
    ],
)
def test_session_store_expires_a_session_idle_longer_than_its_ttl(idle: float, alive: bool) -> None:
    clock = FakeClock()
    sessions = SessionStore(ttl=30, clock=clock)
    token = sessions.create("sandbox-user")
    clock.advance(idle)
    found = sessions.lookup(token)
    assert (found is not None) is alive
    if found is not None:
        assert found.username == "sandbox-user" and found.last_seen == clock()


def test_unknown_session_cookie_gets_the_login_page(sandbox: SandboxHandle) -> None:
    response = plain_get(f"{sandbox.api_url}/product/", cookies={"JSESSIONID": "DEADBEEF"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


def test_control_api_needs_no_credentials(sandbox: SandboxHandle) -> None:
    info = plain_get(f"{sandbox.base_url}/__sandbox__/info").json()
    assert info["credentials"]["api_key"] == sandbox.config.api_key
    assert info["counts"]["product"] == sandbox.config.products


def test_session_write_strips_the_session_secret(private: SandboxHandle) -> None:
    with _login(private) as (client, secret):
        payload = {"orderTypeId": "SALES_ORDER", "orderId": "S-1", "sessionSecret": secret}
        created = client.post("/order", json=payload)
        assert created.status_code == 200
        assert "sessionSecret" not in created.json()
        assert client.get("/order/S-1").json()["orderId"] == "S-1"
