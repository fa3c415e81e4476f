"""Basic auth, session login, sessionSecret injection and re-login on expiry."""

from __future__ import annotations

import base64

import httpx
import pytest
from finale_fakes import (
    API,
    API_KEY,
    API_SECRET,
    PASSWORD,
    SESSION_ID,
    USERNAME,
    ClientFactory,
    body_of,
    json_response,
    make_settings,
    session_settings,
)

from connectors.finale import AuthError, FinaleClient

LOGIN_PAGE = httpx.Response(
    200,
    text="<html><form action='/acme/login'>Sign in</form></html>",
    headers={"content-type": "text/html; charset=utf-8"},
)


class FakeSessionFinale:
    """Accepts the login, issues numbered sessions, and can expire the current one."""

    def __init__(self) -> None:
        self.logins: list[dict] = []
        self.requests: list[httpx.Request] = []
        self.valid: set[str] = set()
        self.expire_next = 0
        self.serial = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/acme/api/auth":
            self.logins.append(body_of(request))
            self.serial += 1
            session = f"{SESSION_ID}-{self.serial}"
            self.valid.add(session)
            return httpx.Response(
                200,
                json={"sessionSecret": None, "resourceProduct": "/acme/api/product"},
                headers={"set-cookie": f"JSESSIONID={session}; Path=/acme; HttpOnly"},
            )
        self.requests.append(request)
        cookie = request.headers.get("cookie", "")
        session = cookie.removeprefix("JSESSIONID=")
        if self.expire_next > 0:
            self.expire_next -= 1
            self.valid.discard(session)
        if session not in self.valid:
            return LOGIN_PAGE
        if request.method == "POST" and body_of(request).get("sessionSecret") != session:
            return json_response({"errorMessage": "missing sessionSecret"}, 403)
        return json_response({"orderId": "1", "statusId": "ORDER_CREATED"})


def test_basic_auth_sends_key_and_secret(make_client: ClientFactory) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return json_response({"orderId": "1"})

    make_client(handler).get("/acme/api/order/1")
    token = base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()
    assert seen == [f"Basic {token}"]


def test_session_login_then_cookie_and_session_secret_on_posts(
    make_client: ClientFactory,
) -> None:
    finale = FakeSessionFinale()
    client = make_client(finale, session_settings())
    client.get("/acme/api/order/1")
    client.create_order({"orderId": "1", "orderTypeId": "PURCHASE_ORDER"})
    assert finale.logins == [{"username": USERNAME, "password": PASSWORD}]
    get, post = finale.requests
    assert get.headers["cookie"] == f"JSESSIONID={SESSION_ID}-1"
    assert "authorization" not in get.headers
    assert body_of(post) == {
        "orderId": "1",
        "orderTypeId": "PURCHASE_ORDER",
        "sessionSecret": f"{SESSION_ID}-1",
    }


def test_session_secret_is_injected_without_changing_the_callers_dict(
    make_client: ClientFactory,
) -> None:
    finale = FakeSessionFinale()
    order = {"orderId": "1"}
    make_client(finale, session_settings()).create_order(order)
    assert order == {"orderId": "1"}


def test_graphql_posts_carry_the_session_secret_too(make_client: ClientFactory) -> None:
    bodies: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/auth"):
            return httpx.Response(200, json={}, headers={"set-cookie": f"JSESSIONID={SESSION_ID}"})
        bodies.append(body_of(request))
        return json_response({"data": {"ok": True}})

    make_client(handler, session_settings()).graphql("{ ok }")
    assert bodies[0]["sessionSecret"] == SESSION_ID


def test_html_login_page_triggers_one_relogin_and_the_request_is_repeated(
    make_client: ClientFactory, fake_time
) -> None:
    finale = FakeSessionFinale()
    client = make_client(finale, session_settings())
    client.get("/acme/api/order/1")
    finale.expire_next = 1
    result = client.get("/acme/api/order/1")
    assert result["orderId"] == "1"
    assert len(finale.logins) == 2
    assert finale.requests[-1].headers["cookie"] == f"JSESSIONID={SESSION_ID}-2"
    assert client.stats.relogins == 1
    assert client.stats.retries == 0  # renewal is immediate, not a backoff retry
    assert fake_time.sleeps == []


def test_a_post_after_relogin_carries_the_new_session_secret(make_client: ClientFactory) -> None:
    finale = FakeSessionFinale()
    client = make_client(finale, session_settings())
    client.get("/acme/api/order/1")
    finale.expire_next = 1
    client.create_order({"orderId": "1"})
    assert body_of(finale.requests[-1])["sessionSecret"] == f"{SESSION_ID}-2"


def test_session_401_relogs_once_then_is_an_auth_error(make_client: ClientFactory) -> None:
    logins = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/auth"):
            logins.append(1)
            return httpx.Response(200, json={}, headers={"set-cookie": f"JSESSIONID={SESSION_ID}"})
        return json_response({"errorMessage": "unauthorised"}, 401)

    client = make_client(handler, session_settings())
    with pytest.raises(AuthError, match="FINALE_USERNAME and FINALE_PASSWORD"):
        client.get("/acme/api/order/1")
    assert len(logins) == 2


def test_failed_login_names_the_login_settings_first(make_client: ClientFactory) -> None:
    client = make_client(
        lambda r: json_response({"errorMessage": "bad login"}, 401), session_settings()
    )
    with pytest.raises(AuthError) as info:
        client.get("/acme/api/order/1")
    message = str(info.value)
    assert message.index("FINALE_USERNAME") < message.index("FINALE_API_KEY")
    assert "FINALE_ACCOUNT" in message


def test_login_without_a_session_cookie_is_an_auth_error(make_client: ClientFactory) -> None:
    client = make_client(lambda r: json_response({}), session_settings())
    with pytest.raises(AuthError, match="JSESSIONID"):
        client.get("/acme/api/order/1")


def test_a_truncated_login_answer_is_retried_not_fatal(make_client: ClientFactory) -> None:
    finale = FakeSessionFinale()
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/auth"):
            calls["n"] += 1
            if calls["n"] == 1:
                return httpx.Response(
                    200, content=b'{"sessionSecr', headers={"content-type": "application/json"}
                )
        return finale(request)

    client = make_client(handler, session_settings())
    assert client.get("/acme/api/order/1")["orderId"] == "1"
    assert calls["n"] == 2
    assert client.stats.retries == 1


def test_missing_credentials_are_reported_at_construction() -> None:
    settings = make_settings(api_key=None, api_secret=None)
    with pytest.raises(AuthError, match="FINALE_API_KEY and FINALE_API_SECRET"):
        FinaleClient(settings, httpx.Client())


def test_absolute_urls_on_another_host_are_refused(make_client: ClientFactory) -> None:
    sent: list[httpx.Request] = []
    client = make_client(lambda r: sent.append(r) or json_response({}))
    with pytest.raises(ValueError, match="refusing to send Finale credentials"):
        client.get("https://evil.example/acme/api/order/1")
    assert sent == []
    client.get(f"{API}/order/1")  # same origin is fine
    assert len(sent) == 1
