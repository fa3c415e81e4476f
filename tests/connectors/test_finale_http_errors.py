"""How the client sorts HTTP outcomes into retried and fatal errors."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from finale_fakes import API, ClientFactory, FakeTime, columns, json_response, make_settings

from connectors.finale import (
    AuthError,
    FatalError,
    FinaleClient,
    RateLimiter,
    RetryableError,
    SessionExpired,
)

FACILITIES = columns([{"facilityId": "100", "facilityUrl": "/acme/api/facility/100"}])


def failing_then_ok(
    failure: Callable[[httpx.Request], httpx.Response], failures: int = 1
) -> Callable[[httpx.Request], httpx.Response]:
    """A handler that fails ``failures`` times, then serves one facility."""
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= failures:
            return failure(request)
        return json_response(FACILITIES)

    return handler


@pytest.mark.parametrize(
    "status, error_type, phrases",
    [
        pytest.param(400, FatalError, ["invalid", "30 days"], id="400-bad-request"),
        pytest.param(
            401,
            AuthError,
            ["FINALE_API_KEY and FINALE_API_SECRET", "FINALE_USERNAME", "FINALE_ACCOUNT"],
            id="401-bad-credentials",
        ),
        pytest.param(403, AuthError, ["denied", "FINALE_ACCOUNT"], id="403-forbidden"),
        pytest.param(404, FatalError, ["FINALE_ACCOUNT", "trailing slash"], id="404-not-found"),
        pytest.param(409, FatalError, ["will not help"], id="409-other-4xx"),
    ],
)
def test_client_errors_are_fatal_with_actionable_messages(
    make_client: ClientFactory,
    fake_time: FakeTime,
    status: int,
    error_type: type[FatalError],
    phrases: list[str],
) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return json_response({"errorMessage": "nope"}, status)

    client = make_client(handler)
    with pytest.raises(error_type) as info:
        list(client.iter_collection("facility"))
    message = str(info.value)
    assert type(info.value) is error_type
    for phrase in phrases:
        assert phrase in message
    assert "nope" in message  # Finale's own errorMessage is passed on
    assert info.value.status == status
    assert len(calls) == 1  # never retried
    assert fake_time.sleeps == []


@pytest.mark.parametrize("status", [pytest.param(s, id=str(s)) for s in (429, 500, 502, 503, 504)])
def test_transient_statuses_are_retried_until_success(
    make_client: ClientFactory, fake_time: FakeTime, status: int
) -> None:
    handler = failing_then_ok(lambda r: json_response({"errorMessage": "busy"}, status), 2)
    client = make_client(handler)
    frames = list(client.iter_collection("facility"))
    assert frames[0].loc[0, "facilityId"] == "100"
    assert client.stats.retries == 2
    assert client.stats.requests == 3
    assert len(fake_time.sleeps) == 2


def test_retry_after_is_honoured_through_the_sleep(
    make_client: ClientFactory, fake_time: FakeTime
) -> None:
    handler = failing_then_ok(
        lambda r: json_response({}, 429, **{"Retry-After": "7"}),
    )
    client = make_client(handler)
    list(client.iter_collection("facility"))
    assert fake_time.sleeps == [7.0]
    assert client.stats.server_pauses == 1
    # The limiter was paused too, but the retry sleep already covered the pause.
    assert fake_time.limiter_sleeps == [] or max(fake_time.limiter_sleeps) < 1e-3


def test_exhausted_retry_budget_raises_the_retryable_error(
    make_client: ClientFactory, fake_time: FakeTime
) -> None:
    client = make_client(lambda r: json_response({"errorMessage": "down"}, 503))
    with pytest.raises(RetryableError) as info:
        list(client.iter_collection("facility"))
    assert info.value.attempts == 5  # max_retries=4 in the test settings, plus the first
    assert "gave up after 5 attempts" in str(info.value)
    assert len(fake_time.sleeps) == 4


def test_total_wait_budget_ends_retries_early(
    make_client: ClientFactory, fake_time: FakeTime
) -> None:
    client = make_client(
        lambda r: json_response({}, 429, **{"Retry-After": "30"}), max_total_wait=45.0
    )
    with pytest.raises(RetryableError, match="more than the remaining retry budget"):
        list(client.iter_collection("facility"))
    assert fake_time.sleeps == [30.0]


@pytest.mark.parametrize(
    "exception",
    [
        pytest.param(httpx.ReadTimeout("timed out"), id="read-timeout"),
        pytest.param(httpx.ConnectError("refused"), id="connect-error"),
        pytest.param(
            httpx.RemoteProtocolError("peer closed connection without sending complete body"),
            id="dropped-mid-body",
        ),
    ],
)
def test_network_failures_are_retried(make_client: ClientFactory, exception: Exception) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exception

    client = make_client(failing_then_ok(fail))
    assert len(next(client.iter_collection("facility"))) == 1
    assert client.stats.retries == 1


def test_truncated_json_is_retried(make_client: ClientFactory) -> None:
    cut = httpx.Response(
        200, content=b'{"facilityId": ["100", "2', headers={"content-type": "application/json"}
    )
    client = make_client(failing_then_ok(lambda r: cut))
    assert len(next(client.iter_collection("facility"))) == 1
    assert client.stats.retries == 1


def test_unequal_arrays_are_retried_inside_the_request(make_client: ClientFactory) -> None:
    corrupt = json_response(
        {"facilityId": ["100", "200"], "facilityUrl": ["/acme/api/facility/100"]}
    )
    client = make_client(failing_then_ok(lambda r: corrupt))
    frame = next(client.iter_collection("facility"))
    assert list(frame["facilityId"]) == ["100"]
    assert client.stats.retries == 1


def test_html_login_page_with_basic_auth_is_retried_then_given_up(
    make_client: ClientFactory,
) -> None:
    page = httpx.Response(200, text="<html>Sign in</html>", headers={"content-type": "text/html"})
    client = make_client(lambda r: page)
    with pytest.raises(SessionExpired, match="login page"):
        list(client.iter_collection("facility"))
    assert client.stats.retries == 4
    assert client.stats.relogins == 0  # nothing to renew with an API key


def test_redirect_to_a_login_page_counts_as_session_expired(make_client: ClientFactory) -> None:
    redirect = httpx.Response(302, headers={"location": "/acme/login.html"})
    client = make_client(failing_then_ok(lambda r: redirect))
    assert len(next(client.iter_collection("facility"))) == 1
    assert client.stats.retries == 1


def test_client_side_rate_limit_spaces_requests(fake_time: FakeTime) -> None:
    """With the default limiter wiring, the client's own clock/sleep drive the throttle."""
    settings = make_settings(rate_limit_per_minute=120)
    http = httpx.Client(transport=httpx.MockTransport(lambda r: json_response(FACILITIES)))
    with FinaleClient(settings, http, clock=fake_time.monotonic, sleep=fake_time.sleep) as client:
        for _ in range(3):
            client.get("/acme/api/facility/100")
    assert fake_time.sleeps == [0.5, 0.5]
    assert client.stats.rate_limit_waits == 2
    assert client.stats.rate_limit_wait_seconds == pytest.approx(1.0)
    http.close()


def test_a_shared_limiter_throttles_two_clients_together(fake_time: FakeTime) -> None:
    limiter = RateLimiter.per_minute(60, clock=fake_time.monotonic, sleep=fake_time.sleep)
    http = httpx.Client(transport=httpx.MockTransport(lambda r: json_response({"a": 1})))
    first = FinaleClient(make_settings(), http, limiter=limiter, sleep=fake_time.sleep)
    second = FinaleClient(make_settings(), http, limiter=limiter, sleep=fake_time.sleep)
    first.get("/acme/api/facility/1")
    second.get("/acme/api/facility/1")
    assert fake_time.sleeps == [1.0]
    http.close()


def test_stats_count_bytes(make_client: ClientFactory) -> None:
    response_body = json_response(FACILITIES).content
    client = make_client(lambda r: json_response(FACILITIES))
    client.get(f"{API}/facility/100".removeprefix("https://finale.test"))
    stats = client.stats.as_dict()
    assert stats["requests"] == 1
    assert stats["bytes_received"] == len(response_body)
